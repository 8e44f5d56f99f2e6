//! Sessions: starting them, finding the live one behind a cookie, recording
//! activity and passkey use, ending them, and purging what can no longer
//! be used.
//!
//! Cookies never reach this module in the clear: callers pass their SHA-256 hash.

use shared::UserId;
use sqlx::Row;
use uuid::Uuid;

use super::{ROWS_PER_STATEMENT, Store, StoreError, ids, parse_id};

/// A live session.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: String,
    pub user: UserId,
    pub actor_id: String,
    pub last_seen_at: i64,
    /// The passkey it was signed in with (None: started by operator tools).
    pub passkey: Option<Uuid>,
    /// When its holder last used a passkey (ms).
    pub verified_at: i64,
}

/// A session to start.
#[derive(Clone, Copy, Debug)]
pub struct NewSession<'a> {
    /// The session's public id.
    pub id: &'a str,
    /// The SHA-256 of its cookie.
    pub token_hash: &'a str,
    pub user: UserId,
    /// Its Automerge actor id (bound to the user already).
    pub actor_id: &'a str,
    /// Its absolute expiry (ms).
    pub expires_at: i64,
    /// The passkey it is signed in with (None: operator tools).
    pub passkey: Option<Uuid>,
}

impl Store {
    /// Starts a session at `now`, signed in with its passkey (which also
    /// counts as a fresh use of a passkey for `verified_at`).
    pub async fn create_session(&self, new: &NewSession<'_>, now: i64) -> Result<(), StoreError> {
        let NewSession { id, token_hash, user, actor_id, expires_at, passkey } = *new;
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, actor_id, created_at, last_seen_at, expires_at, revoked_at, \
             passkey_id, verified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9)",
        )
        .bind(id)
        .bind(token_hash)
        .bind(user.to_string())
        .bind(actor_id)
        .bind(now)
        .bind(now)
        .bind(expires_at)
        .bind(passkey.map(|p| p.to_string()))
        .bind(if passkey.is_some() { now } else { 0 })
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session with this cookie hash if it is live at `now`: not
    /// revoked, not past its absolute expiry, seen within `idle_ms`, of an
    /// active user.
    pub async fn session_by_token(
        &self,
        token_hash: &str,
        idle_ms: i64,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id, s.user_id, s.actor_id, s.last_seen_at, s.passkey_id, s.verified_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_seen_at > $3 \
             AND u.revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                id: r.get(0),
                user: parse_id(&r.get::<String, _>(1))?,
                actor_id: r.get(2),
                last_seen_at: r.get(3),
                passkey: r.get::<Option<String>, _>(4).map(|p| parse_id(&p)).transpose()?,
                verified_at: r.get(5),
            })
        })
        .transpose()
    }

    /// Whether the session with this cookie hash, not past its absolute
    /// expiry, belongs to a revoked account.
    pub async fn account_revoked(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.revoked_at IS NOT NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Whether the session with this id is live (the rules of
    /// `session_by_token`); one primary-key lookup.
    pub async fn session_live(&self, id: &str, idle_ms: i64, now: i64) -> Result<bool, StoreError> {
        Ok(!self.live_sessions(&[id.to_owned()], idle_ms, now).await?.is_empty())
    }

    /// Which of these sessions are live (the rules of `session_by_token`),
    /// in one statement per `ROWS_PER_STATEMENT` ids.
    pub async fn live_sessions(
        &self,
        ids: &[String],
        idle_ms: i64,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut live = Vec::new();
        for part in ids.chunks(ROWS_PER_STATEMENT) {
            let list = (3..3 + part.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.revoked_at IS NULL \
                 AND s.expires_at > $1 AND s.last_seen_at > $2 AND u.revoked_at IS NULL AND s.id IN ({list})"
            );
            let mut query = sqlx::query(&sql).bind(now).bind(now - idle_ms);
            for id in part {
                query = query.bind(id);
            }
            live.extend(query.fetch_all(&self.pool).await?.iter().map(|r| r.get::<String, _>(0)));
        }
        Ok(live)
    }

    /// Records activity on these sessions (their sync sockets sent frames);
    /// like requests, at most one write per session per `touch_ms`.
    pub async fn touch_sessions(
        &self,
        ids: &[String],
        touch_ms: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        for part in ids.chunks(ROWS_PER_STATEMENT) {
            let list = (3..3 + part.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "UPDATE sessions SET last_seen_at = $1 WHERE last_seen_at < $2 AND id IN ({list})"
            );
            let mut query = sqlx::query(&sql).bind(now).bind(now - touch_ms);
            for id in part {
                query = query.bind(id);
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Records a request on the session at `now`.
    pub async fn touch_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that the session's holder used one of their passkeys at `now`.
    pub async fn mark_verified(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET verified_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn revoke_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of a user ("sign out everywhere"); returns their ids.
    pub async fn revoke_user_sessions(
        &self,
        user: UserId,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(ids(
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(now)
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await?,
        ))
    }

    /// Deletes what can never be used again at `now`: sessions revoked,
    /// past their absolute expiry or idle for longer than `idle_ms` (those
    /// of a revoked account stay until their expiry, so that a device
    /// coming back online is told its access was removed and deletes its
    /// copies: `account_revoked`), and
    /// enrollment links past their expiry (used or not), and SMART codes
    /// and tokens past theirs. The audit trail
    /// keeps the sign-ins and enrollments themselves. Returns the rows deleted.
    pub async fn purge_ended(&self, idle_ms: i64, now: i64) -> Result<u64, StoreError> {
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE expires_at <= $1 OR ((revoked_at IS NOT NULL OR last_seen_at <= $2) \
             AND user_id NOT IN (SELECT id FROM users WHERE revoked_at IS NOT NULL))",
        )
            .bind(now)
            .bind(now - idle_ms)
            .execute(&self.pool)
            .await?;
        let links = sqlx::query("DELETE FROM enrollments WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let smart = self.purge_smart(now).await?;
        Ok(sessions.rows_affected() + links.rows_affected() + smart)
    }
}
