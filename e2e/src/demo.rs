//! A demo portal for browser scenarios: its own database, a real server
//! seeded with the demo data set, and one Chromium.

use server::demo::DemoUser;
use server::storage::Backend;
use testkit::{TestDatabase, TestServer};

use crate::{Browser, Person, app_dist};

pub struct DemoPortal {
    _db: TestDatabase,
    pub app: TestServer,
    pub users: Vec<DemoUser>,
    pub browser: Browser,
}

impl DemoPortal {
    pub async fn start() -> Self {
        let db = TestDatabase::new(Backend::Sqlite).await;
        let app = TestServer::start(&db, app_dist()).await;
        let users = server::demo::seed(&app.store).await.expect("seed demo data");
        let browser = Browser::launch().await;
        Self { _db: db, app, users, browser }
    }

    pub fn user(&self, name: &str) -> &DemoUser {
        self.users
            .iter()
            .find(|u| u.name.contains(name))
            .unwrap_or_else(|| panic!("no demo user {name}"))
    }

    /// A demo user who opens a fresh enrollment link and creates a passkey.
    pub async fn enroll(&self, name: &str) -> Person {
        self.enroll_with(name, false).await
    }

    /// [`DemoPortal::enroll`] on a device whose authenticator has the
    /// WebAuthn `prf` extension or not.
    pub async fn enroll_with(&self, name: &str, prf: bool) -> Person {
        let user = self.user(name);
        let (link, _) = server::auth::accounts::issue_enrollment(
            &self.app.store,
            &self.app.base_url,
            user.id,
            None,
            self.app.clock.now_ms(),
        )
        .await
        .expect("enrollment link");
        self.browser.enroll_with(name, &link, prf).await
    }

    pub async fn stop(self) {
        self.browser.close().await;
        self.app.stop().await;
    }
}

/// A provider opens a patient's chart from their patient list.
pub async fn open_chart(provider: &Person, patient: &str) {
    provider.click(".main-nav button", "Patients").await;
    provider.type_into("#patient-search", patient).await;
    provider.click("button.patient", patient).await;
    provider.wait_for(".chart-head h2", patient).await;
}
