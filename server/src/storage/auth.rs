//! Identity: passkeys, WebAuthn ceremony state, enrollment links, sessions,
//! revoked users, caregivers, clinic listings and read access to documents.
//!
//! Secrets never reach this module in the clear: callers pass SHA-256 hashes
//! of session cookies, enrollment tokens and ceremony ids.

use shared::{ClinicId, PatientId, UserId};
use sqlx::Row;
use uuid::Uuid;

use super::directory::bump_access_version;
use super::documents::document_row;
use super::{
    DocumentRow, ROWS_PER_STATEMENT, Store, StoreError, UserRecord, UserRole, now_ms, parse_id,
};

/// A passkey as its owner sees it (no key material).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// The passkey whose session added this one (None: an enrollment link).
    pub added_with: Option<Uuid>,
}

/// A stored passkey found by its credential id, for sign-in.
#[derive(Clone, Debug)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub user: UserId,
    /// webauthn-rs's serialised `Passkey`.
    pub passkey: String,
}

/// What revoking a passkey did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasskeyRevocation {
    /// Revoked; these sessions, signed in with it, ended with it.
    Revoked {
        sessions: Vec<String>,
    },
    NotFound,
    /// The user's only passkey: keeping it keeps the account reachable.
    LastOne,
}

/// A WebAuthn ceremony between its start and its finish.
#[derive(Clone, Debug)]
pub struct Ceremony {
    pub id_hash: String,
    /// `enroll`, `register` or `login`.
    pub kind: String,
    pub user: Option<UserId>,
    pub enrollment_hash: Option<String>,
    pub passkey_name: Option<String>,
    /// webauthn-rs's serialised ceremony state.
    pub state: String,
    pub expires_at: i64,
}

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

/// A caregiver acting for a patient, as the patient sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaregiverInfo {
    pub id: UserId,
    pub display_name: String,
    pub may_message: bool,
    pub enrolled: bool,
    pub created_at: i64,
}

impl Store {
    // ---- passkeys ----

