//! Who may see what: clinics, a patient's consents, caregivers, readable
//! documents, the patient's audit trail, and admin invitations.
//!
//! A request about a resource the user may not know exists answers 404, not
//! 403; a request their role may never make answers 403.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::{ClinicId, DocId, DocKind, PatientId, UserId};

use super::json::Json as Body;
use crate::auth::accounts::{self, NewAccount};
use crate::auth::{self, AuthUser};
use crate::storage::{UserRecord, UserRole};
use crate::sync::EndReason;
use crate::{AppState, Error};

/// The patient a patient user is; other roles may not manage consents or caregivers.
fn own_patient(auth: &AuthUser) -> Result<PatientId, Error> {
    match (auth.user.role, auth.user.patient) {
        (UserRole::Patient, Some(patient)) => Ok(patient),
        _ => Err(Error::Forbidden),
    }
}

/// The clinic an admin administers.
fn admin_clinic(auth: &AuthUser) -> Result<ClinicId, Error> {
    match (auth.user.role, auth.user.clinics.first()) {
        (UserRole::Admin, Some(&clinic)) => Ok(clinic),
        _ => Err(Error::Forbidden),
    }
}

#[derive(Serialize)]
pub struct Clinic {
    id: ClinicId,
    name: String,
}

/// `GET /api/clinics`: every clinic, so a patient can choose whom to consent to.
pub async fn clinics(
    State(state): State<AppState>,
    _auth: AuthUser,
) -> Result<Json<Vec<Clinic>>, Error> {
    Ok(Json(
        state.store.clinics().await?.into_iter().map(|(id, name)| Clinic { id, name }).collect(),
    ))
}

#[derive(Serialize)]
pub struct Consent {
    clinic_id: ClinicId,
    clinic_name: String,
}

