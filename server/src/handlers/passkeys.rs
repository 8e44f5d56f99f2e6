//! A user's own passkeys: list, add (while signed in, with a passkey used in
//! the last few minutes), rename, revoke. The last passkey cannot be
//! revoked; revoking one ends every session signed in with it and closes
//! their sync sockets. Other users' passkeys are "not found".

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use shared::api::{AuditAction, Passkey, PasskeyName};
use uuid::Uuid;

use super::json::Json as Body;
use super::session::{FinishRegistration, passkey_name};
use crate::auth::EndReason;
use crate::auth::ceremonies::{self, Started};
use crate::auth::{self, AuthUser};
use crate::storage::CeremonyKind;
use crate::storage::{PasskeyInfo, PasskeyRevocation};
use crate::{AppState, Error};

fn view(p: PasskeyInfo) -> Passkey {
    Passkey {
        id: p.id,
        name: p.name,
        created_at: p.created_at,
        last_used_at: p.last_used_at,
        added_with: p.added_with,
    }
}

pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<Passkey>>, Error> {
    Ok(Json(state.store.passkeys(auth.user.id).await?.into_iter().map(view).collect()))
}

pub async fn register_start(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: axum::http::HeaderMap,
    Body(body): Body<PasskeyName>,
) -> Result<Json<Started>, Error> {
    let name = super::session::new_passkey_name(body.name.as_deref(), &headers)?;
    // Checked here, when the ceremony starts: it lives 5 minutes and only
    // this session holds its id.
    auth.require_fresh(state.now())?;
    Ok(Json(
        ceremonies::start_registration(&state, &auth.user, CeremonyKind::Register, None, &name)
            .await?,
    ))
}

pub async fn register_finish(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<FinishRegistration>,
) -> Result<(StatusCode, Json<Passkey>), Error> {
    let (ceremony, passkey) = ceremonies::verify_registration(
        &state,
        &body.ceremony,
        CeremonyKind::Register,
        &body.credential,
    )
    .await?;
    if ceremony.user != Some(auth.user.id) {
        return Err(Error::CeremonyExpired);
    }
    let name = ceremony.passkey_name.unwrap_or_else(|| "Passkey".into());
    let id = ceremonies::save_passkey(&state, &auth.user, &name, &passkey, auth.passkey).await?;
    auth.audit(&state, AuditAction::PasskeyAdded, auth.patient(), &format!("passkey {id}")).await?;
    let created = state
        .store
        .passkeys(auth.user.id)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or(Error::NotFound)?;
    Ok((StatusCode::CREATED, Json(view(created))))
}

fn passkey_id(id: &str) -> Result<Uuid, Error> {
    id.parse().map_err(|_| Error::NotFound)
}

pub async fn rename(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    Body(body): Body<PasskeyName>,
) -> Result<StatusCode, Error> {
    let id = passkey_id(&id)?;
    if body.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(Error::BadRequest("a passkey name is required".into()));
    }
    let name = passkey_name(body.name.as_deref())?;
    if !state.store.rename_passkey(auth.user.id, id, &name).await? {
        return Err(Error::NotFound);
    }
    auth.audit(&state, AuditAction::PasskeyRenamed, auth.patient(), &format!("passkey {id}"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let id = passkey_id(&id)?;
    match state.store.revoke_passkey(auth.user.id, id, state.now()).await? {
        PasskeyRevocation::Revoked { sessions } => {
            let detail = format!("passkey {id}, {} sessions ended", sessions.len());
            auth::sessions_ended(&state, sessions, EndReason::PasskeyRemoved);
            auth.audit(&state, AuditAction::PasskeyRevoked, auth.patient(), &detail).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        PasskeyRevocation::NotFound => Err(Error::NotFound),
        PasskeyRevocation::LastOne => Err(Error::Conflict(
            "This is your only passkey. Add another one before removing it.".into(),
        )),
    }
}
