//! Issue 14, safety where clinicians write, in Chromium against the demo
//! data set (Maria Santos, born 1968-04-12, allergic to penicillin, takes
//! atorvastatin and amlodipine from Riverside and metformin from Northgate;
//! Dr. Okafor works at Riverside, Dr. Brandt at Northgate). Each warning is
//! screenshotted at 1280 and 390 px (`e2e/screenshots/safety-*`), and
//! nothing may be wider than the window.

use e2e::Person;
use e2e::demo::{DemoPortal, open_chart};

async fn write_tab(provider: &Person) {
    provider.click("nav.tabs button", "Record & prescribe").await;
}

/// Screenshots the page at 390 and 1280 px as `safety-{name}-{width}` and
/// checks that nothing sticks out sideways (outside a box that scrolls on
/// its own, like a results table); back at 1280 px after.
async fn screens(person: &Person, name: &str) {
    for width in [390, 1280] {
        person.set_width(width, false).await;
        let script = format!(
            "(() => {{ const clipped = (e) => {{ for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {{ if (getComputedStyle(p).overflowX !== 'visible') return true; }} return false; }}; \
             const out = (e) => e.getBoundingClientRect().right > {width} + 1; \
             const sw = document.documentElement.scrollWidth; const wide = sw > {width} ? ['the page (' + sw + ' px)'] : []; \
             return wide.concat([...document.querySelectorAll('body *')].filter((e) => out(e) && !out(e.parentElement) && !clipped(e)) \
               .map((e) => e.tagName + '.' + e.className)) \
               .join(' | '); }})()"
        );
        let wider: String =
            person.page.evaluate(script).await.expect("measure").into_value().expect("a string");
        person.check(wider.is_empty(), &format!("{name}: wider than {width} px: {wider}")).await;
        // Measured first: a full-page screenshot resets the page's size.
        e2e::screenshot(&person.page, &format!("safety-{name}-{width}")).await;
    }
}

/// The chart banner, a refused impossible potassium, a confirmed critical
/// one the patient sees marked critical, a prescription against her
/// allergy that needs a reason she then sees, an interaction with another
/// clinic's prescription naming both drugs, and duplicate therapy.
#[tokio::test]
async fn clinicians_are_stopped_or_warned_where_it_matters() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("safety", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
            let okafor = portal.enroll("Okafor").await;
            open_chart(&okafor, "Maria Santos").await;

            // The banner: age (by the browser's date) and every clinic's allergies.
            let today: String = okafor
                .page
                .evaluate("new Date().toISOString()")
                .await
                .expect("date")
                .into_value()
                .expect("a string");
            let age = shared::safety::age("1968-04-12", &today).expect("an age");
            let banner = okafor.wait_for(".chart-banner", &format!("{age} years")).await;
            okafor.check(banner.contains("Allergies: Penicillin (Hives)"), &banner).await;
            screens(&okafor, "banner").await;

            // K 58: impossible, refused in plain words, nothing saved.
            write_tab(&okafor).await;
            okafor.wait_for(".chart-banner", "Penicillin").await;
            okafor.choose("#lab-test", "2823-3").await;
            okafor.type_into("#lab-value", "58").await;
            okafor.click("form button", "Save result").await;
            okafor.wait_for(".error", "58 mmol/L for Potassium").await;
            okafor.wait_for(".error", "is physiologically impossible").await;
            screens(&okafor, "impossible").await;

            // K 6.8: critical, saved only once confirmed, marked critical.
            okafor.type_into("#lab-value", "6.8").await;
            okafor.click("form button", "Save result").await;
            okafor.wait_for(".allergy-warning", "6.8 mmol/L for Potassium").await;
            okafor.wait_for(".allergy-warning", "is a critical value").await;
            okafor.check(okafor.text(".ok").await.is_empty(), "not saved before confirming").await;
            screens(&okafor, "critical-confirm").await;
            okafor.click("form button", "Confirm and save as critical").await;
            okafor.wait_for(".ok", "Saved Potassium").await;
            let row = maria.wait_for("main table", "6.8 mmol/L").await;
            maria.check(row.contains("Critical high"), &row).await;
            maria.never_shows("main", "58 mmol/L", std::time::Duration::from_secs(1)).await;
            screens(&maria, "critical-patient").await;

            // Amoxicillin against her penicillin allergy: needs a reason.
            okafor.choose("#rx-med", "308191").await;
            okafor.wait_for(".allergy-warning", "Allergy: Penicillin (Hives, moderate)").await;
            okafor.click("form button", "Prescribe").await;
            okafor.wait_for(".error", "Give the reason for prescribing despite the warning").await;
            screens(&okafor, "allergy").await;
            okafor.type_into("#rx-reason", "Tolerated amoxicillin in 2024 without reaction").await;
            okafor.click("form button", "Prescribe").await;
            okafor.wait_for(".ok", "Prescribed amoxicillin").await;
            maria.click("nav button", "Medications").await;
            let card = maria.wait_for("article.med", "Tolerated amoxicillin in 2024").await;
            maria.check(card.contains("Prescribed despite a warning"), &card).await;
            screens(&maria, "override-patient").await;

            // Another clinic prescribes warfarin; ibuprofen at Riverside
            // then warns, naming both drugs.
            let brandt = portal.enroll("Brandt").await;
            open_chart(&brandt, "Maria Santos").await;
            write_tab(&brandt).await;
            brandt.choose("#rx-med", "855332").await;
            brandt.click("form button", "Prescribe").await;
            brandt.wait_for(".ok", "Prescribed warfarin").await;
            okafor.choose("#rx-med", "310965").await;
            let warning =
                okafor.wait_for(".allergy-warning", "warfarin sodium 5 MG Oral Tablet").await;
            okafor
                .check(
                    warning.contains("Interaction: ibuprofen 200 MG Oral Tablet with warfarin")
                        && warning.contains("bleeding risk"),
                    &warning,
                )
                .await;
            screens(&okafor, "interaction").await;

            // Simvastatin while she takes atorvastatin: a warning, and the
            // prescriber may go on without a reason.
            okafor.choose("#rx-med", "198211").await;
            let duplicate = okafor.wait_for(".dup-warning", "Already taking atorvastatin").await;
            okafor.check(duplicate.contains("the same class, statin"), &duplicate).await;
            screens(&okafor, "duplicate").await;
            okafor.click("form button", "Prescribe").await;
            okafor.wait_for(".ok", "Prescribed simvastatin").await;
        })
        .await;
    portal.stop().await;
}
