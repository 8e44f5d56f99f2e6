//! Identity and access: sessions, the `AuthUser` extractor, the same-origin
//! (CSRF) check, and the passkey ceremonies.
//!
//! Sessions live in the database. The `portal_session` cookie holds 32 random
//! bytes; only their SHA-256 hash is stored. Every state-changing request must
//! carry an `Origin` header equal to the public URL's origin.
//!
//! A session records the passkey it was signed in with (removing the passkey
//! ends it) and when its holder last used a passkey: granting access to
//! anyone (a passkey, a caregiver, an enrollment link) needs that to be
//! within `REAUTH_WINDOW` (`AuthUser::require_fresh`); `/api/reauth` renews it.

mod end_reason;
pub use end_reason::EndReason;
pub mod accounts;
pub mod ceremonies;

use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::Url;
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::storage::{AuditEvent, NewSession, UserRecord};
use crate::{AppState, Error};
use shared::api::AuditAction;
use shared::api::UserRole;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "portal_session";
/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 60 * 60);
/// A session ends this long after sign-in, however active.
pub const SESSION_ABSOLUTE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// A WebAuthn ceremony must finish within this.
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);
/// An enrollment link is valid this long.
pub const ENROLLMENT_TTL: Duration = Duration::from_secs(72 * 60 * 60);
/// Last-activity writes are skipped when the previous one is this recent.
pub const TOUCH_INTERVAL_MS: i64 = 60_000;
/// Adding a passkey, inviting a caregiver or issuing an enrollment link
/// needs a passkey used within this long (a sign-in or a re-authentication):
/// a session left open on a lost device cannot hand out access on its own.
pub const REAUTH_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Site-wide passkey and cookie settings, derived from the public URL.
pub struct AuthConfig {
    pub webauthn: Webauthn,
    /// `scheme://host[:port]`, what browsers send as `Origin`.
    pub origin: String,
    /// Cookies are `Secure` when the public URL is https.
    pub secure_cookies: bool,
}

impl AuthConfig {
    pub fn new(public_url: &str) -> Result<Self, Error> {
        let url = Url::parse(public_url)
            .map_err(|e| Error::Webauthn(format!("public URL {public_url:?}: {e}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| Error::Webauthn(format!("public URL {public_url:?} has no host")))?
            .to_owned();
        let origin = url.origin().ascii_serialization();
        let origin_url = Url::parse(&origin).map_err(|e| Error::Webauthn(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(&host, &origin_url)
            .and_then(|b| b.rp_name("Patient portal").timeout(CEREMONY_TTL).build())
            .map_err(|e| Error::Webauthn(e.to_string()))?;
        Ok(Self { webauthn, origin, secure_cookies: url.scheme() == "https" })
    }
}

/// The signed-in user of a request.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user: UserRecord,
    /// The session's public id (audit rows name it as the device).
    pub session_id: String,
    /// The session's Automerge actor id (32 hex digits), bound to the user.
    pub actor_id: String,
    /// The passkey the session was signed in with.
    pub passkey: Option<uuid::Uuid>,
    /// When the session's holder last used a passkey (ms).
    pub verified_at: i64,
}

impl AuthUser {
    /// The patient whose record this user acts for (patients and caregivers).
    pub fn patient(&self) -> Option<shared::PatientId> {
        match self.user.role {
            UserRole::Patient | UserRole::Caregiver => self.user.patient,
            UserRole::Provider | UserRole::Admin => None,
        }
    }

    /// Refuses (403 `reauth_required`) unless a passkey was used in this
    /// session within `REAUTH_WINDOW` before `now`. Checked after the role
    /// checks, so a request its role may never make still answers 403
    /// `forbidden`.
    pub fn require_fresh(&self, now: i64) -> Result<(), Error> {
        if now - self.verified_at <= ms(REAUTH_WINDOW) {
            Ok(())
        } else {
            Err(Error::ReauthRequired)
        }
    }

    /// Appends an audit event from this user and session.
    pub async fn audit(
        &self,
        state: &AppState,
        action: AuditAction,
        patient: Option<shared::PatientId>,
        detail: &str,
    ) -> Result<(), Error> {
        let event = AuditEvent {
            user: Some(self.user.id),
            session: Some(&self.session_id),
            action,
            patient,
            doc: None,
            detail,
        };
        state.store.audit(&event, state.now()).await?;
        Ok(())
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        session_user(state, &parts.headers).await
    }
}

/// Authenticates a request outside the router's extractors (the sync
/// WebSocket upgrade): the session cookie must name a live session AND the
/// `Origin` header must be the portal's own.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<AuthUser, Error> {
    check_origin(state, headers)?;
    session_user(state, headers).await
}

/// The user of the session named by the request's cookie.
pub async fn session_user(state: &AppState, headers: &HeaderMap) -> Result<AuthUser, Error> {
    let token = session_cookie(headers).ok_or(Error::Unauthorized)?;
    let idle = i64::try_from(SESSION_IDLE.as_millis()).unwrap_or(i64::MAX);
    let now = state.now();
    let hash = hash_secret(&token);
    let Some(session) = state.store.session_by_token(&hash, idle, now).await? else {
        // A dead session: if its account was revoked, the device is told
        // so it removes its copies (see `purge_ended`, which keeps these).
        return Err(match state.store.account_revoked(&hash, now).await? {
            true => Error::AccessRemoved,
            false => Error::Unauthorized,
        });
    };
    let user = state.store.user(session.user).await?.ok_or(Error::Unauthorized)?;
    if now - session.last_seen_at > TOUCH_INTERVAL_MS {
        state.store.touch_session(&session.id, now).await?;
    }
    Ok(AuthUser {
        user,
        session_id: session.id,
        actor_id: session.actor_id,
        passkey: session.passkey,
        verified_at: session.verified_at,
    })
}

/// The value of the `portal_session` cookie, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// Refuses a request whose `Origin` header is missing or foreign.
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), Error> {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) if origin == state.auth.origin => Ok(()),
        _ => Err(Error::OriginMismatch),
    }
}

