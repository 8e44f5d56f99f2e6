//! Signing in and out: usernameless passkey sign-in, enrollment through a
//! one-time link, re-authentication, sign-out, and who am I.
//!
//! Enrolling with a link for an account that already has passkeys is a
//! recovery: the old passkeys are revoked (a sign-in with one says it was
//! replaced, and when), every session of the account ends and its sockets
//! close with the reason, and the audit trail records it. So a link never
//! silently adds a second way into someone's account; while they still have
//! a session, the person sees open links for their account and can cancel
//! them (`/api/enrollments`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shared::api::{AuditAction, CaregiverRights, ClinicRef, Colleague, Me, OpenLink, UserRole};
use shared::{PatientId, UserId};
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::json::Json as Body;
use crate::auth::EndReason;
use crate::auth::ceremonies::{self, Started};
use crate::auth::{self, AuthUser, hash_secret, session_cookie};
use crate::storage::CeremonyKind;
use crate::storage::{AuditEvent, UserRecord};
use crate::{AppState, Error};

async fn me_of(state: &AppState, auth: &AuthUser) -> Result<Me, Error> {
    let clinics = auth
        .user
        .clinics
        .iter()
        .zip(&auth.user.clinic_names)
        .map(|(&id, name)| ClinicRef { id, name: name.clone() })
        .collect();
    // The clinics caring for the patient, for the notice above each
    // conversation (reply time, phone), also offline.
    let care = match auth.patient() {
        Some(patient) => {
            let clinics = state.store.consenting_clinics(patient).await?;
            state.store.clinic_contacts(&clinics).await?
        }
        None => Vec::new(),
    };
    Ok(Me {
        user_id: auth.user.id,
        display_name: auth.user.display_name.clone(),
        role: auth.user.role,
        patient_id: auth.patient(),
        clinics,
        caregiver: (auth.user.role == UserRole::Caregiver)
            .then_some(CaregiverRights { may_read: true, may_message: auth.user.may_message }),
        actor_id: auth.actor_id.clone(),
        session_id: auth.session_id.clone(),
        passkey_id: auth.passkey,
        care,
        colleagues: auth
            .user
            .colleagues
            .iter()
            .map(|(clinic_id, user_id, name)| Colleague {
                clinic_id: *clinic_id,
                user_id: *user_id,
                display_name: name.clone(),
            })
            .collect(),
    })
}

pub async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Me>, Error> {
    Ok(Json(me_of(&state, &auth).await?))
}

/// Starts a session signed in with `passkey` and answers with the cookie and `/api/me`.
async fn signed_in(
    state: &AppState,
    user: UserRecord,
    passkey: uuid::Uuid,
    action: AuditAction,
    detail: &str,
) -> Result<Response, Error> {
    let (cookie, auth) = auth::start_session(state, user, Some(passkey)).await?;
    auth.audit(state, action, auth.patient(), detail).await?;
    let me = me_of(state, &auth).await?;
    Ok(([(header::SET_COOKIE, cookie)], Json(me)).into_response())
}

#[derive(Deserialize)]
pub struct FinishLogin {
    ceremony: String,
    credential: PublicKeyCredential,
}

pub async fn login_start(State(state): State<AppState>) -> Result<Json<Started>, Error> {
    Ok(Json(ceremonies::start_login(&state).await?))
}

pub async fn login_finish(
    State(state): State<AppState>,
    Body(body): Body<FinishLogin>,
) -> Result<Response, Error> {
    let (user, passkey) =
        ceremonies::finish_login(&state, &body.ceremony, &body.credential).await?;
    signed_in(&state, user, passkey, AuditAction::SignIn, &format!("passkey {passkey}")).await
}

#[derive(Deserialize)]
pub struct StartEnroll {
    token: String,
    #[serde(default)]
    passkey_name: Option<String>,
}

#[derive(Serialize)]
pub struct EnrollStarted {
    #[serde(flatten)]
    started: Started,
    display_name: String,
    role: &'static str,
    /// Passkeys the account has now: finishing replaces them all.
    replaces_passkeys: usize,
}

/// A passkey name: trimmed, 1 to 60 characters.
pub fn passkey_name(name: Option<&str>) -> Result<String, Error> {
    named_passkey(name, "Passkey")
}

/// A new passkey's name: the one given, or else the device it is made on as
/// its browser says ("Chrome on Android"), so that a person who later sees
/// several can tell which one is the lost phone.
pub fn new_passkey_name(name: Option<&str>, headers: &HeaderMap) -> Result<String, Error> {
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    named_passkey(name, &device_name(agent))
}

