//! Ended sessions close their sync sockets: at once on this instance (a
//! broadcast from the handler that ended them, `Hub::sessions_ended`), and
//! within `SESSION_RECHECK` wherever they are, since every connection
//! re-checks its session and what it may read on that period. So a session
//! ended on another instance, or a notification lost, still closes the socket
//! within the bound.

use std::time::Duration;

pub use shared::sync::CLOSE_SESSION_ENDED;

/// How often each sync connection re-checks that its session is live (one
/// primary-key lookup) and re-reads what its user may read: the most a
/// socket outlives its session when nothing told this instance. A few
/// seconds keeps that short while a thousand sockets cost a few hundred
/// small queries a second, spread out by a random first delay.
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
            Self::SignedOutEverywhere => "You signed out everywhere. Sign in again to keep syncing.",
            Self::PasskeyRemoved => "The passkey this device signed in with was removed. Sign in with another passkey.",
            Self::PasskeysReplaced => "Your passkeys were replaced with a new link from your clinic. If that was not you, contact your clinic.",
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

#[cfg(test)]
mod tests {
    use super::EndReason::*;

    #[test]
    fn reasons_fit_a_websocket_close_frame() {
        for reason in [SignedOut, SignedOutEverywhere, PasskeyRemoved, PasskeysReplaced, AccessRemoved, Expired] {
            assert!(reason.message().len() <= 123, "{reason:?}");
        }
    }
}
