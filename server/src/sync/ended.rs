//! Ended sessions close their sync sockets: at once on this instance (a
//! broadcast from the handler that ended them, `Hub::sessions_ended`), and
//! within `SESSION_RECHECK` wherever they are: every instance re-checks, on
//! that period, the sessions of all its open sockets in one query and the
//! access version (`watch_sessions`). So a session ended on another
//! instance, or an access change whose notification was lost, still reaches
//! the socket within the bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use shared::sync::CLOSE_SESSION_ENDED;

use super::hub::Hub;

/// How often each instance re-checks that the sessions of its sync sockets
/// are live and whether access changed (`watch_sessions`): the most a socket
/// outlives its session, or reads what it no longer may, when nothing told
/// this instance. It costs two small queries per period per instance, however
/// many sockets are open: checking each socket on its own cost about a
/// quarter of a core with a thousand sockets (fan-out benchmark).
pub const SESSION_RECHECK: Duration = Duration::from_secs(5);

/// Why sessions ended; each reason is said in plain words to the device
/// whose socket closes (a WebSocket close reason: at most 123 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    SignedOut,
    SignedOutEverywhere,
    PasskeyRemoved,
    /// An enrollment link was used for the account, replacing its passkeys.
    PasskeysReplaced,
    /// A caregiver's access, or the user, was revoked.
    AccessRemoved,
    /// Found ended (or expired) by the periodic check.
    Expired,
}

impl EndReason {
    pub fn message(self) -> &'static str {
        match self {
            Self::SignedOut => "You signed out on this device.",
            Self::SignedOutEverywhere => {
                "You signed out everywhere. Sign in again to keep syncing."
            }
            Self::PasskeyRemoved => {
                "The passkey this device signed in with was removed. Sign in with another passkey."
            }
            Self::PasskeysReplaced => {
                "Your passkeys were replaced with a new link from your clinic. If that was not you, contact your clinic."
            }
            Self::AccessRemoved => "Your access to this record was taken away.",
            Self::Expired => "Your session has ended. Sign in again.",
        }
    }
}

/// Sessions that just ended.
#[derive(Debug)]
pub struct Ended {
    pub sessions: Vec<String>,
    pub reason: EndReason,
}

/// The sessions with sync sockets open on this instance.
#[derive(Default)]
pub struct OpenSessions {
    sessions: Mutex<HashMap<String, Open>>,
}

#[derive(Default)]
struct Open {
    sockets: usize,
    /// A socket of the session sent frames since the last check.
    active: bool,
}

impl OpenSessions {
    /// Registers a socket of `session` until the returned guard is dropped.
    pub fn opened(self: &Arc<Self>, session: &str) -> OpenSocket {
        self.sessions
            .lock()
            .expect("open sessions lock")
            .entry(session.to_owned())
            .or_default()
            .sockets += 1;
        OpenSocket { sessions: self.clone(), session: session.to_owned() }
    }

    /// Every open session, and those active since the last call.
    fn take(&self) -> (Vec<String>, Vec<String>) {
        let mut sessions = self.sessions.lock().expect("open sessions lock");
        let all = sessions.keys().cloned().collect();
        let active = sessions
            .iter_mut()
            .filter_map(|(id, open)| std::mem::take(&mut open.active).then(|| id.clone()))
            .collect();
        (all, active)
    }
}

/// One open socket of a session (see `OpenSessions::opened`).
pub struct OpenSocket {
    sessions: Arc<OpenSessions>,
    session: String,
}

impl OpenSocket {
    /// The client sent frames: activity, for the session's idle limit.
    pub fn active(&self) {
        if let Some(open) =
            self.sessions.sessions.lock().expect("open sessions lock").get_mut(&self.session)
        {
            open.active = true;
        }
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        let mut sessions = self.sessions.sessions.lock().expect("open sessions lock");
        if let Some(open) = sessions.get_mut(&self.session) {
            open.sockets -= 1;
            if open.sockets == 0 {
                sessions.remove(&self.session);
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::EndReason::*;
    use super::OpenSessions;

    #[test]
    fn open_sessions_are_counted_per_socket_and_activity_is_taken_once() {
        let open = Arc::new(OpenSessions::default());
        let a = open.opened("s1");
        let b = open.opened("s1");
        let _c = open.opened("s2");
        a.active();
        let (mut all, active) = open.take();
        all.sort();
        assert_eq!((all, active), (vec!["s1".to_owned(), "s2".to_owned()], vec!["s1".to_owned()]));
        assert!(open.take().1.is_empty(), "activity is reported once");
        drop(a);
        assert_eq!(open.take().0.len(), 2, "s1 still has a socket");
        drop(b);
        assert_eq!(open.take().0, vec!["s2".to_owned()]);
    }

    #[test]
    fn reasons_fit_a_websocket_close_frame() {
        for reason in [
            SignedOut,
            SignedOutEverywhere,
            PasskeyRemoved,
            PasskeysReplaced,
            AccessRemoved,
            Expired,
        ] {
            assert!(reason.message().len() <= 123, "{reason:?}");
        }
    }
}