/// "Browser on system" from a User-Agent string; "Passkey" if neither is known.
fn device_name(agent: &str) -> String {
    let has = |s: &str| agent.contains(s);
    // Order matters: Edge and Opera say Chrome too, Chrome says Safari.
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(token, _)| has(token))
    .map(|(_, name)| name);
    // iPhone and Android say Mac OS X and Linux too.
    let system = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Mac OS X", "Mac"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(token, _)| has(token))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (None, Some(s)) => s.to_owned(),
        (Some(b), None) => b.to_owned(),
        (None, None) => "Passkey".to_owned(),
    }
}

fn named_passkey(name: Option<&str>, default: &str) -> Result<String, Error> {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(default);
    if name.chars().count() > 60 {
        return Err(Error::BadRequest("a passkey name has at most 60 characters".into()));
    }
    Ok(name.to_owned())
}

pub async fn enroll_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<StartEnroll>,
) -> Result<Json<EnrollStarted>, Error> {
    let token_hash = hash_secret(body.token.trim());
    let user_id = state
        .store
        .enrollment_user(&token_hash, state.now())
        .await?
        .ok_or(Error::EnrollmentLinkInvalid)?;
    let user = state.store.user(user_id).await?.ok_or(Error::EnrollmentLinkInvalid)?;
    let name = new_passkey_name(body.passkey_name.as_deref(), &headers)?;
    let replaces_passkeys = state.store.passkeys(user.id).await?.len();
    let started = ceremonies::start_registration(
        &state,
        &user,
        CeremonyKind::Enroll,
        Some(token_hash),
        &name,
    )
    .await?;
    Ok(Json(EnrollStarted {
        started,
        display_name: user.display_name,
        role: user.role.code(),
        replaces_passkeys,
    }))
}

#[derive(Deserialize)]
pub struct EnrollToken {
    token: String,
}

/// What an enrollment link's page says before the passkey is made: for
/// whom it is, who sent it and, for a caregiver, whose record it opens.
#[derive(Serialize)]
pub struct Invitation {
    display_name: String,
    role: &'static str,
    /// "Dr. Okafor (Riverside Family Practice)", or the patient who invited
    /// a caregiver; None for a link from the operator's command line.
    invited_by: Option<String>,
    /// A caregiver's: whose record the link opens.
    patient_name: Option<String>,
}

pub async fn enroll_invitation(
    State(state): State<AppState>,
    Body(body): Body<EnrollToken>,
) -> Result<Json<Invitation>, Error> {
    let (user_id, issuer) = state
        .store
        .enrollment_issuer(&hash_secret(body.token.trim()), state.now())
        .await?
        .ok_or(Error::EnrollmentLinkInvalid)?;
    let user = state.store.user(user_id).await?.ok_or(Error::EnrollmentLinkInvalid)?;
    let invited_by = match issuer {
        Some(id) => state.store.user(id).await?.map(|i| {
            if i.clinic_names.is_empty() {
                i.display_name
            } else {
                format!("{} ({})", i.display_name, i.clinic_names.join(", "))
            }
        }),
        None => None,
    };
    let patient_name = match (user.role, user.patient) {
        (UserRole::Caregiver, Some(patient)) => state.store.patient_name(patient).await?,
        _ => None,
    };
    Ok(Json(Invitation {
        display_name: user.display_name,
        role: user.role.code(),
        invited_by,
        patient_name,
    }))
}

#[derive(Deserialize)]
pub struct FinishRegistration {
    pub ceremony: String,
    pub credential: RegisterPublicKeyCredential,
}

