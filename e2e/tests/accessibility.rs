//! Accessibility (issue 15, WCAG 2.1 AA) in real Chromium against the demo
//! data set: axe-core on every view, as a patient and as clinic staff, at
//! desktop and phone widths; and the patient's main tasks with the
//! keyboard alone.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::Person;
use e2e::demo::{DemoPortal, open_chart};

/// The widths every view is checked at: a laptop and a phone.
const WIDTHS: [(i64, bool); 2] = [(1280, false), (390, true)];

/// Every serious or critical violation axe-core finds, by view. Each view
/// is left in e2e/screenshots at each width, to look at.
#[derive(Default)]
struct Findings(Vec<(String, String)>);

impl Findings {
    /// Runs axe-core on what `person` sees now, at each width, as `view`.
    async fn check(&mut self, person: &Person, view: &str) {
        for (width, mobile) in WIDTHS {
            person.set_width(width, mobile).await;
            // Layout settles before the rules look at sizes and colours.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let at = format!("{} · {view} at {width}px", person.name);
            person.screenshot(&format!("axe {view} at {width}px")).await;
            let violations = person.axe().await;
            eprintln!("axe: checked {at}: {} violations of any impact", violations.len());
            for violation in violations {
                if violation.contains(" (serious): ") || violation.contains(" (critical): ") {
                    self.0.push((at.clone(), violation));
                } else {
                    // Moderate and minor: shown, not failed on.
                    eprintln!("axe (not failed on): {at}: {violation}");
                }
            }
        }
        person.set_width(1280, false).await;
    }

    /// Prints every violation and a count per rule, then fails if any.
    fn assert_none(self) {
        let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
        for (view, violation) in &self.0 {
            eprintln!("axe: {view}: {violation}");
            *rules.entry(violation.split(' ').next().unwrap_or_default()).or_default() += 1;
        }
        eprintln!("axe: serious or critical violations by rule: {rules:?}");
        assert!(
            self.0.is_empty(),
            "{} serious or critical axe-core violations (above)",
            self.0.len()
        );
    }
}

