//! PostgreSQL LISTEN/NOTIFY, so that several server instances sharing one
//! database hear about each other's commits. Payloads carry ids only.

use sqlx::postgres::PgListener;

use super::{Backend, Store, StoreError};

/// Longest payload PostgreSQL accepts is 8000 bytes; stay clear of it.
pub const MAX_PAYLOAD: usize = 7900;

/// A notification from another connection to the same database.
#[derive(Clone, Debug)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
}

/// A dedicated PostgreSQL connection that LISTENs on some channels.
pub struct Listener {
    inner: PgListener,
}

impl Listener {
    /// The next notification; `None` when the connection was lost (any
    /// notification sent meanwhile is gone: re-read what may have been
    /// missed after calling `Store::listen` again).
    pub async fn recv(&mut self) -> Result<Option<Notification>, StoreError> {
        Ok(self.inner.try_recv().await?.map(|n| Notification {
            channel: n.channel().to_owned(),
            payload: n.payload().to_owned(),
        }))
    }

    /// One round trip on the listening connection itself: an answer proves
    /// that what PostgreSQL sends on it still arrives (notifications
    /// arriving meanwhile are kept for `recv`). A silently dead connection
    /// never answers, so the caller bounds this with a timeout. Call only
    /// while `recv` has not reported the connection lost: sqlx would
    /// quietly open a new one, and what was sent meanwhile would never be
    /// re-read.
    pub async fn heartbeat(&mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&mut self.inner).await?;
        Ok(())
    }
}

impl Store {
    /// Sends `payload` to every listener on `channel`; nothing on SQLite,
    /// where one process owns the database.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        debug_assert!(payload.len() <= MAX_PAYLOAD);
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Opens a new connection LISTENing on `channels` (PostgreSQL only).
    pub async fn listen(&self, channels: &[&str]) -> Result<Listener, StoreError> {
        let url = self
            .url
            .as_ref()
            .filter(|_| self.backend == Backend::Postgres)
            .ok_or(StoreError::UnsupportedUrl)?;
        let mut inner = PgListener::connect(url.expose()).await?;
        // A lost connection is reported at once; the caller reconnects and
        // then re-reads, so nothing sent while it was away goes unnoticed.
        inner.eager_reconnect(false);
        inner.listen_all(channels.iter().copied()).await?;
        Ok(Listener { inner })
    }
}
