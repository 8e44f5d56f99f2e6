//! Ended sessions close their sync sockets: at once on this instance (a
//! broadcast from the handler that ended them, `Hub::sessions_ended`), and
//! within `SESSION_RECHECK` wherever they are: every instance re-checks, on
//! that period, the sessions of all its open sockets in one query and the
//! access version (`recheck::watch_sessions`). So a session ended on another
//! instance, or an access change whose notification was lost, still reaches
//! the socket within the bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use shared::sync::CLOSE_SESSION_ENDED;

use crate::auth::EndReason;

/// How often each instance re-checks that the sessions of its sync sockets
/// are live and whether access changed (`watch_sessions`): the most a socket
/// outlives its session, or reads what it no longer may, when nothing told
/// this instance. It costs two small queries per period per instance, however
/// many sockets are open: checking each socket on its own cost about a
/// quarter of a core with a thousand sockets (fan-out benchmark).
pub const SESSION_RECHECK: Duration = Duration::from_secs(5);

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
    pub(super) fn take(&self) -> (Vec<String>, Vec<String>) {
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
