//! The `/sync` WebSocket: Automerge sync for many documents over one
//! connection, validated against the write policy, durable before it is
//! acknowledged, relayed live to every replica allowed to read.

mod backfill;
mod cache;
mod canonical;
mod cluster;
mod connection;
mod ended;
mod hub;
mod parallel;
mod recheck;
pub mod summary;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::response::Response;
use shared::sync::inbound::limits::MAX_CLIENT_FRAME_BYTES;

pub use backfill::backfill_index;
pub use cache::CacheStats;
pub use canonical::estimated_doc_bytes;
pub use cluster::{ClusterStatus, DEAF_AFTER, DEAF_POLL, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT};
pub use connection::MAX_DOCS_PER_CONNECTION;
pub use ended::{CLOSE_SESSION_ENDED, Ended, SESSION_RECHECK};
pub(crate) use hub::Accepted;
pub use hub::Hub;
pub use recheck::watch_sessions;

use crate::storage::UserRecord;
use crate::{AppState, Error};

/// The session id of test identities (`x-portal-test-user`, tests only):
/// no session row; the periodic check looks at the user alone.
pub(crate) const TEST_SESSION: &str = "test";

/// Read buffer of each sync socket.
pub const SOCKET_READ_BUFFER: usize = 4 * 1024;

/// Who is at the other end of a sync connection.
#[derive(Clone, Debug)]
pub struct SyncPeer {
    pub user: UserRecord,
    /// The session (device), named in audit rows.
    pub session_id: String,
}

pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, Error> {
    let peer = identify(&state, &headers).await?;
    Ok(ws
        // Tungstenite zero-fills its whole read buffer before every read
        // (128 KiB by default): with many mostly idle sockets that memset
        // was a sixth of the server's time and 128 KiB of memory per
        // socket. Larger frames still arrive, in more reads.
        .read_buffer_size(SOCKET_READ_BUFFER)
        // What a client sends is bounded before it is buffered whole.
        .max_message_size(MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(MAX_CLIENT_FRAME_BYTES)
        .on_upgrade(move |socket| connection::run(state, peer, socket)))
}

async fn identify(state: &AppState, headers: &HeaderMap) -> Result<SyncPeer, Error> {
    #[cfg(feature = "testing")]
    if state.test_identities
        && let Some(user) = headers.get("x-portal-test-user").and_then(|v| v.to_str().ok())
    {
        let id = user.parse().map_err(|_| Error::Unauthorized)?;
        let user = state.store.user(id).await?.ok_or(Error::Unauthorized)?;
        return Ok(SyncPeer { user, session_id: TEST_SESSION.into() });
    }
    // A valid session cookie and the portal's own Origin (no cross-site sockets).
    let auth = crate::auth::authenticate(state, headers).await?;
    Ok(SyncPeer { user: auth.user, session_id: auth.session_id })
}
