//! Issue 14, appointments, in Chromium against the demo data set: Maria
//! Santos (consenting to Riverside and Northgate) asks Riverside for
//! appointments, offline too; Dr. Okafor (Riverside) answers from To do,
//! Jordan Lee (Riverside's admin) from the clinic page; Dr. Brandt
//! (Northgate) never sees Riverside's requests. Each person has
//! their own browser context and passkey.

use std::time::Duration;

use e2e::Person;
use e2e::demo::{DemoPortal, open_chart};

const APPTS: &str = "section[aria-labelledby=\"appt-h\"]";
const KNEE: &str = "Knee pain when walking";
const FLU: &str = "Flu shot";
const THROAT: &str = "Sore throat for two weeks";
const BP: &str = "Blood pressure check";
const WHY: &str = "Please see the pharmacist first; call us if it lasts";

/// Runs `js` (with `li` bound) on the first element of `selector` that
/// mentions `text`, once it shows.
async fn on(person: &Person, selector: &str, text: &str, js: &str) {
    person.wait_for(selector, text).await;
    let script = format!(
        "(() => {{ const li = [...document.querySelectorAll({selector:?})].find((l) => l.textContent.includes({text:?})); if (!li) return false; {js}; return true; }})()"
    );
    let done: bool = person.page.evaluate(script).await.expect("run").into_value().expect("bool");
    person.check(done, &format!("`{selector}` mentions {text:?}")).await;
}

fn click(label: &str) -> String {
    format!("[...li.querySelectorAll('button')].find((b) => b.textContent === {label:?}).click()")
}

fn fill(selector: &str, value: &str) -> String {
    format!(
        "const i = li.querySelector({selector:?}); i.value = {value:?}; i.dispatchEvent(new Event('input', {{ bubbles: true }}))"
    )
}

/// Maria asks Riverside (`clinic`) for an appointment.
async fn request(maria: &Person, clinic: &str, reason: &str, when: &str) {
    maria.choose("#appt-clinic", clinic).await;
    maria.type_into("#appt-reason", reason).await;
    maria.type_into("#appt-when", when).await;
    maria.click(&format!("{APPTS} form button"), "Request an appointment").await;
    maria.wait_for(&format!("{APPTS} li.appt"), reason).await;
}

