//! Helpers for tests: a fresh database per test on either engine, and a real
//! server on port 0. Compiled only with the `testing` feature, which `portal`
//! never enables.

use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{Config, DatabaseUrl};
use crate::storage::{Backend, Store};

/// PostgreSQL server used by tests; override with `PORTAL_TEST_POSTGRES`.
pub fn postgres_admin_url() -> String {
    std::env::var("PORTAL_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test: a file in a temporary directory, or a
/// freshly created PostgreSQL database that is dropped afterwards.
pub struct TestDatabase {
    pub url: String,
    backend: Backend,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("portal.db").display());
                Self { url, backend, name: String::new(), _dir: Some(dir) }
            }
            Backend::Postgres => {
                let name = format!("portal_test_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test and is not reachable at {admin}: {e}"));
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
                Self { url: format!("{base}/{name}"), backend, name, _dir: None }
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("connect to test database")
    }

    /// Drops a PostgreSQL test database (call after closing its pools).
    pub async fn drop_database(self) {
        if self.backend == Backend::Postgres {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url()).await.expect("connect");
            sqlx::Executor::execute(&mut conn, format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await
                .expect("drop test database");
        }
    }
}

/// A real server on a free port, stopped when dropped.
pub struct TestServer {
    pub base_url: String,
    pub store: Store,
    pub hub: std::sync::Arc<crate::sync::Hub>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(database: &TestDatabase, static_dir: PathBuf) -> Self {
        Self::start_with(database, static_dir, |_| {}).await
    }

    /// Like `start`, with the server's state adjusted first (e.g. smaller
    /// rate limits).
    pub async fn start_with(database: &TestDatabase, static_dir: PathBuf, adjust: impl FnOnce(&mut crate::AppState)) -> Self {
        let store = database.store().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let port = listener.local_addr().expect("local address").port();
        let config = Config {
            addr: listener.local_addr().expect("local address"),
            database_url: database.url.parse::<DatabaseUrl>().expect("url"),
            public_url: None,
            static_dir,
            trust_forwarded_for: false,
        };
        let (stop, stopped) = oneshot::channel();
        let server_store = store.clone();
        let mut state = crate::state(&config, server_store, port).expect("server state");
        state.test_identities = true;
        adjust(&mut state);
        let hub = state.hub.clone();
        let task = tokio::spawn(async move {
            crate::serve(state, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self { base_url: format!("http://localhost:{port}"), store, hub, stop: Some(stop), task: Some(task) }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.store.close().await;
    }
}
