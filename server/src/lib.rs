//! The portal server: serves the web app, authenticates people, and merges
//! and stores the Automerge replicas they sync.

pub mod auth;
pub mod config;
pub mod demo;
pub mod error;
mod handlers;
mod router;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;
pub use router::router;
use storage::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub static_dir: Arc<PathBuf>,
    pub public_url: Arc<str>,
    /// Passkey (WebAuthn) settings, the public origin and cookie flags.
    pub auth: Arc<auth::AuthConfig>,
}

/// Serves on `listener` until `shutdown` resolves. Tests bind port 0 and pass
/// their own listener.
pub async fn launch(
    config: &Config,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let port = listener.local_addr()?.port();
    let public_url = config.public_url(port);
    let state = AppState {
        store,
        static_dir: Arc::new(config.static_dir.clone()),
        auth: Arc::new(auth::AuthConfig::new(&public_url)?),
        public_url: public_url.into(),
    };
    if !state.static_dir.join("index.html").is_file() {
        tracing::warn!(dir = %state.static_dir.display(), "the web app is not built; run scripts/build-app");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
