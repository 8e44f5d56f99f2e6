//! SMART on FHIR: registered clients, people's grants to patient apps,
//! one-time authorization codes, access tokens and used client assertion
//! ids. Codes and tokens reach this module only as their SHA-256 hashes.

use shared::api::AuthorizedApp;
use shared::{ClinicId, PatientId, UserId};
use sqlx::Row;

use super::{Store, StoreError, parse_id};

/// A registered client that is not revoked.
#[derive(Clone, Debug)]
pub struct SmartClient {
    pub id: String,
    pub name: String,
    /// A patient app's one redirect URI (None: a clinic system).
    pub redirect_uri: Option<String>,
    /// A clinic system's clinic and public keys (a JWK Set, JSON).
    pub system: Option<(ClinicId, String)>,
}

/// A grant with its first code, to store at once.
#[derive(Clone, Copy, Debug)]
pub struct NewGrant<'a> {
    pub id: &'a str,
    pub client: &'a str,
    pub user: UserId,
    pub patient: PatientId,
    pub scope: &'a str,
    pub code_hash: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub code_expires_at: i64,
}

/// What a code was issued for, once taken.
#[derive(Clone, Debug)]
pub struct TakenCode {
    pub grant: String,
    pub client: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub patient: PatientId,
    pub scope: String,
}

/// What a live access token stands for.
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub client: String,
    pub client_name: String,
    pub scope: String,
    /// A patient app's grant: the grant id, its user and patient.
    pub grant: Option<(String, UserId, PatientId)>,
    /// A clinic system's clinic.
    pub clinic: Option<ClinicId>,
}

