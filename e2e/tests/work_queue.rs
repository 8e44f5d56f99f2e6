//! Issue 14, a work queue per clinic, in Chromium against the demo data set
//! (Maria Santos takes atorvastatin and amlodipine from Riverside; Dr.
//! Okafor works at Riverside) with a second Riverside provider, Dr. Costa.
//! Each person has their own browser context and passkey.

use std::time::Duration;

use e2e::Person;
use e2e::demo::{DemoPortal, open_chart};
use server::storage::NewUser;
use shared::UserId;
use shared::api::UserRole;

const QUESTION: &str = "My cough is back since Monday, should I come in?";
const RIVERSIDE_THREAD: &str = "section[aria-label*=\"Riverside\"]";

/// The number in the navigation's "To do (n)".
async fn todo_count(person: &Person) -> usize {
    let text = person.wait_for("#nav-todo", "To do (").await;
    text.trim_start_matches("To do (").trim_end_matches(')').parse().expect("a count")
}

async fn wait_for_count(person: &Person, n: usize) {
    person.wait_for("#nav-todo", &format!("To do ({n})")).await;
}

/// Runs `js` (with `li` bound) on the work item that mentions `text`.
async fn on_item(person: &Person, text: &str, js: &str) {
    person.wait_for(".todo", text).await;
    let script = format!(
        "(() => {{ const li = [...document.querySelectorAll('.todo-item')].find((l) => l.textContent.includes({text:?})); if (!li) return false; {js}; return true; }})()"
    );
    let done: bool = person.page.evaluate(script).await.expect("run").into_value().expect("bool");
    person.check(done, &format!("a work item mentions {text:?}")).await;
}

fn click_in_item(label: &str) -> String {
    format!("[...li.querySelectorAll('button')].find((b) => b.textContent === {label:?}).click()")
}

