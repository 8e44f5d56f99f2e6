//! Enrollment links: issuing them, finding whom one is for, using one (a
//! recovery when the person already has passkeys), and listing or
//! cancelling the open ones.
//!
//! Tokens never reach this module in the clear: callers pass their SHA-256 hash.

use shared::UserId;
use sqlx::Row;
use uuid::Uuid;

use super::passkeys::{NewPasskey, insert_passkey};
use super::{Store, StoreError, ids, parse_id};

/// What completing an enrollment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolled {
    /// The new passkey.
    pub passkey: Uuid,
    /// Passkeys the account had before, now revoked (replaced).
    pub replaced: u64,
    /// Sessions ended because the passkeys were replaced.
    pub ended_sessions: Vec<String>,
    /// Who issued the link (None: the operator's CLI).
    pub issued_by: Option<UserId>,
}

/// An enrollment link not yet used, as the person it is for sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenEnrollment {
    pub created_at: i64,
    pub expires_at: i64,
    pub issued_by_name: Option<String>,
}

impl Store {
    /// Stores a link issued at `now` (its token's hash).
    pub async fn create_enrollment(
        &self,
        token_hash: &str,
        user: UserId,
        created_by: Option<UserId>,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO enrollments (token_hash, user_id, created_by, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(created_by.map(|u| u.to_string()))
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user an enrollment link is for, if it is unused, unexpired at
    /// `now` and its user active.
    pub async fn enrollment_user(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self.enrollment_issuer(token_hash, now).await?.map(|(user, _)| user))
    }

    /// Whom an open enrollment link is for and who issued it (None: the
    /// operator's CLI), for the page that opens it.
    pub async fn enrollment_issuer(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(UserId, Option<UserId>)>, StoreError> {
        let row = sqlx::query(
            "SELECT e.user_id, e.created_by FROM enrollments e JOIN users u ON u.id = e.user_id \
             WHERE e.token_hash = $1 AND e.used_at IS NULL AND e.cancelled_at IS NULL AND e.expires_at > $2 \
             AND u.revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let issuer = row.get::<Option<String>, _>(1).map(|id| parse_id(&id)).transpose()?;
        Ok(Some((parse_id(&row.get::<String, _>(0))?, issuer)))
    }

    /// Completes an enrollment in one transaction: marks the link used
    /// (`None` if it was used, cancelled, expired or unknown, so of two
    /// concurrent uses only one succeeds), stores the new passkey, and, if
    /// the account already had passkeys, revokes them as replaced and ends
    /// every session of the user. The user's other open links are cancelled:
    /// they were issued for the same purpose.
    pub async fn complete_enrollment(
        &self,
        token_hash: &str,
        user: UserId,
        credential_id: &str,
        name: &str,
        passkey: &str,
        now: i64,
    ) -> Result<Option<Enrolled>, StoreError> {
        let mut tx = self.begin_write().await?;
        let link = sqlx::query(
            "UPDATE enrollments SET used_at = $1 WHERE token_hash = $2 AND user_id = $3 AND used_at IS NULL \
             AND cancelled_at IS NULL AND expires_at > $4 RETURNING created_by",
        )
        .bind(now)
        .bind(token_hash)
        .bind(user.to_string())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(link) = link else { return Ok(None) };
        let issued_by = link.get::<Option<String>, _>(0).map(|u| parse_id(&u)).transpose()?;
        let replaced = sqlx::query(
            "UPDATE passkeys SET revoked_at = $1, revoked_reason = 'replaced' WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let ended_sessions = if replaced > 0 {
            ids(sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(now)
                .bind(user.to_string())
                .fetch_all(&mut *tx)
                .await?)
        } else {
            Vec::new()
        };
        sqlx::query("UPDATE enrollments SET cancelled_at = $1 WHERE user_id = $2 AND used_at IS NULL AND cancelled_at IS NULL")
            .bind(now)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        let id = Uuid::now_v7();
        let new = NewPasskey { id, user, credential_id, name, passkey, added_with: None };
        insert_passkey(&mut tx, &new, now).await?;
        tx.commit().await?;
        Ok(Some(Enrolled { passkey: id, replaced, ended_sessions, issued_by }))
    }

    /// The user's enrollment links that can still be used at `now`, newest first.
    pub async fn open_enrollments(
        &self,
        user: UserId,
        now: i64,
    ) -> Result<Vec<OpenEnrollment>, StoreError> {
        sqlx::query(
            "SELECT e.created_at, e.expires_at, u.display_name FROM enrollments e LEFT JOIN users u ON u.id = e.created_by \
             WHERE e.user_id = $1 AND e.used_at IS NULL AND e.cancelled_at IS NULL AND e.expires_at > $2 \
             ORDER BY e.created_at DESC",
        )
        .bind(user.to_string())
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok(OpenEnrollment { created_at: r.get(0), expires_at: r.get(1), issued_by_name: r.get(2) }))
        .collect()
    }

    /// Cancels every open enrollment link of the user; returns how many.
    pub async fn cancel_enrollments(&self, user: UserId, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE enrollments SET cancelled_at = $1 WHERE user_id = $2 AND used_at IS NULL AND cancelled_at IS NULL \
             AND expires_at > $3",
        )
        .bind(now)
        .bind(user.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