impl Store {
    /// Registers a client at `now`: a patient app (`redirect_uri`) or a
    /// clinic system (`system`: its clinic and JWK Set).
    pub async fn create_smart_client(
        &self,
        client: &SmartClient,
        now: i64,
    ) -> Result<(), StoreError> {
        let kind = if client.system.is_some() { "system" } else { "public" };
        sqlx::query(
            "INSERT INTO smart_clients (id, name, kind, redirect_uri, clinic_id, jwks, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(kind)
        .bind(client.redirect_uri.as_deref())
        .bind(client.system.as_ref().map(|(c, _)| c.to_string()))
        .bind(client.system.as_ref().map(|(_, jwks)| jwks.as_str()))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The client with this id, unless unknown or revoked.
    pub async fn smart_client(&self, id: &str) -> Result<Option<SmartClient>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, redirect_uri, clinic_id, jwks FROM smart_clients WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let clinic: Option<String> = r.get(3);
            let jwks: Option<String> = r.get(4);
            Ok(SmartClient {
                id: r.get(0),
                name: r.get(1),
                redirect_uri: r.get(2),
                system: match (clinic, jwks) {
                    (Some(clinic), Some(jwks)) => Some((parse_id(&clinic)?, jwks)),
                    _ => None,
                },
            })
        })
        .transpose()
    }

    /// Stores a person's grant and its authorization code together.
    pub async fn create_grant(&self, grant: &NewGrant<'_>, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO smart_grants (id, client_id, user_id, patient_id, scope, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(grant.id)
        .bind(grant.client)
        .bind(grant.user.to_string())
        .bind(grant.patient.to_string())
        .bind(grant.scope)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO smart_codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(grant.code_hash)
        .bind(grant.id)
        .bind(grant.redirect_uri)
        .bind(grant.code_challenge)
        .bind(grant.code_expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses the code with this hash at `now`: only once, before it
    /// expires, while its grant, user and client are live. A code used a
    /// second time revokes its grant, and so every token issued from it
    /// (RFC 6749 4.1.2: a replayed code may have been stolen).
    pub async fn take_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<TakenCode>, StoreError> {
        let taken = sqlx::query(
            "UPDATE smart_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING grant_id, redirect_uri, code_challenge",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(taken) = taken else {
            sqlx::query(
                "UPDATE smart_grants SET revoked_at = $1 WHERE revoked_at IS NULL AND id IN \
                 (SELECT grant_id FROM smart_codes WHERE code_hash = $2 AND used_at IS NOT NULL)",
            )
            .bind(now)
            .bind(code_hash)
            .execute(&self.pool)
            .await?;
            return Ok(None);
        };
        let grant: String = taken.get(0);
        let row = sqlx::query(
            "SELECT g.client_id, g.patient_id, g.scope FROM smart_grants g \
             JOIN users u ON u.id = g.user_id JOIN smart_clients c ON c.id = g.client_id \
             WHERE g.id = $1 AND g.revoked_at IS NULL AND u.revoked_at IS NULL AND c.revoked_at IS NULL",
        )
        .bind(&grant)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(TakenCode {
                grant: grant.clone(),
                client: r.get(0),
                redirect_uri: taken.get(1),
                code_challenge: taken.get(2),
                patient: parse_id(&r.get::<String, _>(1))?,
                scope: r.get(2),
            })
        })
        .transpose()
    }

    /// Stores an access token's hash for a client (and a patient app's grant).
    pub async fn create_token(
        &self,
        token_hash: &str,
        client: &str,
        grant: Option<&str>,
        scope: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO smart_tokens (token_hash, client_id, grant_id, scope, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(client)
        .bind(grant)
        .bind(scope)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token with this hash if it is live at `now`: not expired, its
    /// client not revoked, and for a patient app its grant not revoked and
    /// its user active.
    pub async fn token(&self, token_hash: &str, now: i64) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(
            "SELECT t.client_id, c.name, t.scope, t.grant_id, g.user_id, g.patient_id, c.clinic_id \
             FROM smart_tokens t JOIN smart_clients c ON c.id = t.client_id \
             LEFT JOIN smart_grants g ON g.id = t.grant_id LEFT JOIN users u ON u.id = g.user_id \
             WHERE t.token_hash = $1 AND t.expires_at > $2 AND c.revoked_at IS NULL \
             AND (t.grant_id IS NULL OR (g.revoked_at IS NULL AND u.id IS NOT NULL AND u.revoked_at IS NULL))",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let grant = match (r.get::<Option<String>, _>(3), r.get::<Option<String>, _>(4)) {
                (Some(id), Some(user)) => {
                    Some((id, parse_id(&user)?, parse_id(&r.get::<String, _>(5))?))
                }
                _ => None,
            };
            Ok(TokenRow {
                client: r.get(0),
                client_name: r.get(1),
                scope: r.get(2),
                grant,
                clinic: r.get::<Option<String>, _>(6).map(|c| parse_id(&c)).transpose()?,
            })
        })
        .transpose()
    }

    /// The person's live grants (the apps they let read), newest first.
    pub async fn user_grants(&self, user: UserId) -> Result<Vec<AuthorizedApp>, StoreError> {
        sqlx::query(
            "SELECT g.id, c.name, g.patient_id, g.scope, g.created_at FROM smart_grants g \
             JOIN smart_clients c ON c.id = g.client_id \
             WHERE g.user_id = $1 AND g.revoked_at IS NULL AND c.revoked_at IS NULL ORDER BY g.created_at DESC",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(AuthorizedApp {
                id: r.get(0),
                app: r.get(1),
                patient: parse_id(&r.get::<String, _>(2))?,
                scope: r.get(3),
                granted_at: r.get(4),
            })
        })
        .collect()
    }

    /// Revokes one of the person's grants (and so its codes and tokens);
    /// false if they hold no such live grant.
    pub async fn revoke_grant(&self, user: UserId, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE smart_grants SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes every grant of the person ("sign out everywhere").
    pub async fn revoke_user_grants(&self, user: UserId, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE smart_grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records a client assertion's `jti` until `expires_at`; false if the
    /// client used it before (a replay). Ids of expired assertions are
    /// forgotten first: an expired assertion is refused by its `exp` anyway.
    pub async fn use_assertion(
        &self,
        client: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM smart_assertions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO smart_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes codes and tokens past their expiry (the hourly purge).
    pub(super) async fn purge_smart(&self, now: i64) -> Result<u64, StoreError> {
        let codes = sqlx::query("DELETE FROM smart_codes WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let tokens = sqlx::query("DELETE FROM smart_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(codes.rows_affected() + tokens.rows_affected())
    }
}