async fn wait_until_gone(person: &Person, selector: &str, text: &str) {
    let deadline = tokio::time::Instant::now() + e2e::PATIENCE;
    while person.text(selector).await.contains(text) {
        let waiting = tokio::time::Instant::now() < deadline;
        person.check(waiting, &format!("{text:?} still shows in `{selector}`")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Screenshots the To do page at 1280 and 390 px; nothing sideways on a
/// phone, nothing serious for axe-core.
async fn screens(person: &Person, name: &str) {
    for (width, mobile) in [(1280, false), (390, true)] {
        person.set_width(width, mobile).await;
        let shot = person.screenshot(&format!("{name} {width}")).await;
        eprintln!("{name} at {width} px: {}", shot.display());
        let overflow = person.sideways_overflow().await;
        person
            .check(overflow.is_empty(), &format!("nothing sideways at {width}: {overflow:?}"))
            .await;
        // WCAG 2.1 AA, as the accessibility test checks every other view.
        let serious: Vec<String> = person
            .axe()
            .await
            .into_iter()
            .filter(|v| v.contains("(serious)") || v.contains("(critical)"))
            .collect();
        person.check(serious.is_empty(), &format!("axe at {width}: {serious:#?}")).await;
    }
    person.set_width(1280, false).await;
}

/// Maria sends a message and asks for a refill; Dr. Okafor sees both in To
/// do with the count in the navigation and on her row of the patient list;
/// opening the message marks it read (Maria sees "Read", Dr. Costa sees who
/// read it); Okafor assigns the refill to Costa, who sees it assigned to
/// her at once and marks it handled: it leaves both queues. Offline,
/// Okafor's queue still shows and marking the message handled works, and
/// reaches Costa's queue once he is back online. Maria never sees work items.
#[tokio::test]
async fn a_clinic_works_through_its_queue_together_and_offline() {
    let portal = DemoPortal::start().await;
    let riverside = portal.user("Okafor").clinics[0];
    let costa_id = UserId::mint();
    let costa_user = NewUser {
        id: costa_id,
        display_name: "Dr. Beatriz Costa".into(),
        role: UserRole::Provider,
        patient: None,
        may_message: false,
        clinics: vec![riverside],
    };
    portal.app.store.create_user(&costa_user, portal.app.clock.now_ms()).await.expect("Costa");
    let (link, _) = server::auth::accounts::issue_enrollment(
        &portal.app.store,
        &portal.app.base_url,
        costa_id,
        None,
        portal.app.clock.now_ms(),
    )
    .await
    .expect("Costa's link");
    portal
        .browser
        .scenario("work queue", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
            let okafor = portal.enroll("Okafor").await;
            let costa = portal.browser.enroll("Costa", &link).await;
            // Both had her chart open earlier today: she is on their devices.
            for provider in [&okafor, &costa] {
                open_chart(provider, "Maria Santos").await;
                provider.wait_for(".sync-status", "last synced").await;
                provider.click("#nav-todo", "To do").await;
                provider.wait_for("#todo-h", "To do").await;
            }
            let before = todo_count(&okafor).await;

            // Maria writes to Riverside and asks for an atorvastatin refill.
            maria.tab("Messages").await;
            maria.type_into(&format!("{RIVERSIDE_THREAD} textarea"), QUESTION).await;
            maria.click(&format!("{RIVERSIDE_THREAD} .compose button"), "Send").await;
            maria.tab("Medications").await;
            maria.wait_for("article.med", "atorvastatin").await;
            let asked: bool = maria
                .page
                .evaluate("(() => { const b = [...document.querySelectorAll('article.med button')].find((b) => (b.getAttribute('aria-label') || '').startsWith('Request a refill of atorvastatin')); if (!b) return false; b.click(); return true; })()")
                .await
                .expect("ask")
                .into_value()
                .expect("bool");
            maria.check(asked, "a refill of atorvastatin can be requested").await;
            maria.wait_for("article.med", "requested, waiting for the clinic").await;

            // Both reach Okafor's queue live, with the count in the navigation.
            wait_for_count(&okafor, before + 2).await;
            let message = okafor.wait_for(".todo-item", QUESTION).await;
            for words in ["Maria Santos", "Message", "just now", "Unread"] {
                okafor.check(message.contains(words), &format!("the message item says {words:?}: {message}")).await;
            }
            let refill = okafor.wait_for(".todo-item", "atorvastatin").await;
            okafor.check(refill.contains("Refill request") && refill.contains("Maria Santos"), &format!("the refill item: {refill}")).await;
            // Oldest first: the message came before the refill request.
            let list = okafor.text(".todo").await;
            let (m, r) = (list.find(QUESTION), list.find("atorvastatin"));
            okafor.check(m.is_some() && r.is_some() && m < r, &format!("oldest first: {list}")).await;
            screens(&okafor, "work queue").await;

            // The patient list counts Maria's items.
            okafor.click(".main-nav button", "Patients").await;
            okafor.type_into("#patient-search", "Maria").await;
            okafor.wait_for(".patients li", "To do: ").await;
            okafor.click("#nav-todo", "To do").await;

            // Okafor opens the message: Maria sees it read, Costa sees by whom.
            on_item(&okafor, QUESTION, "li.querySelector('button.link').click()").await;
            okafor.wait_for(".msg.theirs", QUESTION).await;
            let last = format!("{RIVERSIDE_THREAD} .thread li:last-child");
            maria.tab("Messages").await;
            let read = maria.wait_for(&last, "Read").await;
            maria.check(read.contains(QUESTION), &format!("her question is read: {read}")).await;
            costa.wait_for(".todo-item", "Read by Dr. Amara Okafor").await;
            okafor.wait_for(".msg.theirs", "Read by Dr. Amara Okafor").await;
            okafor.click("#nav-todo", "To do").await;

            // Okafor assigns the refill to Costa; she sees it at once.
            let assign = format!(
                "const s = li.querySelector('select'); s.value = {:?}; s.dispatchEvent(new Event('change', {{ bubbles: true }})); {}",
                costa_id.to_string(),
                click_in_item("Assign")
            );
            on_item(&okafor, "atorvastatin", &assign).await;
            okafor.wait_for(".todo-item", "Assigned to Dr. Beatriz Costa").await;
            let mine = costa.wait_for(".todo-item", "Assigned to you").await;
            costa.check(mine.contains("atorvastatin"), &format!("the refill is hers: {mine}")).await;
            screens(&costa, "work queue assigned").await;

            // Costa marks it handled: it leaves both queues.
            on_item(&costa, "atorvastatin", &click_in_item("Mark handled")).await;
            for provider in [&costa, &okafor] {
                wait_until_gone(provider, ".todo", "atorvastatin").await;
            }
            wait_for_count(&okafor, before + 1).await;

            // Offline, Okafor's queue is still there and takes his work.
            okafor.go_offline().await;
            okafor.wait_for(".sync-status", "Offline").await;
            okafor.page.reload().await.expect("reload");
            okafor.wait_for(".sync-status", "Offline").await;
            okafor.click("#nav-todo", "To do").await;
            okafor.wait_for(".todo-item", QUESTION).await;
            on_item(&okafor, QUESTION, &click_in_item("Mark handled")).await;
            wait_until_gone(&okafor, ".todo", QUESTION).await;
            okafor.wait_for(".sync-status", "1 change waiting to be sent").await;
            costa.check(costa.text(".todo").await.contains(QUESTION), "Costa still has the message while Okafor is offline").await;
            okafor.go_online().await;
            wait_until_gone(&costa, ".todo", QUESTION).await;
            wait_until_gone(&okafor, ".sync-status", "waiting to be sent").await;
            wait_for_count(&okafor, before).await;

            // The patient side never shows work items.
            for tab in ["Messages", "Medications"] {
                maria.tab(tab).await;
                maria.never_shows("main", "Assigned", Duration::from_millis(300)).await;
                maria.never_shows("main", "handled", Duration::from_millis(300)).await;
            }
            maria.check(maria.text("#nav-todo").await.is_empty(), "no To do for the patient").await;
        })
        .await;
    portal.stop().await;
}
