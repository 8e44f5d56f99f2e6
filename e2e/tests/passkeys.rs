//! Scenario 1 of the e2e issue: a patient opens their enrollment link,
//! registers a passkey (Chromium's virtual authenticator), and sees their
//! results synced from the real server.

use chromiumoxide::cdp::browser_protocol::web_authn::{
    AddVirtualAuthenticatorParams, AuthenticatorProtocol, AuthenticatorTransport, EnableParams,
    VirtualAuthenticatorOptions,
};
use e2e::{Browser, app_dist, wait_for_text};
use server::storage::{Backend, UserRole};
use server::testing::{TestDatabase, TestServer};

#[tokio::test]
async fn a_patient_enrolls_with_a_passkey_and_sees_their_results() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, app_dist()).await;
    let users = server::demo::seed(&app.store).await.expect("seed demo data");
    let maria = users.iter().find(|u| u.role == UserRole::Patient).expect("a demo patient");
    let (link, _) = server::auth::accounts::issue_enrollment(&app.store, &app.base_url, maria.id, None).await.expect("link");

    let browser = Browser::launch().await;
    let page = browser.open("about:blank").await;
    page.execute(EnableParams::default()).await.expect("enable WebAuthn");
    let options = VirtualAuthenticatorOptions::builder()
        .protocol(AuthenticatorProtocol::Ctap2)
        .transport(AuthenticatorTransport::Internal)
        .has_resident_key(true)
        .has_user_verification(true)
        .is_user_verified(true)
        .automatic_presence_simulation(true)
        .build()
        .expect("authenticator options");
    page.execute(AddVirtualAuthenticatorParams::new(options)).await.expect("virtual authenticator");
    page.goto(link.as_str()).await.expect("open the enrollment link");
    wait_for_text(&page, "h2", "Create your passkey").await;
    page.find_element("button.primary").await.expect("the create button").click().await.expect("click");
    // Signed in, synced, and the record is on the page.
    wait_for_text(&page, "body", "Hemoglobin A1c").await;
    for button in page.find_elements("button").await.expect("buttons") {
        if button.inner_text().await.ok().flatten().is_some_and(|t| t.contains("Medications")) {
            button.click().await.expect("open medications");
            break;
        }
    }
    wait_for_text(&page, "body", "metformin").await;
    browser.close().await;
    app.stop().await;
}
