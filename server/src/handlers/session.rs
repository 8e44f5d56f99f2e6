//! Signing in and out: usernameless passkey sign-in, enrollment through a
//! one-time link, sign-out, and who am I.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use shared::{ClinicId, PatientId, UserId};
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::json::Json as Body;
use crate::auth::ceremonies::{self, ENROLL, Started};
use crate::auth::{self, AuthUser, hash_secret, session_cookie};
use crate::storage::{AuditEvent, UserRecord, UserRole};
use crate::{AppState, Error};

#[derive(Serialize)]
pub struct ClinicRef {
    pub id: ClinicId,
    pub name: String,
}

#[derive(Serialize)]
pub struct CaregiverRights {
    pub may_read: bool,
    pub may_message: bool,
}

/// `GET /api/me`: the signed-in user and this session's actor id.
#[derive(Serialize)]
pub struct Me {
    pub user_id: UserId,
    pub display_name: String,
    pub role: &'static str,
    pub patient_id: Option<PatientId>,
    pub clinics: Vec<ClinicRef>,
    pub caregiver: Option<CaregiverRights>,
    pub actor_id: String,
    pub session_id: String,
}

async fn me_of(_state: &AppState, auth: &AuthUser) -> Result<Me, Error> {
    let clinics =
        auth.user.clinics.iter().zip(&auth.user.clinic_names).map(|(&id, name)| ClinicRef { id, name: name.clone() }).collect();
    Ok(Me {
        user_id: auth.user.id,
        display_name: auth.user.display_name.clone(),
        role: auth.user.role.code(),
        patient_id: auth.patient(),
        clinics,
        caregiver: (auth.user.role == UserRole::Caregiver)
            .then_some(CaregiverRights { may_read: true, may_message: auth.user.may_message }),
        actor_id: auth.actor_id.clone(),
        session_id: auth.session_id.clone(),
    })
}

pub async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Me>, Error> {
    Ok(Json(me_of(&state, &auth).await?))
}

/// Starts a session and answers with the cookie and `/api/me`.
async fn signed_in(state: &AppState, user: UserRecord, action: &str, detail: &str) -> Result<Response, Error> {
    let (cookie, auth) = auth::start_session(state, user).await?;
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

pub async fn login_finish(State(state): State<AppState>, Body(body): Body<FinishLogin>) -> Result<Response, Error> {
    let (user, passkey) = ceremonies::finish_login(&state, &body.ceremony, &body.credential).await?;
    signed_in(&state, user, "sign_in", &format!("passkey {passkey}")).await
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
}

/// A passkey name: trimmed, 1 to 60 characters.
pub fn passkey_name(name: Option<&str>) -> Result<String, Error> {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or("Passkey");
    if name.chars().count() > 60 {
        return Err(Error::BadRequest("a passkey name has at most 60 characters".into()));
    }
    Ok(name.to_owned())
}

pub async fn enroll_start(State(state): State<AppState>, Body(body): Body<StartEnroll>) -> Result<Json<EnrollStarted>, Error> {
    let token_hash = hash_secret(body.token.trim());
    let user_id = state.store.enrollment_user(&token_hash).await?.ok_or(Error::EnrollmentLinkInvalid)?;
    let user = state.store.user(user_id).await?.ok_or(Error::EnrollmentLinkInvalid)?;
    let name = passkey_name(body.passkey_name.as_deref())?;
    let started = ceremonies::start_registration(&state, &user, ENROLL, Some(token_hash), &name).await?;
    Ok(Json(EnrollStarted { started, display_name: user.display_name, role: user.role.code() }))
}

#[derive(Deserialize)]
pub struct FinishRegistration {
    pub ceremony: String,
    pub credential: RegisterPublicKeyCredential,
}

pub async fn enroll_finish(State(state): State<AppState>, Body(body): Body<FinishRegistration>) -> Result<Response, Error> {
    let (ceremony, passkey) = ceremonies::verify_registration(&state, &body.ceremony, ENROLL, &body.credential).await?;
    let token_hash = ceremony.enrollment_hash.ok_or(Error::EnrollmentLinkInvalid)?;
    // Only one use of a link can pass this, even when two finish at once.
    if !state.store.use_enrollment(&token_hash).await? {
        return Err(Error::EnrollmentLinkInvalid);
    }
    let user_id = ceremony.user.ok_or(Error::EnrollmentLinkInvalid)?;
    let user = state.store.user(user_id).await?.ok_or(Error::EnrollmentLinkInvalid)?;
    let name = ceremony.passkey_name.unwrap_or_else(|| "Passkey".into());
    let id = ceremonies::save_passkey(&state, &user, &name, &passkey).await?;
    let patient = match user.role {
        UserRole::Patient | UserRole::Caregiver => user.patient,
        _ => None,
    };
    let detail = format!("passkey {id}");
    state
        .store
        .audit(&AuditEvent { user: Some(user.id), session: None, action: "passkey_added", patient, doc: None, detail: &detail })
        .await?;
    signed_in(&state, user, "enrollment", &detail).await
}

/// `POST /api/logout`: ends this session (if any) and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    if session_cookie(&headers).is_some()
        && let Ok(auth) = auth::session_user(&state, &headers).await
    {
        state.store.revoke_session(&auth.session_id).await?;
        auth.audit(&state, "sign_out", auth.patient(), "").await?;
    }
    Ok(cleared(&state))
}

/// `POST /api/logout-all`: ends every session of the user.
pub async fn logout_all(State(state): State<AppState>, auth: AuthUser) -> Result<Response, Error> {
    let ended = state.store.revoke_user_sessions(auth.user.id).await?;
    auth.audit(&state, "sign_out_everywhere", auth.patient(), &format!("{ended} sessions")).await?;
    Ok(cleared(&state))
}

fn cleared(state: &AppState) -> Response {
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, auth::set_cookie("", state.auth.secure_cookies, 0))]).into_response()
}
