//! WebAuthn ceremony state between a ceremony's start and its finish,
//! bound to the SHA-256 hash of an opaque id the browser holds.

use shared::UserId;
use sqlx::Row;

use super::{Store, StoreError, parse_id};

/// What a ceremony is for; a ceremony finishes only as the kind it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Creating a first passkey with an enrollment link (or a recovery).
    Enroll,
    /// Adding a passkey while signed in.
    Register,
    Login,
    /// A signed-in person proving presence again with one of their passkeys.
    Reauth,
}

impl CeremonyKind {
    fn code(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Register => "register",
            Self::Login => "login",
            Self::Reauth => "reauth",
        }
    }

    fn parse(code: &str) -> Result<Self, StoreError> {
        Ok(match code {
            "enroll" => Self::Enroll,
            "register" => Self::Register,
            "login" => Self::Login,
            "reauth" => Self::Reauth,
            _ => return Err(StoreError::Corrupt("unknown ceremony kind".into())),
        })
    }
}

/// A WebAuthn ceremony between its start and its finish.
#[derive(Clone, Debug)]
pub struct Ceremony {
    pub id_hash: String,
    pub kind: CeremonyKind,
    pub user: Option<UserId>,
    pub enrollment_hash: Option<String>,
    pub passkey_name: Option<String>,
    /// webauthn-rs's serialised ceremony state.
    pub state: String,
    pub expires_at: i64,
}

impl Store {
    /// Stores a ceremony's state (and drops those expired by `now`).
    pub async fn put_ceremony(&self, ceremony: &Ceremony, now: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ceremonies WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO ceremonies (id_hash, kind, user_id, enrollment_hash, passkey_name, state, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&ceremony.id_hash)
        .bind(ceremony.kind.code())
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
                kind: CeremonyKind::parse(&r.get::<String, _>(1))?,
                user: r.get::<Option<String>, _>(2).map(|u| parse_id(&u)).transpose()?,
                enrollment_hash: r.get(3),
                passkey_name: r.get(4),
                state: r.get(5),
                expires_at: r.get(6),
            })
        })
        .transpose()
    }
}