async fn wait_until_gone(person: &Person, selector: &str, text: &str) {
    let deadline = tokio::time::Instant::now() + e2e::PATIENCE;
    while person.text(selector).await.contains(text) {
        let waiting = tokio::time::Instant::now() < deadline;
        person.check(waiting, &format!("{text:?} still shows in `{selector}`")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Screenshots at 1280 and 390 px; nothing sideways on a phone, nothing
/// serious for axe-core.
async fn screens(person: &Person, name: &str) {
    for (width, mobile) in [(1280, false), (390, true)] {
        person.set_width(width, mobile).await;
        let shot = person.screenshot(&format!("{name} {width}")).await;
        eprintln!("{name} at {width} px: {}", shot.display());
        let overflow = person.sideways_overflow().await;
        person
            .check(overflow.is_empty(), &format!("nothing sideways at {width}: {overflow:?}"))
            .await;
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

/// Maria, offline, asks Riverside for an appointment; back online it
/// reaches Dr. Okafor's To do, who offers a time; Maria takes it and both
/// see it booked. She asks for a flu shot and cancels it (it leaves his
/// queue); a third request he declines, and she reads why; a fourth the
/// clinic's admin confirms from the clinic page. Dr. Brandt of Northgate
/// never sees Riverside's requests.
#[tokio::test]
async fn a_patient_asks_and_the_clinic_answers_offline_and_online() {
    let portal = DemoPortal::start().await;
    let date = chrono::Utc::now() + chrono::Duration::days(7);
    let day = date.format("%Y-%m-%d").to_string();
    // As the browser writes the clinic's wall time in English ("Dec 12,
    // 2026, 9:30 AM"; the space before AM varies with the ICU version).
    let shown_day = date.format("%b %-d, %Y").to_string();
    let (time, shown) = (format!("{day}T09:30"), format!("{shown_day}, 9:30"));
    let riverside = portal.user("Okafor").clinics[0].to_string();
    portal
        .browser
        .scenario("appointments", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
            let okafor = portal.enroll("Okafor").await;
            let brandt = portal.enroll("Brandt").await;
            for provider in [&okafor, &brandt] {
                open_chart(provider, "Maria Santos").await;
                provider.wait_for(".sync-status", "last synced").await;
                provider.click("#nav-todo", "To do").await;
                provider.wait_for("#todo-h", "To do").await;
            }

            // Offline, Maria asks Riverside for one.
            maria.tab("Allergies & visits").await;
            maria.wait_for(APPTS, "Request an appointment").await;
            maria.go_offline().await;
            maria.wait_for(".sync-status", "Offline").await;
            request(&maria, &riverside, KNEE, "Weekday mornings").await;
            maria.wait_for(&format!("{APPTS} li.appt"), "Requested, waiting to be sent").await;
            maria.wait_for(".sync-status", "1 change waiting to be sent").await;
            okafor.never_shows(".card", KNEE, Duration::from_millis(500)).await;
            maria.go_online().await;
            maria.wait_for(&format!("{APPTS} li.appt"), "Requested, waiting for the clinic").await;

            // It reaches Okafor's queue, with what she asked for and when.
            let item = okafor.wait_for(".todo-item", KNEE).await;
            for words in ["Maria Santos", "Appointment request", "preferred: Weekday mornings"] {
                okafor
                    .check(item.contains(words), &format!("the request says {words:?}: {item}"))
                    .await;
            }
            screens(&okafor, "appointment request in To do").await;
            // A time is needed to offer one.
            on(&okafor, ".todo-item", KNEE, &click("Offer this time")).await;
            okafor.wait_for(".todo-item .error", "Choose the date and time").await;
            on(
                &okafor,
                ".todo-item",
                KNEE,
                &format!(
                    "{}; {}",
                    fill("input[type=datetime-local]", &time),
                    click("Offer this time")
                ),
            )
            .await;
            wait_until_gone(&okafor, ".todo", KNEE).await;

            // Maria takes the time offered: booked, for both.
            let offered = format!("The clinic offers {shown}");
            maria.wait_for(&format!("{APPTS} li.appt"), &offered).await;
            screens(&maria, "appointment offered").await;
            on(&maria, &format!("{APPTS} li.appt"), KNEE, &click("Accept this time")).await;
            maria.wait_for(&format!("{APPTS} li.appt"), &format!("Booked for {shown}")).await;
            open_chart(&okafor, "Maria Santos").await;
            okafor.tab("Allergies & visits").await;
            let booked =
                okafor.wait_for(&format!("{APPTS} li.appt"), &format!("Booked for {shown}")).await;
            okafor.check(booked.contains(KNEE), &format!("Okafor sees it booked: {booked}")).await;

            // A flu shot, asked for and cancelled: it leaves his queue.
            okafor.click("#nav-todo", "To do").await;
            request(&maria, &riverside, FLU, "").await;
            okafor.wait_for(".todo-item", FLU).await;
            on(&maria, &format!("{APPTS} li.appt"), FLU, &click("Cancel request")).await;
            maria.wait_for(&format!("{APPTS} li.appt"), "Cancel request?").await;
            on(&maria, &format!("{APPTS} li.appt"), FLU, &click("Yes, cancel")).await;
            maria.wait_for(&format!("{APPTS} li.appt"), "Cancelled by you").await;
            wait_until_gone(&okafor, ".todo", FLU).await;

            // A third, declined with a reason she reads.
            request(&maria, &riverside, THROAT, "Any afternoon").await;
            on(&okafor, ".todo-item", THROAT, &click("Decline")).await;
            okafor.wait_for(".todo-item .error", "Say why it is declined").await;
            on(
                &okafor,
                ".todo-item",
                THROAT,
                &format!("{}; {}", fill("input[type=text]", WHY), click("Decline")),
            )
            .await;
            wait_until_gone(&okafor, ".todo", THROAT).await;
            maria
                .wait_for(&format!("{APPTS} li.appt"), &format!("Declined by the clinic: {WHY}"))
                .await;
            screens(&maria, "appointments as the patient sees them").await;

            // The clinic's admin, who reads no chart, confirms a fourth
            // from the clinic page; Maria and Okafor see it booked.
            request(&maria, &riverside, BP, "").await;
            maria.wait_for(&format!("{APPTS} li.appt"), "Requested, waiting for the clinic").await;
            okafor.wait_for(".todo-item", BP).await;
            let jordan = portal.enroll("Jordan").await;
            let listed =
                jordan.wait_for("section[aria-labelledby=\"clinic-appt-h\"] li.appt", BP).await;
            jordan
                .check(
                    listed.contains("Maria Santos") && listed.contains("Requested"),
                    &format!("the admin's list: {listed}"),
                )
                .await;
            let shown_to_him = jordan.text("section[aria-labelledby=\"clinic-appt-h\"]").await;
            jordan
                .check(
                    shown_to_him.contains(&format!("Booked for {shown}")),
                    &format!("the booked one is listed too: {shown_to_him}"),
                )
                .await;
            screens(&jordan, "appointments on the clinic page").await;
            let later = format!("{day}T14:00");
            on(
                &jordan,
                "li.appt",
                BP,
                &format!("{}; {}", fill("input[type=datetime-local]", &later), click("Confirm")),
            )
            .await;
            jordan
                .wait_for(
                    "section[aria-labelledby=\"clinic-appt-h\"]",
                    &format!("Booked for {shown_day}, 2:00"),
                )
                .await;
            maria
                .wait_for(&format!("{APPTS} li.appt"), &format!("Booked for {shown_day}, 2:00"))
                .await;
            wait_until_gone(&okafor, ".todo", BP).await;

            // Northgate's provider never had Riverside's requests to answer.
            for words in [KNEE, FLU, THROAT, BP] {
                brandt
                    .check(
                        !brandt.text(".card").await.contains(words),
                        &format!("Brandt's To do shows {words:?}"),
                    )
                    .await;
            }
        })
        .await;
    portal.stop().await;
}
