//! The patient's experience (issue 15), in real Chromium against a real
//! server with the demo data set.

use e2e::demo::DemoPortal;

/// Results read as a patient would say them; and on a phone (390 and 320
/// CSS px) no view of Maria's record drags sideways and no column is cut
/// off: results become cards. Screenshots of each view
/// at 1280, 390 and 320 px are left in e2e/screenshots to look at.
#[tokio::test]
async fn results_read_plainly_and_nothing_scrolls_sideways_on_a_phone() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("phones", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
            // Tests by the names patients know, the coded name beside them,
            // and units as people write them.
            let egfr = maria.wait_for("main th", "eGFR (kidney function)").await;
            maria
                .check(egfr.contains("Glomerular filtration rate"), "the LOINC name is beside it")
                .await;
            maria.wait_for("main", "mL/min/1.73 m²").await;
            maria.never_shows("main", "{1.73_m2}", std::time::Duration::from_millis(300)).await;
            for (width, mobile) in [(1280, false), (390, true), (320, true)] {
                maria.set_width(width, mobile).await;
                for (view, shows) in [
                    ("Results", "Hemoglobin A1c"),
                    ("Medications", "Refill"),
                    ("Messages", "Send"),
                    ("Allergies & visits", "Allerg"),
                    ("Account", "Passkeys"),
                ] {
                    maria.tab(view).await;
                    maria.wait_for("main", shows).await;
                    maria.screenshot(&format!("{view} at {width}px")).await;
                    let over = maria.sideways_overflow().await;
                    maria
                        .check(
                            over.is_empty(),
                            &format!("{view} at {width}px sticks out sideways: {over:?}"),
                        )
                        .await;
                }
            }
        })
        .await;
    portal.stop().await;
}
