//! A real server on port 0 with its own database, stopped when dropped.

use std::path::PathBuf;

use server::config::{Config, DatabaseUrl};
use server::storage::Store;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::TestDatabase;

/// A real server on a free port, stopped when dropped.
pub struct TestServer {
    pub base_url: String,
    pub store: Store,
    pub hub: std::sync::Arc<server::sync::Hub>,
    /// The server's clock: `advance` it to make time pass for the server.
    pub clock: server::Clock,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(database: &TestDatabase, static_dir: PathBuf) -> Self {
        Self::start_with(database, database.store().await, static_dir, |_| {}).await
    }

    /// A server on `store`, e.g. one connected through a `Relay`.
    pub async fn start_with_store(
        database: &TestDatabase,
        store: Store,
        static_dir: PathBuf,
    ) -> Self {
        Self::start_with(database, store, static_dir, |_| {}).await
    }

    /// A server on `store` with its state adjusted first (e.g. smaller
    /// rate limits).
    pub async fn start_with(
        database: &TestDatabase,
        store: Store,
        static_dir: PathBuf,
        adjust: impl FnOnce(&mut server::AppState),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let port = listener.local_addr().expect("local address").port();
        let config = Config {
            addr: listener.local_addr().expect("local address"),
            database_url: database.url.parse::<DatabaseUrl>().expect("url"),
            public_url: None,
            static_dir,
            trust_forwarded_for: false,
            doc_cache_mb: server::config::DEFAULT_DOC_CACHE_MB,
        };
        let (stop, stopped) = oneshot::channel();
        let server_store = store.clone();
        let mut state = server::state(&config, server_store, port).expect("server state");
        state.test_identities = true;
        adjust(&mut state);
        let hub = state.hub.clone();
        let clock = state.clock.clone();
        // Ready means listening to other instances too (PostgreSQL):
        // `/healthz` answers 503 until then.
        if let Some(mut status) = hub.cluster_status() {
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                status.wait_for(|s| s.listening),
            )
            .await
            .expect("the listener connects")
            .expect("the listener runs");
        }
        let task = tokio::spawn(async move {
            server::serve(state, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            base_url: format!("http://localhost:{port}"),
            store,
            hub,
            clock,
            stop: Some(stop),
            task: Some(task),
        }
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
