//! The time the server judges and stores by, in milliseconds since the Unix
//! epoch. Storage never reads the clock: every caller passes `now` in, read
//! here, so a session's idleness, a link's or a ceremony's expiry and a
//! re-authentication's freshness are all judged against the same clock, and
//! a test moves that clock forward on a running server instead of editing
//! rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
#[cfg(feature = "testing")]
use std::time::Duration;

/// The wall clock (UTC), shared by a server's handlers and its hub.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// How far ahead of the wall clock this clock runs: always 0 unless a
    /// test moved it (`advance`).
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.ahead_ms.load(Ordering::Relaxed)
    }

    /// Tests: moves this clock (and every clone of it) forward, as if that
    /// much time had passed.
    #[cfg(feature = "testing")]
    pub fn advance(&self, by: Duration) {
        let by =
            i64::try_from(by.as_millis()).expect("a test advances the clock by less than an eon");
        self.ahead_ms.fetch_add(by, Ordering::Relaxed);
    }
}