/// Opens every `<details>` of the page, so what they hold is checked too.
/// Waits (a frame or two) for the focus to reach the view's heading after
/// the navigation to `view`.
async fn focus_on_heading(person: &Person, view: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = person.focused().await;
        if now.starts_with("h2") {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            person.check(false, &format!("after {view} the focus is on its heading: {now}")).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn open_details(person: &Person) {
    let script = "document.querySelectorAll('details').forEach((d) => { d.open = true; })";
    person.page.evaluate(script).await.expect("open the details");
}

/// axe-core finds nothing serious or critical in any view: the sign-in
/// page; each view of Maria's record (with a refill she requested, an
/// error on a form, and, offline with a message not sent, the sign-out
/// question); Dr. Okafor's patient list, each tab of Maria's chart (with
/// her refill request to answer and a form's errors) and his account; at
/// 1280 and 390 px.
#[tokio::test]
async fn axe_finds_nothing_serious_in_any_view_for_patients_and_staff() {
    let portal = DemoPortal::start().await;
    let mut found = Findings::default();
    portal
        .browser
        .scenario("axe", async {
            // The sign-in page, with its "lost your phone" answer open.
            let visitor = portal.browser.person("Visitor").await;
            visitor.page.goto(&portal.app.base_url).await.expect("open the portal");
            visitor.wait_for("main button", "Sign in with a passkey").await;
            open_details(&visitor).await;
            // The check fires: a button with no name and faint text,
            // planted for a moment, are found.
            let plant = "(() => { const d = document.createElement('div'); d.id = 'planted'; \
                d.innerHTML = '<button type=\"button\"></button><p style=\"color: #bbb\">faint</p>'; \
                document.querySelector('main').append(d); })()";
            visitor.page.evaluate(plant).await.expect("plant violations");
            let planted = visitor.axe().await;
            for rule in ["button-name (critical)", "color-contrast (serious)"] {
                let seen = planted.iter().any(|v| v.starts_with(rule) && v.contains("#planted"));
                visitor.check(seen, &format!("axe-core finds {rule}: {planted:?}")).await;
            }
            visitor.page.evaluate("document.getElementById('planted').remove()").await.expect("unplant");
            found.check(&visitor, "sign-in page").await;

            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
            found.check(&maria, "Results").await;
            maria.click("main button", "View trend").await;
            maria.wait_for("main h2", "over time").await;
            maria.click("main summary", "Show as table").await;
            maria.wait_for(".as-table[open] table", "Date").await;
            found.check(&maria, "Trend, with its table").await;
            maria.tab("Medications").await;
            maria.click("article.med button", "Request a refill").await;
            maria.wait_for("article.med", "waiting for the clinic").await;
            open_details(&maria).await;
            found.check(&maria, "Medications").await;
            maria.tab("Messages").await;
            maria.click(".compose button", "Send").await;
            maria.wait_for(".compose .error", "Write a message first").await;
            let tied = "(() => { const box = document.querySelector('.compose textarea[aria-invalid=true]'); \
                return !!box && document.getElementById(box.getAttribute('aria-describedby')).innerText.includes('Write a message first'); })()";
            let tied: bool = maria.page.evaluate(tied).await.expect("the error's field").into_value().expect("a boolean");
            maria.check(tied, "the message box is marked invalid and described by its error").await;
            found.check(&maria, "Messages, with a form's error").await;
            maria.tab("Allergies & visits").await;
            maria.wait_for("main", "Penicillin").await;
            found.check(&maria, "Allergies & visits").await;
            maria.tab("Summary & download").await;
            maria.wait_for("main", "Download my record").await;
            found.check(&maria, "Summary & download").await;
            maria.tab("Account").await;
            maria.wait_for("main", "Who accessed your record").await;
            found.check(&maria, "Account").await;
            // Its buttons named by what they act on, to look at.
            let consents = "document.getElementById('consent-h').scrollIntoView()";
            for (width, mobile) in [(390, true), (1280, false)] {
                maria.set_width(width, mobile).await;
                maria.page.evaluate(consents).await.expect("scroll to the clinics");
                maria.screenshot(&format!("clinics with access at {width}px")).await;
            }

            let okafor = portal.enroll("Okafor").await;
            okafor.wait_for("main", "Maria Santos").await;
            found.check(&okafor, "Patients").await;
            open_chart(&okafor, "Maria Santos").await;
            okafor.wait_for("main", "Hemoglobin A1c").await;
            found.check(&okafor, "chart: Results").await;
            for (tab, shows) in [
                ("Medications", "Approve"),
                ("Messages", "Send"),
                ("Allergies & visits", "Penicillin"),
                ("Record & prescribe", "Prescribe"),
            ] {
                okafor.click("nav.tabs button", tab).await;
                okafor.wait_for("main", shows).await;
                open_details(&okafor).await;
                found.check(&okafor, &format!("chart: {tab}")).await;
            }
            okafor.choose("#lab-test", "2823-3").await;
            okafor.type_into("#lab-value", "high").await;
            okafor.click("form button", "Save result").await;
            okafor.wait_for(".error", "must be a number").await;
            okafor.choose("#rx-med", "308191").await;
            okafor.click("form button", "Prescribe").await;
            okafor.wait_for(".error", "Give the reason").await;
            // Each error is tied to its field, the other fields left alone.
            for (field, error) in [("#lab-value", "lab-error"), ("#rx-reason", "rx-error")] {
                let tied = format!(
                    "document.querySelector('{field}[aria-invalid=true][aria-describedby={error}]') !== null \
                     && document.querySelectorAll('[aria-invalid]').length === 2 \
                     && document.getElementById('{error}') !== null"
                );
                let tied: bool = okafor.page.evaluate(tied).await.expect("the error's field").into_value().expect("a boolean");
                okafor.check(tied, &format!("the error is tied to {field} alone")).await;
            }
            found.check(&okafor, "chart: Record & prescribe, with errors").await;
            okafor.tab("Account").await;
            okafor.wait_for("main", "Passkeys").await;
            found.check(&okafor, "Account").await;

            // A clinic admin's page, with a link just issued and an error.
            let jordan = portal.enroll("Jordan").await;
            jordan.wait_for(".people", "Maria Santos").await;
            jordan.type_into("#invite-name", "Dr. New").await;
            jordan.click("button", "Invite").await;
            jordan.wait_for(".notice", "one-time link").await;
            jordan.type_into("#clinic-days", "0").await;
            jordan.click("button", "Save").await;
            jordan.wait_for("#clinic-error", "working days").await;
            found.check(&jordan, "Clinic (admin), a link issued and an error").await;

            // Offline with a message not sent: the offline notices, and
            // the question signing out asks.
            maria.go_offline().await;
            maria.tab("Messages").await;
            maria.type_into("textarea", "Is the new dose working?").await;
            maria.click(".compose button", "Send").await;
            maria.wait_for(".msg", "Sent, waiting for the network").await;
            found.check(&maria, "Messages offline, a message waiting").await;
            maria.tab("Account").await;
            maria.click("main button", "Sign out and remove this device's copy").await;
            maria.wait_for("[role=alertdialog]", "waiting to be sent").await;
            found.check(&maria, "Account offline, the sign-out question").await;
        })
        .await;
    portal.stop().await;
    found.assert_none();
}

/// Maria's main tasks with the keyboard alone (Tab, Shift+Tab, Enter,
/// Space and typed characters as key events): from a fresh page, past the
/// skip link to the main navigation; Results; Medications, where she
/// requests a refill of amlodipine; Messages, where she writes to
/// Riverside and sends it; and her account. After each switch the focus is
/// on the view's content, and each action shows what it did.
#[tokio::test]
async fn a_patient_does_her_main_tasks_with_the_keyboard_alone() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("keyboard", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
            // A fresh page: nothing focused, nothing clicked.
            maria.page.reload().await.expect("reload");
            maria.wait_for("main", "Hemoglobin A1c").await;

            maria.press("Tab", false).await;
            let skip = maria.focused().await;
            maria.check(skip.contains("Skip to content"), &format!("first Tab: {skip}")).await;
            maria.press("Tab", false).await;
            let first = maria.focused().await;
            maria.check(first == "button: Results", &format!("then the navigation: {first}")).await;

            // Medications, with Enter; the focus goes to the view.
            maria.press("Tab", false).await;
            maria.press("Enter", false).await;
            maria.wait_for("main h2", "Active prescriptions").await;
            focus_on_heading(&maria, "Medications").await;
            maria.tab_to("Request a refill of amlodipine", false, 30).await;
            maria.press("Enter", false).await;
            let card = maria.wait_for("article.med", "Refill requested").await;
            maria.check(card.contains("amlodipine"), &card).await;
            // A screen reader hears what happened, politely.
            maria.wait_for(".sr-only[role=status]", "Refill requested for amlodipine").await;
            maria.check(card.contains("waiting"), &card).await;
            let now = maria.focused().await;
            maria.screenshot("keyboard: refill requested").await;
            maria
                .check(
                    now.contains("amlodipine") && now != "body",
                    &format!("after the request the focus stays on its medication: {now}"),
                )
                .await;

            // Back to the navigation, Messages with Space.
            maria.tab_to("button: Messages", true, 40).await;
            maria.press("Space", false).await;
            maria.wait_for("main h2", "Messages with").await;
            focus_on_heading(&maria, "Messages").await;
            maria.tab_to("Your message to Riverside", false, 30).await;
            maria.type_keys("Thank you, see you soon").await;
            maria.tab_to("Send to Riverside", false, 3).await;
            maria.press("Enter", false).await;
            maria.wait_for(".msg.mine", "Thank you, see you soon").await;
            maria.wait_for(".sr-only[role=status]", "Message sent to Riverside").await;
            let now = maria.focused().await;
            maria.check(now.contains("Send to Riverside"), &format!("after sending: {now}")).await;

            // Results from the navigation: the focus goes to the view.
            maria.tab_to("button: Results", true, 40).await;
            maria.press("Enter", false).await;
            maria.wait_for("main h2", "Results").await;
            focus_on_heading(&maria, "Results").await;
            // A trend from its result, and Back to Results.
            maria.tab_to("View trend of", false, 60).await;
            maria.press("Enter", false).await;
            maria.wait_for("main h2", "over time").await;
            focus_on_heading(&maria, "over time").await;
            maria.tab_to("Show as table", false, 10).await;
            maria.press("Space", false).await;
            maria.wait_for(".as-table[open] table", "Date").await;
            maria.page.evaluate("history.back()").await.expect("Back");
            maria.wait_for("main h3", "Latest results").await;

            // Account, the last of the navigation.
            maria.tab_to("button: Account", true, 300).await;
            maria.press("Enter", false).await;
            maria.wait_for("main", "Signed in as Maria").await;
            focus_on_heading(&maria, "Account").await;
            maria.tab_to("Sign out and remove this device's copy", false, 3).await;
        })
        .await;
    portal.stop().await;
}
