//! Enrollment links for new and existing people: a clinic admin invites a
//! patient or a provider (`/api/invitations`) and issues new links to the
//! people of their clinic (`/api/users/{user_id}/enrollment`). The link
//! view and re-issuing are shared with the patient's caregivers.
//!
//! A person the admin does not manage answers 404, as if they did not exist.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use shared::api::{AuditAction, Invitation, NewInvitation, UserRole};
use shared::{ClinicId, PatientId, UserId};

use super::json::Json as Body;
use crate::auth::AuthUser;
use crate::auth::accounts::{self, NewAccount};
use crate::storage::UserRecord;
use crate::{AppState, Error};

/// The clinic an admin administers.
pub(super) fn admin_clinic(auth: &AuthUser) -> Result<ClinicId, Error> {
    match (auth.user.role, auth.user.clinics.first()) {
        (UserRole::Admin, Some(&clinic)) => Ok(clinic),
        _ => Err(Error::Forbidden),
    }
}

pub(super) fn view(invitation: &accounts::Invitation) -> Invitation {
    Invitation {
        user_id: invitation.user.id,
        role: invitation.user.role,
        patient_id: invitation.user.patient,
        link: invitation.link.clone(),
        expires_at: invitation.expires_at,
        replaces_passkeys: 0,
    }
}

/// Issues a new link for an existing person, audited either way; if they
/// have passkeys the link is a recovery (using it replaces them), and the
/// audit row and the answer say so.
pub(super) async fn reissue_link(
    state: &AppState,
    auth: &AuthUser,
    user: UserRecord,
    action: AuditAction,
    patient: Option<PatientId>,
) -> Result<(StatusCode, Json<Invitation>), Error> {
    let replaces = state.store.passkeys(user.id).await?.len();
    let (link, expires_at) = accounts::issue_enrollment(
        &state.store,
        &state.public_url,
        user.id,
        Some(auth.user.id),
        state.now(),
    )
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
    view.replaces_passkeys = replaces as u64;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `POST /api/invitations`: a clinic admin creates a patient (who consents to
/// the admin's clinic) or a provider of their clinic, and gets the link.
pub async fn invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<NewInvitation>,
) -> Result<(StatusCode, Json<Invitation>), Error> {
    let clinic = admin_clinic(&auth)?;
    auth.require_fresh(state.now())?;
    let role = match body.role {
        UserRole::Patient | UserRole::Provider => body.role,
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
    let invitation =
        accounts::create_account(&state.store, &state.public_url, new, state.now()).await?;
    let detail = format!("{} {}", role.code(), invitation.user.id);
    auth.audit(&state, AuditAction::UserInvited, invitation.user.patient, &detail).await?;
    Ok((StatusCode::CREATED, Json(view(&invitation))))
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
) -> Result<(StatusCode, Json<Invitation>), Error> {
    let clinic = admin_clinic(&auth)?;
    let user: UserId = user.parse().map_err(|_| Error::NotFound)?;
    let user = state.store.user(user).await?.ok_or(Error::NotFound)?;
    if !state.store.user_active(user.id).await? || !manages(&state, clinic, &user).await? {
        return Err(Error::NotFound);
    }
    auth.require_fresh(state.now())?;
    let patient = user.patient;
    reissue_link(&state, &auth, user, AuditAction::EnrollmentLinkIssued, patient).await
}