pub async fn enroll_finish(
    State(state): State<AppState>,
    Body(body): Body<FinishRegistration>,
) -> Result<Response, Error> {
    let (ceremony, passkey) = ceremonies::verify_registration(
        &state,
        &body.ceremony,
        CeremonyKind::Enroll,
        &body.credential,
    )
    .await?;
    let token_hash = ceremony.enrollment_hash.ok_or(Error::EnrollmentLinkInvalid)?;
    let user_id = ceremony.user.ok_or(Error::EnrollmentLinkInvalid)?;
    let user = state.store.user(user_id).await?.ok_or(Error::EnrollmentLinkInvalid)?;
    let name = ceremony.passkey_name.unwrap_or_else(|| "Passkey".into());
    let (credential, json) = ceremonies::stored_form(&passkey)?;
    // Only one use of a link can pass this, even when two finish at once;
    // passkeys the account had are replaced in the same transaction.
    let enrolled = state
        .store
        .complete_enrollment(&token_hash, user.id, &credential, &name, &json, state.now())
        .await?
        .ok_or(Error::EnrollmentLinkInvalid)?;
    let patient = match user.role {
        UserRole::Patient | UserRole::Caregiver => user.patient,
        _ => None,
    };
    fn event<'a>(
        user: UserId,
        patient: Option<PatientId>,
        action: AuditAction,
        detail: &'a str,
    ) -> AuditEvent<'a> {
        AuditEvent { user: Some(user), session: None, action, patient, doc: None, detail }
    }
    if enrolled.replaced > 0 {
        auth::sessions_ended(&state, enrolled.ended_sessions.clone(), EndReason::PasskeysReplaced);
        let issuer =
            enrolled.issued_by.map_or_else(|| "the operator".to_owned(), |u| format!("user {u}"));
        let detail = format!(
            "{} passkeys replaced and {} sessions ended by a link issued by {issuer}",
            enrolled.replaced,
            enrolled.ended_sessions.len()
        );
        state
            .store
            .audit(&event(user_id, patient, AuditAction::PasskeysReplaced, &detail), state.now())
            .await?;
    }
    let detail = format!("passkey {}", enrolled.passkey);
    state
        .store
        .audit(&event(user_id, patient, AuditAction::PasskeyAdded, &detail), state.now())
        .await?;
    signed_in(&state, user, enrolled.passkey, AuditAction::Enrollment, &detail).await
}

#[derive(Deserialize)]
pub struct FinishReauth {
    ceremony: String,
    credential: PublicKeyCredential,
}

/// `POST /api/reauth/start`: options to assert with one of the signed-in
/// user's own passkeys.
pub async fn reauth_start(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Started>, Error> {
    Ok(Json(ceremonies::start_reauth(&state, &auth.user).await?))
}

/// `POST /api/reauth/finish`: the session is verified again for `REAUTH_WINDOW`.
pub async fn reauth_finish(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<FinishReauth>,
) -> Result<StatusCode, Error> {
    let passkey =
        ceremonies::finish_reauth(&state, &auth.user, &body.ceremony, &body.credential).await?;
    state.store.mark_verified(&auth.session_id, state.now()).await?;
    auth.audit(&state, AuditAction::Reauthenticated, auth.patient(), &format!("passkey {passkey}"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/enrollments`: enrollment links for the signed-in user that can
/// still be used (someone could create a passkey for this account with
/// them, replacing this person's passkeys).
pub async fn open_links(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<OpenLink>>, Error> {
    let links = state.store.open_enrollments(auth.user.id, state.now()).await?;
    Ok(Json(
        links
            .into_iter()
            .map(|l| OpenLink {
                created_at: l.created_at,
                expires_at: l.expires_at,
                issued_by: l.issued_by_name,
            })
            .collect(),
    ))
}

/// `DELETE /api/enrollments`: the person cancels every open link for their account.
pub async fn cancel_links(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<StatusCode, Error> {
    let cancelled = state.store.cancel_enrollments(auth.user.id, state.now()).await?;
    auth.audit(
        &state,
        AuditAction::EnrollmentLinksCancelled,
        auth.patient(),
        &format!("{cancelled} links"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/logout`: ends this session (if any) and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    if session_cookie(&headers).is_some()
        && let Ok(auth) = auth::session_user(&state, &headers).await
    {
        state.store.revoke_session(&auth.session_id, state.now()).await?;
        auth::sessions_ended(&state, vec![auth.session_id.clone()], EndReason::SignedOut);
        auth.audit(&state, AuditAction::SignOut, auth.patient(), "").await?;
    }
    Ok(cleared(&state))
}

/// `POST /api/logout-all`: ends every session of the user.
pub async fn logout_all(State(state): State<AppState>, auth: AuthUser) -> Result<Response, Error> {
    let ended = state.store.revoke_user_sessions(auth.user.id, state.now()).await?;
    // Apps the person approved lose their access too (their tokens answer 401).
    state.store.revoke_user_grants(auth.user.id, state.now()).await?;
    let count = ended.len();
    auth::sessions_ended(&state, ended, EndReason::SignedOutEverywhere);
    auth.audit(
        &state,
        AuditAction::SignOutEverywhere,
        auth.patient(),
        &format!("{count} sessions"),
    )
    .await?;
    Ok(cleared(&state))
}

fn cleared(state: &AppState) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::set_cookie("", state.auth.secure_cookies, 0))],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::device_name;

    #[test]
    fn a_new_passkey_is_named_by_its_device() {
        for (agent, name) in [
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/131.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox on Mac",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36",
                "Chrome on Linux",
            ),
            ("", "Passkey"),
            ("curl/8.5", "Passkey"),
        ] {
            assert_eq!(device_name(agent), name, "{agent}");
        }
    }
}
