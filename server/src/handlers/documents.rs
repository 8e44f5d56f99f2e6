//! `/api/documents`: the documents the signed-in user may read (the read
//! policy, `storage::read_access`), and the copies a device removed once
//! it no longer might.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use shared::api::{AuditAction, DocumentInfo, RemovedCopies, UserRole};

use super::json::Json as Body;
use crate::auth::AuthUser;
use crate::storage::AuditEvent;
use crate::{AppState, Error};

/// `GET /api/documents`: every document the user may read.
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<DocumentInfo>>, Error> {
    let rows = state.store.readable_documents(&auth.user).await?;
    Ok(Json(rows.into_iter().map(|d| DocumentInfo { id: d.id, kind: d.kind }).collect()))
}

/// The largest report body: `RemovedCopies::MAX_DOCS` quoted ids with room.
pub const MAX_REPORT_BYTES: usize = RemovedCopies::MAX_DOCS * 48 + 64;

/// `POST /api/documents/removed`: a clinic device deleted its copies of
/// documents its user may no longer read (the patient took the clinic's
/// access away); each goes into that patient's access log. Only documents
/// the user could read under a consent since withdrawn count, so nobody
/// writes into a stranger's log; the others are left out. Patients and
/// caregivers read their own record whatever the consents: theirs ends
/// with the account (`auth::access_removed`).
pub async fn removed(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<RemovedCopies>,
) -> Result<StatusCode, Error> {
    if !matches!(auth.user.role, UserRole::Provider | UserRole::Admin) {
        return Err(Error::Forbidden);
    }
    if body.docs.len() > RemovedCopies::MAX_DOCS {
        return Err(Error::BadRequest(format!(
            "at most {} documents per report",
            RemovedCopies::MAX_DOCS
        )));
    }
    let mut docs = body.docs;
    docs.sort();
    docs.dedup();
    let readable = state.store.readable_among(&auth.user, &docs).await?;
    let mut withdrawn = Vec::new();
    for id in docs.into_iter().filter(|id| !readable.iter().any(|r| r.id == *id)) {
        withdrawn.extend(state.store.withdrawn_document(&auth.user, id).await?);
    }
    let events: Vec<AuditEvent<'_>> = withdrawn
        .iter()
        .map(|row| AuditEvent {
            user: Some(auth.user.id),
            session: Some(&auth.session_id),
            action: AuditAction::CopyRemoved,
            patient: Some(row.kind.patient()),
            doc: Some(row.id),
            detail: "",
        })
        .collect();
    state.store.audit_all(&events, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
