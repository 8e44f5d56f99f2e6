//! Scenario 1 of the e2e issue: a patient opens their enrollment link,
//! registers a passkey (Chromium's virtual authenticator), and sees their
//! results synced from the real server. Scenarios 2–8 are in scenarios.rs.

use e2e::{Browser, app_dist};
use server::storage::Backend;
use shared::api::UserRole;
use testkit::{TestDatabase, TestServer};

#[tokio::test]
async fn a_patient_enrolls_with_a_passkey_and_sees_their_results() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, app_dist()).await;
    let users = server::demo::seed(&app.store).await.expect("seed demo data");
    let maria = users.iter().find(|u| u.role == UserRole::Patient).expect("a demo patient");
    let (link, _) = server::auth::accounts::issue_enrollment(
        &app.store,
        &app.base_url,
        maria.id,
        None,
        app.clock.now_ms(),
    )
    .await
    .expect("link");

    let browser = Browser::launch().await;
    browser
        .scenario("enrollment", async {
            let maria = browser.enroll("Maria", &link).await;
            // Signed in, synced, and the record is on the page.
            maria.wait_for("body", "Hemoglobin A1c").await;
            maria.click("nav button", "Medications").await;
            maria.wait_for("body", "metformin").await;
        })
        .await;
    browser.close().await;
    app.stop().await;
}
