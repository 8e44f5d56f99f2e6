//! Browser flows against a real server on a free port with its own database.

use e2e::{Browser, app_dist, wait_for_text};
use server::storage::Backend;
use server::testing::{TestDatabase, TestServer};

#[tokio::test]
async fn the_demo_app_renders_in_chromium() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, app_dist()).await;
    server::demo::seed(&app.store).await.expect("seed demo data");
    let browser = Browser::launch().await;
    let page = browser.open(&format!("{}/", app.base_url)).await;
    wait_for_text(&page, "h1", "Patient portal").await;
    wait_for_text(&page, ".sync-status", "Online").await;
    browser.close().await;
    app.stop().await;
}
