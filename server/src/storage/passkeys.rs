//! Passkeys: registering, listing, renaming and revoking them, and
//! finding one by its credential id at sign-in.
//!
//! Key material is webauthn-rs's serialised `Passkey`; nothing here reads it.

use shared::UserId;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError, ids, parse_id};

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

impl Store {
    /// Stores a passkey added by a signed-in session, which was signed in
    /// with `added_with`.
    pub async fn add_passkey(
        &self,
        user: UserId,
        credential_id: &str,
        name: &str,
        passkey: &str,
        added_with: Option<Uuid>,
        now: i64,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        let mut tx = self.begin_write().await?;
        let new = NewPasskey { id, user, credential_id, name, passkey, added_with };
        insert_passkey(&mut tx, &new, now).await?;
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
    pub async fn passkey_used(
        &self,
        id: Uuid,
        updated: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        match updated {
            Some(passkey) => {
                sqlx::query("UPDATE passkeys SET last_used_at = $1, passkey = $2 WHERE id = $3")
                    .bind(now)
                    .bind(passkey)
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("UPDATE passkeys SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
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
        now: i64,
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
}

/// A passkey to store.
pub(super) struct NewPasskey<'a> {
    pub id: Uuid,
    pub user: UserId,
    pub credential_id: &'a str,
    pub name: &'a str,
    pub passkey: &'a str,
    pub added_with: Option<Uuid>,
}

pub(super) async fn insert_passkey(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &NewPasskey<'_>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO passkeys (id, user_id, credential_id, name, passkey, created_at, last_used_at, revoked_at, added_with) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)",
    )
    .bind(new.id.to_string())
    .bind(new.user.to_string())
    .bind(new.credential_id)
    .bind(new.name)
    .bind(new.passkey)
    .bind(now)
    .bind(new.added_with.map(|p| p.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
