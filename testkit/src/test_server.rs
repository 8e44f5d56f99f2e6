//! Helpers for tests: a fresh database per test on either engine, a real
//! server on port 0, and a relay in front of the database that can go
//! silent. Compiled only with the `testing` feature, which `portal`
//! never enables.

use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::config::{Config, DatabaseUrl};
use crate::storage::{Backend, Store};

/// PostgreSQL server used by tests; override with `PORTAL_TEST_POSTGRES`.
pub fn postgres_admin_url() -> String {
    std::env::var("PORTAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
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
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url())
                .await
                .expect("connect");
            sqlx::Executor::execute(
                &mut conn,
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str(),
            )
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
        adjust: impl FnOnce(&mut crate::AppState),
    ) -> Self {
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
            crate::serve(state, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            base_url: format!("http://localhost:{port}"),
            store,
            hub,
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

/// A TCP relay in front of a database that a test can make go silent: it
/// stops moving bytes in both directions but keeps every socket open, as a
/// firewall that forgot an idle flow or a network partition does. Neither
/// end sees an error; only a timeout can tell. Stopped when dropped.
pub struct Relay {
    addr: std::net::SocketAddr,
    control: watch::Sender<RelayState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RelayState {
    silent: bool,
    /// Connections opened before the latest `cut` close.
    epoch: u64,
}

impl Relay {
    /// A relay on 127.0.0.1:0 to the host and port of `database_url`.
    pub async fn start(database_url: &str) -> Self {
        let url = webauthn_rs::prelude::Url::parse(database_url).expect("database URL");
        let upstream =
            format!("{}:{}", url.host_str().expect("database host"), url.port().unwrap_or(5432));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let (control, _) = watch::channel(RelayState::default());
        let task = tokio::spawn(relay(listener, upstream, control.subscribe()));
        Self { addr, control, task }
    }

    /// `database_url` with its host and port replaced by the relay's.
    pub fn url(&self, database_url: &str) -> String {
        let mut url = webauthn_rs::prelude::Url::parse(database_url).expect("database URL");
        url.set_host(Some(&self.addr.ip().to_string())).expect("host");
        url.set_port(Some(self.addr.port())).expect("port");
        url.to_string()
    }

    /// Stops forwarding on every connection, open or new. Bytes already in
    /// flight are held, not dropped, so a connection that outlives the
    /// silence carries on intact.
    pub fn silence(&self) {
        self.control.send_modify(|s| s.silent = true);
    }

    pub fn resume(&self) {
        self.control.send_modify(|s| s.silent = false);
    }

    /// Closes every connection open now; new ones work.
    pub fn cut(&self) {
        self.control.send_modify(|s| s.epoch += 1);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The connections live in the accepting task's `JoinSet`, which
        // aborts them as it is dropped.
        self.task.abort();
    }
}

async fn relay(listener: TcpListener, upstream: String, control: watch::Receiver<RelayState>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let upstream = upstream.clone();
        let control = control.clone();
        connections.spawn(async move {
            let epoch = control.borrow().epoch;
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pump(client_read, server_write, control.clone(), epoch),
                pump(server_read, client_write, control, epoch),
            );
        });
        // Forget finished connections.
        while connections.try_join_next().is_some() {}
    }
}

/// Moves bytes one way until end of stream or a cut; while the relay is
/// silent it neither reads nor writes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut control: watch::Receiver<RelayState>,
    epoch: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let Ok(flowing) =
            control.wait_for(|s| s.epoch != epoch || !s.silent).await.map(|s| s.epoch == epoch)
        else {
            return;
        };
        if !flowing {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = control.wait_for(|s| s.epoch != epoch) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        // Read just as the relay went silent: held until it resumes.
        let Ok(flowing) =
            control.wait_for(|s| s.epoch != epoch || !s.silent).await.map(|s| s.epoch == epoch)
        else {
            return;
        };
        if !flowing {
            return;
        }
        let written = tokio::select! {
            written = to.write_all(&buffer[..n]) => written,
            _ = control.wait_for(|s| s.epoch != epoch) => return,
        };
        if written.is_err() {
            return;
        }
    }
}