/// Middleware: every state-changing request must come from the portal's own
/// origin (CSRF defence on top of SameSite=Strict cookies). Requests no
/// cookie authenticates are exempt: the token endpoint (called by apps
/// from their own origin or servers) and FHIR requests carrying an
/// `Authorization` header, which `handlers::fhir` judges by that header alone.
pub async fn require_same_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let path = request.uri().path();
    let cookieless = path == "/oauth/token"
        || (path.starts_with("/fhir/") && request.headers().contains_key(header::AUTHORIZATION));
    if !cookieless && !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        check_origin(&state, request.headers())?;
    }
    Ok(next.run(request).await)
}

/// 32 random bytes, base64url: session cookies, enrollment tokens, ceremony ids.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored in place of a secret: its SHA-256, hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Starts a session for `user`, signed in with `passkey` (None only for
/// operator tools and benchmarks): a fresh cookie and a fresh Automerge actor
/// id bound to the user. Returns the `Set-Cookie` value and the session.
pub async fn start_session(
    state: &AppState,
    user: UserRecord,
    passkey: Option<uuid::Uuid>,
) -> Result<(HeaderValue, AuthUser), Error> {
    let token = new_secret();
    let session_id = uuid::Uuid::now_v7().to_string();
    let mut actor = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut actor);
    let actor_id = hex::encode(actor);
    let now = state.now();
    if !state.store.bind_actor(&actor_id, user.id, now).await? {
        return Err(Error::Conflict("could not allocate a device id; try again".into()));
    }
    let new = NewSession {
        id: &session_id,
        token_hash: &hash_secret(&token),
        user: user.id,
        actor_id: &actor_id,
        expires_at: now + ms(SESSION_ABSOLUTE),
        passkey,
    };
    state.store.create_session(&new, now).await?;
    let cookie = set_cookie(&token, state.auth.secure_cookies, SESSION_ABSOLUTE.as_secs());
    let verified_at = if passkey.is_some() { now } else { 0 };
    Ok((cookie, AuthUser { user, session_id, actor_id, passkey, verified_at }))
}

/// Tells open sync sockets of sessions that just ended (in storage) to
/// close at once, saying why. Sockets on other instances notice within
/// `sync::SESSION_RECHECK`.
pub fn sessions_ended(state: &AppState, sessions: Vec<String>, reason: EndReason) {
    if !sessions.is_empty() {
        state.hub.sessions_ended(sessions, reason);
    }
}

/// A `Set-Cookie` value for the session cookie (`max_age` 0 clears it).
pub fn set_cookie(value: &str, secure: bool, max_age: u64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are base64url")
}