    /// Stores a passkey added by a signed-in session, which was signed in
    /// with `added_with`.
    pub async fn add_passkey(
        &self,
        user: UserId,
        credential_id: &str,
        name: &str,
        passkey: &str,
        added_with: Option<Uuid>,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        let mut tx = self.begin_write().await?;
        insert_passkey(&mut tx, id, user, credential_id, name, passkey, added_with).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// When the passkey with this credential id was replaced through an
    /// enrollment link, if it was (sign-in then says so).
    pub async fn replaced_at(&self, credential_id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT revoked_at FROM passkeys WHERE credential_id = $1 AND revoked_reason = 'replaced'")
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| r.get::<Option<i64>, _>(0)))
    }

    /// Whether a credential id is registered already (revoked ones included).
    pub async fn credential_exists(&self, credential_id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM passkeys WHERE credential_id = $1")
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// The user's active passkeys, oldest first.
    pub async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyInfo>, StoreError> {
        sqlx::query(
            "SELECT id, name, created_at, last_used_at, added_with FROM passkeys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(PasskeyInfo {
                id: parse_id(&r.get::<String, _>(0))?,
                name: r.get(1),
                created_at: r.get(2),
                last_used_at: r.get(3),
                added_with: r.get::<Option<String>, _>(4).map(|id| parse_id(&id)).transpose()?,
            })
        })
        .collect()
    }

    /// The user's active passkeys' serialised credentials (to exclude at registration).
    pub async fn passkey_credentials(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT passkey FROM passkeys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    /// An active passkey of an active user, by credential id.
    pub async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<StoredPasskey>, StoreError> {
        let row = sqlx::query(
            "SELECT p.id, p.user_id, p.passkey FROM passkeys p JOIN users u ON u.id = p.user_id \
             WHERE p.credential_id = $1 AND p.revoked_at IS NULL AND u.revoked_at IS NULL",
        )
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredPasskey {
                id: parse_id(&r.get::<String, _>(0))?,
                user: parse_id(&r.get::<String, _>(1))?,
                passkey: r.get(2),
            })
        })
        .transpose()
    }

    /// Records a sign-in with a passkey, storing its new counter and backup
    /// state when they changed.
    pub async fn passkey_used(&self, id: Uuid, updated: Option<&str>) -> Result<(), StoreError> {
        match updated {
            Some(passkey) => {
                sqlx::query("UPDATE passkeys SET last_used_at = $1, passkey = $2 WHERE id = $3")
                    .bind(now_ms())
                    .bind(passkey)
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("UPDATE passkeys SET last_used_at = $1 WHERE id = $2")
                    .bind(now_ms())
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }

    /// Renames one of the user's active passkeys; false if they have no such passkey.
    pub async fn rename_passkey(
        &self,
        user: UserId,
        id: Uuid,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(name)
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes one of the user's passkeys, unless it is their last one, and
    /// ends every session signed in with it, in one transaction.
    pub async fn revoke_passkey(
        &self,
        user: UserId,
        id: Uuid,
    ) -> Result<PasskeyRevocation, StoreError> {
        let mut tx = self.begin_write().await?;
        let active: Vec<String> =
            sqlx::query("SELECT id FROM passkeys WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(user.to_string())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        if !active.contains(&id.to_string()) {
            return Ok(PasskeyRevocation::NotFound);
        }
        if active.len() == 1 {
            return Ok(PasskeyRevocation::LastOne);
        }
        let now = now_ms();
        // The count is re-checked in the UPDATE so two concurrent revocations
        // cannot remove the last two passkeys at once.
        let done = sqlx::query(
            "UPDATE passkeys SET revoked_at = $1, revoked_reason = 'removed' WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL \
             AND (SELECT COUNT(*) FROM passkeys WHERE user_id = $4 AND revoked_at IS NULL) > 1",
        )
        .bind(now)
        .bind(id.to_string())
        .bind(user.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(PasskeyRevocation::LastOne);
        }
        let sessions = ids(
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE passkey_id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(now)
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await?,
        );
        tx.commit().await?;
        Ok(PasskeyRevocation::Revoked { sessions })
    }

    // ---- ceremonies ----

    /// Stores a ceremony's state (and drops expired ones).
    pub async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ceremonies WHERE expires_at < $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO ceremonies (id_hash, kind, user_id, enrollment_hash, passkey_name, state, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&ceremony.id_hash)
        .bind(&ceremony.kind)
        .bind(ceremony.user.map(|u| u.to_string()))
        .bind(&ceremony.enrollment_hash)
        .bind(&ceremony.passkey_name)
        .bind(&ceremony.state)
        .bind(ceremony.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a ceremony: it is deleted in the same statement, so it can be
    /// finished at most once. Expired ceremonies are returned too; the caller
    /// checks `expires_at`.
    pub async fn take_ceremony(&self, id_hash: &str) -> Result<Option<Ceremony>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM ceremonies WHERE id_hash = $1 \
             RETURNING id_hash, kind, user_id, enrollment_hash, passkey_name, state, expires_at",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Ceremony {
                id_hash: r.get(0),
                kind: r.get(1),
                user: r.get::<Option<String>, _>(2).map(|u| parse_id(&u)).transpose()?,
                enrollment_hash: r.get(3),
                passkey_name: r.get(4),
                state: r.get(5),
                expires_at: r.get(6),
            })
        })
        .transpose()
    }

    /// Moves a ceremony's expiry (tests of expired ceremonies).
    pub async fn set_ceremony_expiry(
        &self,
        id_hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE ceremonies SET expires_at = $1 WHERE id_hash = $2")
            .bind(expires_at)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- enrollment links ----

    pub async fn create_enrollment(
        &self,
        token_hash: &str,
        user: UserId,
        created_by: Option<UserId>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO enrollments (token_hash, user_id, created_by, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(created_by.map(|u| u.to_string()))
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user an enrollment link is for, if it is unused, unexpired and
    /// its user active.
    pub async fn enrollment_user(&self, token_hash: &str) -> Result<Option<UserId>, StoreError> {
        let row = sqlx::query(
            "SELECT e.user_id FROM enrollments e JOIN users u ON u.id = e.user_id \
             WHERE e.token_hash = $1 AND e.used_at IS NULL AND e.cancelled_at IS NULL AND e.expires_at > $2 \
             AND u.revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| parse_id(&r.get::<String, _>(0))).transpose()
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
    ) -> Result<Option<Enrolled>, StoreError> {
        let now = now_ms();
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
        insert_passkey(&mut tx, id, user, credential_id, name, passkey, None).await?;
        tx.commit().await?;
        Ok(Some(Enrolled { passkey: id, replaced, ended_sessions, issued_by }))
    }

    /// The user's enrollment links that can still be used, newest first.
    pub async fn open_enrollments(&self, user: UserId) -> Result<Vec<OpenEnrollment>, StoreError> {
        sqlx::query(
            "SELECT e.created_at, e.expires_at, u.display_name FROM enrollments e LEFT JOIN users u ON u.id = e.created_by \
             WHERE e.user_id = $1 AND e.used_at IS NULL AND e.cancelled_at IS NULL AND e.expires_at > $2 \
             ORDER BY e.created_at DESC",
        )
        .bind(user.to_string())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok(OpenEnrollment { created_at: r.get(0), expires_at: r.get(1), issued_by_name: r.get(2) }))
        .collect()
    }

    /// Cancels every open enrollment link of the user; returns how many.
    pub async fn cancel_enrollments(&self, user: UserId) -> Result<u64, StoreError> {
        let now = now_ms();
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

    /// Moves an enrollment link's expiry (tests and operators).
    pub async fn set_enrollment_expiry(
        &self,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE enrollments SET expires_at = $1 WHERE token_hash = $2")
            .bind(expires_at)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- sessions ----

    /// Starts a session signed in with `passkey` (which also counts as a
    /// fresh use of a passkey for `verified_at`).
    pub async fn create_session(
        &self,
        id: &str,
        token_hash: &str,
        user: UserId,
        actor_id: &str,
        expires_at: i64,
        passkey: Option<Uuid>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
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

    /// The live session with this cookie hash: not revoked, not past its
    /// absolute expiry, seen within `idle_ms`, of an active user.
    pub async fn session_by_token(
        &self,
        token_hash: &str,
        idle_ms: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let now = now_ms();
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

    /// Whether the session with this id is live (the rules of
    /// `session_by_token`); one primary-key lookup.
    pub async fn session_live(&self, id: &str, idle_ms: i64) -> Result<bool, StoreError> {
        Ok(!self.live_sessions(&[id.to_owned()], idle_ms).await?.is_empty())
    }

    /// Which of these sessions are live (the rules of `session_by_token`),
    /// in one statement per `ROWS_PER_STATEMENT` ids.
    pub async fn live_sessions(
        &self,
        ids: &[String],
        idle_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
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
    pub async fn touch_sessions(&self, ids: &[String], touch_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
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

    pub async fn touch_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that the session's holder just used one of their passkeys.
    pub async fn mark_verified(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET verified_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves a session's last activity (tests of idle expiry).
    pub async fn set_session_last_seen(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves a session's last passkey use (tests of re-authentication).
    pub async fn set_session_verified(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET verified_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn revoke_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of a user ("sign out everywhere"); returns their ids.
    pub async fn revoke_user_sessions(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        Ok(ids(
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(now_ms())
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await?,
        ))
    }

    /// Deletes what can never be used again: sessions revoked, past their
    /// absolute expiry or idle for longer than `idle_ms`, and enrollment
    /// links past their expiry (used or not). The audit trail keeps the
    /// sign-ins and enrollments themselves. Returns the rows deleted.
    pub async fn purge_ended(&self, idle_ms: i64) -> Result<u64, StoreError> {
        let now = now_ms();
        let sessions = sqlx::query("DELETE FROM sessions WHERE revoked_at IS NOT NULL OR expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(now - idle_ms)
            .execute(&self.pool)
            .await?;
        let links = sqlx::query("DELETE FROM enrollments WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(sessions.rows_affected() + links.rows_affected())
    }

    // ---- users, caregivers, clinics ----

    /// Whether a user exists and has not been revoked.
    pub async fn user_active(&self, user: UserId) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM users WHERE id = $1 AND revoked_at IS NULL")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Revokes a user: they can no longer sign in and their sessions end.
    /// Returns the ended sessions' ids.
    pub async fn revoke_user(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        let sessions = ids(
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(now)
                .bind(user.to_string())
                .fetch_all(&mut *tx)
                .await?,
        );
        bump_access_version(&mut tx).await?;
        tx.commit().await?;
        Ok(sessions)
    }

    /// The active caregivers of a patient.
    pub async fn caregivers(&self, patient: PatientId) -> Result<Vec<CaregiverInfo>, StoreError> {
        sqlx::query(
            "SELECT u.id, u.display_name, u.may_message, u.created_at, \
             (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = u.id) \
             FROM users u WHERE u.patient_id = $1 AND u.role = 'caregiver' AND u.revoked_at IS NULL ORDER BY u.id",
        )
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CaregiverInfo {
                id: parse_id(&r.get::<String, _>(0))?,
                display_name: r.get(1),
                may_message: r.get::<i64, _>(2) != 0,
                created_at: r.get(3),
                enrolled: r.get::<i64, _>(4) > 0,
            })
        })
        .collect()
    }

    /// Every clinic, by name.
    pub async fn clinics(&self) -> Result<Vec<(ClinicId, String)>, StoreError> {
        sqlx::query("SELECT id, name FROM clinics ORDER BY name, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((parse_id(&r.get::<String, _>(0))?, r.get(1))))
            .collect()
    }

    pub async fn clinic_by_name(&self, name: &str) -> Result<Option<ClinicId>, StoreError> {
        let row = sqlx::query("SELECT id FROM clinics WHERE name = $1 ORDER BY id")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| parse_id(&r.get::<String, _>(0))).transpose()
    }

    /// Documents `user` may read:
    /// - patient and caregiver: every document of their patient;
    /// - provider: for each of their clinics and each patient consenting to
    ///   it, the patient record, every clinical record of that patient (the
    ///   record follows the patient across clinics) and the thread with that
    ///   clinic only;
    /// - clinic admin: the patient record (demographics) of consenting patients.
    pub async fn readable_documents(
        &self,
        user: &UserRecord,
    ) -> Result<Vec<DocumentRow>, StoreError> {
        if !self.user_active(user.id).await? {
            return Ok(Vec::new());
        }
        let Some(sql) = readable_sql(user, "") else { return Ok(Vec::new()) };
        let rows = sqlx::query(&sql).bind(reader_key(user)).fetch_all(&self.pool).await?;
        rows.iter().map(document_row).collect()
    }

    /// Those of `docs` that `user` may read (the rules of
    /// `readable_documents`), found by their ids: a few index lookups per
    /// document, whatever the number of documents the user may read.
    pub async fn readable_among(
        &self,
        user: &UserRecord,
        docs: &[shared::DocId],
    ) -> Result<Vec<DocumentRow>, StoreError> {
        if docs.is_empty() || !self.user_active(user.id).await? {
            return Ok(Vec::new());
        }
        let mut readable = Vec::new();
        for part in docs.chunks(super::ROWS_PER_STATEMENT) {
            let ids = (2..part.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let Some(sql) = readable_sql(user, &format!("d.id IN ({ids})")) else {
                return Ok(Vec::new());
            };
            let mut query = sqlx::query(&sql).bind(reader_key(user));
            for id in part {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.pool).await? {
                readable.push(document_row(&row)?);
            }
        }
        Ok(readable)
    }

    /// The document `doc` if `user` would read it under a consent that the
    /// patient has since withdrawn (and not granted again): a provider or
    /// admin of a clinic whose access ended. Patients and caregivers read
    /// their own documents whatever the consents, so never get one.
    pub async fn withdrawn_document(
        &self,
        user: &UserRecord,
        doc: shared::DocId,
    ) -> Result<Option<DocumentRow>, StoreError> {
        let kinds = match user.role {
            UserRole::Patient | UserRole::Caregiver => return Ok(None),
            UserRole::Provider => {
                "(d.kind IN ('patient_record', 'clinical_record') OR (d.kind = 'message_thread' AND d.clinic_id = c.clinic_id))"
            }
            UserRole::Admin => "d.kind = 'patient_record'",
        };
        let row = sqlx::query(&format!(
            "SELECT d.id, d.kind, d.patient_id, d.clinic_id FROM documents d \
             JOIN consents c ON c.patient_id = d.patient_id AND c.revoked_at IS NOT NULL \
             JOIN memberships m ON m.clinic_id = c.clinic_id AND m.user_id = $1 \
             WHERE d.id = $2 AND {kinds} ORDER BY d.id LIMIT 1"
        ))
        .bind(user.id.to_string())
        .bind(doc.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(document_row).transpose()
    }
}

/// The read rules as one query on `documents d`, with `$1` bound to
/// `reader_key` and `filter` (on `d`, placeholders from `$2`) added, or
/// `None` for a patient-side user with no patient.
fn readable_sql(user: &UserRecord, filter: &str) -> Option<String> {
    let and = if filter.is_empty() { String::new() } else { format!(" AND {filter}") };
    let columns = "SELECT DISTINCT d.id, d.kind, d.patient_id, d.clinic_id FROM documents d";
    let consenting = "JOIN consents c ON c.patient_id = d.patient_id AND c.revoked_at IS NULL \
                      JOIN memberships m ON m.clinic_id = c.clinic_id AND m.user_id = $1";
    Some(match user.role {
        UserRole::Patient | UserRole::Caregiver => {
            user.patient?;
            format!("{columns} WHERE d.patient_id = $1{and} ORDER BY d.id")
        }
        UserRole::Provider => format!(
            "{columns} {consenting} WHERE (d.kind IN ('patient_record', 'clinical_record') \
             OR (d.kind = 'message_thread' AND d.clinic_id = c.clinic_id)){and} ORDER BY d.id"
        ),
        UserRole::Admin => {
            format!("{columns} {consenting} WHERE d.kind = 'patient_record'{and} ORDER BY d.id")
        }
    })
}

/// What `$1` of `readable_sql` is: the patient a patient-side user acts
/// for, else the staff member's own id.
fn reader_key(user: &UserRecord) -> String {
    match (user.role, user.patient) {
        (UserRole::Patient | UserRole::Caregiver, Some(patient)) => patient.to_string(),
        _ => user.id.to_string(),
    }
}

/// The ids a `... RETURNING id` statement returned.
fn ids(rows: Vec<sqlx::any::AnyRow>) -> Vec<String> {
    rows.iter().map(|r| r.get(0)).collect()
}

async fn insert_passkey(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: Uuid,
    user: UserId,
    credential_id: &str,
    name: &str,
    passkey: &str,
    added_with: Option<Uuid>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO passkeys (id, user_id, credential_id, name, passkey, created_at, last_used_at, revoked_at, added_with) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)",
    )
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(credential_id)
    .bind(name)
    .bind(passkey)
    .bind(now_ms())
    .bind(added_with.map(|p| p.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