async fn consent_list(state: &AppState, patient: PatientId) -> Result<Vec<Consent>, Error> {
    let mut out = Vec::new();
    for clinic_id in state.store.consenting_clinics(patient).await? {
        out.push(Consent {
            clinic_id,
            clinic_name: state.store.clinic_name(clinic_id).await?.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// `GET /api/consents`: the clinics that may see the patient's record
/// (the patient, or a caregiver reading on their behalf).
pub async fn consents(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<Consent>>, Error> {
    let patient = auth.patient().ok_or(Error::Forbidden)?;
    Ok(Json(consent_list(&state, patient).await?))
}

fn clinic_id(text: &str) -> Result<ClinicId, Error> {
    text.parse().map_err(|_| Error::NotFound)
}

/// `POST /api/consents/{clinic_id}`: the patient lets a clinic see their record.
pub async fn grant(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(clinic): Path<String>,
) -> Result<Json<Vec<Consent>>, Error> {
    let patient = own_patient(&auth)?;
    let clinic = clinic_id(&clinic)?;
    if state.store.clinic_name(clinic).await?.is_none() {
        return Err(Error::NotFound);
    }
    accounts::grant_consent(&state.store, patient, clinic).await?;
    state.hub.access_changed();
    auth.audit(&state, "consent_granted", Some(patient), &format!("clinic {clinic}")).await?;
    Ok(Json(consent_list(&state, patient).await?))
}

/// `DELETE /api/consents/{clinic_id}`: the patient withdraws a clinic's access.
pub async fn revoke(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(clinic): Path<String>,
) -> Result<Json<Vec<Consent>>, Error> {
    let patient = own_patient(&auth)?;
    let clinic = clinic_id(&clinic)?;
    if !state.store.consenting_clinics(patient).await?.contains(&clinic) {
        return Err(Error::NotFound);
    }
    state.store.revoke_consent(patient, clinic).await?;
    // Open sync connections of that clinic stop receiving the record now.
    state.hub.access_changed();
    auth.audit(&state, "consent_revoked", Some(patient), &format!("clinic {clinic}")).await?;
    Ok(Json(consent_list(&state, patient).await?))
}

#[derive(Serialize)]
pub struct Caregiver {
    user_id: UserId,
    display_name: String,
    may_message: bool,
    enrolled: bool,
    created_at: i64,
}

/// `GET /api/caregivers`: the patient's caregivers.
pub async fn caregivers(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<Caregiver>>, Error> {
    let patient = own_patient(&auth)?;
    let list = state.store.caregivers(patient).await?;
    Ok(Json(
        list.into_iter()
            .map(|c| Caregiver {
                user_id: c.id,
                display_name: c.display_name,
                may_message: c.may_message,
                enrolled: c.enrolled,
                created_at: c.created_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct NewCaregiver {
    display_name: String,
    #[serde(default)]
    may_message: bool,
}

#[derive(Serialize)]
pub struct InvitationView {
    user_id: UserId,
    role: &'static str,
    patient_id: Option<PatientId>,
    /// The one-time enrollment link: `{public_url}/enroll#<token>`.
    link: String,
    expires_at: i64,
    /// Passkeys the person has now: using the link revokes them all and
    /// ends their sessions (a recovery), which they are told.
    replaces_passkeys: usize,
}

/// `POST /api/caregivers`: the patient invites a caregiver (read, or read and
/// message) and gets their one-time enrollment link.
pub async fn invite_caregiver(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<NewCaregiver>,
) -> Result<(StatusCode, Json<InvitationView>), Error> {
    let patient = own_patient(&auth)?;
    auth.require_fresh()?;
    let new = NewAccount {
        role: UserRole::Caregiver,
        display_name: body.display_name,
        clinic: None,
        patient: Some(patient),
        may_message: body.may_message,
        created_by: Some(auth.user.id),
    };
    let invitation = accounts::create_account(&state.store, &state.public_url, new).await?;
    let detail =
        format!("caregiver {} may_message={}", invitation.user.id, invitation.user.may_message);
    auth.audit(&state, "caregiver_invited", Some(patient), &detail).await?;
    Ok((StatusCode::CREATED, Json(view(&invitation))))
}

fn view(invitation: &accounts::Invitation) -> InvitationView {
    InvitationView {
        user_id: invitation.user.id,
        role: invitation.user.role.code(),
        patient_id: invitation.user.patient,
        link: invitation.link.clone(),
        expires_at: invitation.expires_at,
        replaces_passkeys: 0,
    }
}

/// Issues a new link for an existing person, audited either way; if they
/// have passkeys the link is a recovery (using it replaces them), and the
/// audit row and the answer say so.
async fn reissue_link(
    state: &AppState,
    auth: &AuthUser,
    user: UserRecord,
    action: &str,
    patient: Option<PatientId>,
) -> Result<(StatusCode, Json<InvitationView>), Error> {
    let replaces = state.store.passkeys(user.id).await?.len();
    let (link, expires_at) =
        accounts::issue_enrollment(&state.store, &state.public_url, user.id, Some(auth.user.id))
            .await?;
    let detail = match replaces {
        0 => format!("user {}", user.id),
        n => format!(
            "user {}; recovery: using it replaces their {n} passkeys and ends their sessions",
            user.id
        ),
    };
    auth.audit(state, action, patient, &detail).await?;
    let mut view = view(&accounts::Invitation { user, link, expires_at });
    view.replaces_passkeys = replaces;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/caregivers/{user_id}`: the patient revokes a caregiver; their
/// sessions end and their sync sockets close at once.
pub async fn revoke_caregiver(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> Result<StatusCode, Error> {
    let patient = own_patient(&auth)?;
    let user: UserId = user.parse().map_err(|_| Error::NotFound)?;
    if !state.store.caregivers(patient).await?.iter().any(|c| c.id == user) {
        return Err(Error::NotFound);
    }
    let sessions = state.store.revoke_user(user).await?;
    auth::sessions_ended(&state, sessions, EndReason::AccessRemoved);
    state.hub.access_changed();
    auth.audit(&state, "caregiver_revoked", Some(patient), &format!("caregiver {user}")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/caregivers/{user_id}/enrollment`: the patient issues a new
/// enrollment link for one of their caregivers (expired link, new device).
pub async fn reissue_caregiver(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> Result<(StatusCode, Json<InvitationView>), Error> {
    let patient = own_patient(&auth)?;
    let user: UserId = user.parse().map_err(|_| Error::NotFound)?;
    if !state.store.caregivers(patient).await?.iter().any(|c| c.id == user) {
        return Err(Error::NotFound);
    }
    let user = state.store.user(user).await?.ok_or(Error::NotFound)?;
    auth.require_fresh()?;
    reissue_link(&state, &auth, user, "caregiver_link_issued", Some(patient)).await
}

#[derive(Serialize)]
pub struct Document {
    id: DocId,
    #[serde(flatten)]
    kind: DocKind,
}

/// `GET /api/documents`: every document the user may read.
pub async fn documents(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<Document>>, Error> {
    let rows = state.store.readable_documents(&auth.user).await?;
    Ok(Json(rows.into_iter().map(|d| Document { id: d.id, kind: d.kind }).collect()))
}

#[derive(Serialize)]
pub struct AuditView {
    at: i64,
    user_id: Option<UserId>,
    user_name: Option<String>,
    role: Option<String>,
    action: String,
    doc_id: Option<DocId>,
    detail: String,
}

/// `GET /api/audit`: who did what with the patient's record, newest first.
pub async fn audit(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<AuditView>>, Error> {
    let patient = own_patient(&auth)?;
    let entries = state.store.patient_audit(patient, 500).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditView {
                at: e.at,
                user_id: e.user,
                user_name: e.user_name,
                role: e.role,
                action: e.action,
                doc_id: e.doc,
                detail: e.detail,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct NewInvitation {
    role: String,
    display_name: String,
}

/// `POST /api/invitations`: a clinic admin creates a patient (who consents to
/// the admin's clinic) or a provider of their clinic, and gets the link.
pub async fn invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<NewInvitation>,
) -> Result<(StatusCode, Json<InvitationView>), Error> {
    let clinic = admin_clinic(&auth)?;
    auth.require_fresh()?;
    let role = match body.role.as_str() {
        "patient" => UserRole::Patient,
        "provider" => UserRole::Provider,
        _ => return Err(Error::BadRequest("role must be \"patient\" or \"provider\"".into())),
    };
    let new = NewAccount {
        role,
        display_name: body.display_name,
        clinic: Some(clinic),
        patient: None,
        may_message: false,
        created_by: Some(auth.user.id),
    };
    let invitation = accounts::create_account(&state.store, &state.public_url, new).await?;
    let detail = format!("{} {}", role.code(), invitation.user.id);
    auth.audit(&state, "user_invited", invitation.user.patient, &detail).await?;
    Ok((StatusCode::CREATED, Json(view(&invitation))))
}

/// Any other `/api/...` path: a JSON 404 (not the web app's index.html).
pub async fn no_such_route() -> Error {
    Error::NotFound
}

/// A known path with the wrong method: a JSON 405.
pub async fn wrong_method() -> Error {
    Error::MethodNotAllowed
}

/// Whether an admin of `clinic` manages `user`: a member of the clinic, or a
/// patient who consents to it.
async fn manages(state: &AppState, clinic: ClinicId, user: &UserRecord) -> Result<bool, Error> {
    Ok(match user.role {
        UserRole::Provider | UserRole::Admin => user.clinics.contains(&clinic),
        UserRole::Patient => match user.patient {
            Some(patient) => state.store.consenting_clinics(patient).await?.contains(&clinic),
            None => false,
        },
        UserRole::Caregiver => false,
    })
}

/// `POST /api/users/{user_id}/enrollment`: a clinic admin issues a new
/// enrollment link (a lost device) for a user of their clinic. For someone
/// with passkeys it is a recovery link: using it replaces their passkeys and
/// ends their sessions, so the admin cannot quietly become them; until it
/// is used they see it on their account page and can cancel it.
pub async fn reissue(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> Result<(StatusCode, Json<InvitationView>), Error> {
    let clinic = admin_clinic(&auth)?;
    let user: UserId = user.parse().map_err(|_| Error::NotFound)?;
    let user = state.store.user(user).await?.ok_or(Error::NotFound)?;
    if !state.store.user_active(user.id).await? || !manages(&state, clinic, &user).await? {
        return Err(Error::NotFound);
    }
    auth.require_fresh()?;
    let patient = user.patient;
    reissue_link(&state, &auth, user, "enrollment_link_issued", patient).await
}
