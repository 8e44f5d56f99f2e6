//! The per-instance re-check: every `SESSION_RECHECK`, one query for the
//! sessions of all this instance's open sockets and one for the access
//! version, so what another instance ended or changed reaches every socket
//! within the bound (see `ended.rs`).

use std::sync::Arc;

use super::ended::SESSION_RECHECK;
use super::hub::Hub;
use crate::auth::EndReason;

/// Runs for as long as the server: every `SESSION_RECHECK`, closes the
/// sockets of open sessions that are no longer live (ended here or on
/// another instance, expired, or their user revoked), records activity of
/// the sessions whose sockets sent frames, and if the access version moved
/// makes every socket re-read what it may read.
pub async fn watch_sessions(hub: Arc<Hub>) {
    let idle = i64::try_from(crate::auth::SESSION_IDLE.as_millis()).unwrap_or(i64::MAX);
    let mut timer = tokio::time::interval(SESSION_RECHECK);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut version = None;
    loop {
        timer.tick().await;
        let store = hub.store();
        let (open, active) = hub.open_sessions().take();
        let now = hub.clock().now_ms();
        let checked = async {
            if !open.is_empty() {
                let live = store.live_sessions(&open, idle, now).await?;
                let ended: Vec<String> = open.into_iter().filter(|id| !live.contains(id)).collect();
                if !ended.is_empty() {
                    tracing::info!(
                        sessions = ended.len(),
                        "sync: closing sockets of sessions found ended"
                    );
                    hub.sessions_ended(ended, EndReason::Expired);
                }
                let active: Vec<String> =
                    active.into_iter().filter(|id| live.contains(id)).collect();
                store.touch_sessions(&active, crate::auth::TOUCH_INTERVAL_MS, now).await?;
            }
            let current = store.access_version().await?;
            if version.is_some_and(|seen| seen != current) {
                hub.access_changed_here();
            }
            version = Some(current);
            Ok::<(), crate::storage::StoreError>(())
        };
        if let Err(error) = checked.await {
            tracing::warn!(%error, "sync: could not re-check sessions and access; trying again next period");
        }
    }
}
