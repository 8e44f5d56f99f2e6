//! `/api/caregivers`: the people a patient lets act for them. The patient
//! lists, invites and revokes them and issues them new enrollment links.
//!
//! Someone else's caregiver answers 404, as if it did not exist.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use shared::UserId;
use shared::api::{AuditAction, Caregiver, Invitation, NewCaregiver, UserRole};

use super::invitations::{reissue_link, view};
use super::json::Json as Body;
use super::own_patient;
use crate::auth::EndReason;
use crate::auth::accounts::{self, NewAccount};
use crate::auth::{self, AuthUser};
use crate::{AppState, Error};

/// `GET /api/caregivers`: the patient's caregivers.
pub async fn list(
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

/// `POST /api/caregivers`: the patient invites a caregiver (read, or read and
/// message) and gets their one-time enrollment link.
pub async fn invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<NewCaregiver>,
) -> Result<(StatusCode, Json<Invitation>), Error> {
    let patient = own_patient(&auth)?;
    auth.require_fresh(state.now())?;
    let new = NewAccount {
        role: UserRole::Caregiver,
        display_name: body.display_name,
        clinic: None,
        patient: Some(patient),
        may_message: body.may_message,
        created_by: Some(auth.user.id),
    };
    let invitation =
        accounts::create_account(&state.store, &state.public_url, new, state.now()).await?;
    let detail =
        format!("caregiver {} may_message={}", invitation.user.id, invitation.user.may_message);
    auth.audit(&state, AuditAction::CaregiverInvited, Some(patient), &detail).await?;
    Ok((StatusCode::CREATED, Json(view(&invitation))))
}

/// `DELETE /api/caregivers/{user_id}`: the patient revokes a caregiver; their
/// sessions end and their sync sockets close at once.
pub async fn revoke(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> Result<StatusCode, Error> {
    let patient = own_patient(&auth)?;
    let user: UserId = user.parse().map_err(|_| Error::NotFound)?;
    if !state.store.caregivers(patient).await?.iter().any(|c| c.id == user) {
        return Err(Error::NotFound);
    }
    let sessions = state.store.revoke_user(user, state.now()).await?;
    auth::sessions_ended(&state, sessions, EndReason::AccessRemoved);
    state.hub.access_changed();
    auth.audit(&state, AuditAction::CaregiverRevoked, Some(patient), &format!("caregiver {user}"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/caregivers/{user_id}/enrollment`: the patient issues a new
/// enrollment link for one of their caregivers (expired link, new device).
pub async fn reissue(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> Result<(StatusCode, Json<Invitation>), Error> {
    let patient = own_patient(&auth)?;
    let user: UserId = user.parse().map_err(|_| Error::NotFound)?;
    if !state.store.caregivers(patient).await?.iter().any(|c| c.id == user) {
        return Err(Error::NotFound);
    }
    let user = state.store.user(user).await?.ok_or(Error::NotFound)?;
    auth.require_fresh(state.now())?;
    reissue_link(&state, &auth, user, AuditAction::CaregiverLinkIssued, Some(patient)).await
}
