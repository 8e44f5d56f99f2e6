//! The portal server: serves the web app, authenticates people, and merges
//! and stores the Automerge replicas they sync.

pub mod auth;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod fhir;
mod handlers;
pub mod ratelimit;
mod router;
pub mod smart;
pub mod storage;
pub mod sync;
pub mod zone;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use clock::Clock;
pub use config::Config;
pub use error::Error;
pub use router::router;
use storage::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hub: Arc<sync::Hub>,
    /// Lets tests name the sync user in a header; only `testkit::TestServer` sets it.
    #[cfg(feature = "testing")]
    pub test_identities: bool,
    pub static_dir: Arc<PathBuf>,
    pub public_url: Arc<str>,
    /// Passkey (WebAuthn) settings, the public origin and cookie flags.
    pub auth: Arc<auth::AuthConfig>,
    /// Bounds on anonymous ceremony requests.
    pub limits: Arc<ratelimit::RateLimiter>,
    /// The time everything is judged and stored by (the hub's too).
    pub clock: Clock,
}

impl AppState {
    /// Now, by `clock` (ms since the Unix epoch).
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// Serves on `listener` until `shutdown` resolves. Tests bind port 0 and pass
/// their own listener.
pub async fn launch(
    config: &Config,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let state = state(config, store, listener.local_addr()?.port())?;
    serve(state, listener, shutdown).await
}

/// The state a server runs with.
pub fn state(config: &Config, store: Store, port: u16) -> Result<AppState, Error> {
    let public_url = config.public_url(port);
    let clock = Clock::default();
    Ok(AppState {
        hub: sync::Hub::start(store.clone(), clock.clone(), config.doc_cache_bytes()),
        store,
        #[cfg(feature = "testing")]
        test_identities: false,
        static_dir: Arc::new(config.static_dir.clone()),
        auth: Arc::new(auth::AuthConfig::new(&public_url)?),
        public_url: public_url.into(),
        limits: Arc::new(ratelimit::RateLimiter::new(
            ratelimit::Limits::default(),
            config.trust_forwarded_for,
        )),
        clock,
    })
}

/// Serves `state` on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if !state.static_dir.join("index.html").is_file() {
        tracing::warn!(dir = %state.static_dir.display(), "the web app is not built; run scripts/build-app");
    }
    // Sync pushes are small frames that should leave at once (no Nagle delay).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let purge = tokio::spawn(purge_hourly(state.store.clone(), state.clock.clone()));
    let sessions = tokio::spawn(sync::watch_sessions(state.hub.clone()));
    let backfill = tokio::spawn(sync::backfill_index(state.hub.clone()));
    // Peer addresses reach the rate limiter of anonymous ceremonies.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    purge.abort();
    sessions.abort();
    backfill.abort();
    Ok(served?)
}

/// Deletes ended sessions and expired enrollment links once an hour, so
/// those tables hold only what can still be used.
async fn purge_hourly(store: storage::Store, clock: Clock) {
    let idle = i64::try_from(auth::SESSION_IDLE.as_millis()).unwrap_or(i64::MAX);
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(60 * 60));
    loop {
        hourly.tick().await;
        match store.purge_ended(idle, clock.now_ms()).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "purged ended sessions and expired enrollment links"),
            Err(error) => tracing::warn!(%error, "could not purge ended sessions"),
        }
    }
}
