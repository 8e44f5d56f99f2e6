//! The patient's experience (issue 15), in real Chromium against a real
//! server with the demo data set.

use e2e::demo::DemoPortal;

/// On a phone (390 and 320 CSS px) no view of Maria's record drags sideways
/// and no column is cut off: results become cards. Screenshots of each view
/// at 1280, 390 and 320 px are left in e2e/screenshots to look at.
#[tokio::test]
async fn nothing_scrolls_sideways_on_a_phone() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("phones", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
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
