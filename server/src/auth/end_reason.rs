//! Why a session ended, in the words its device is told.

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
