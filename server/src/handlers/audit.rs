//! `/api/audit`: the patient's audit trail, who did what with their record.

use axum::Json;
use axum::extract::State;
use shared::api::AuditEntry;

use super::own_patient;
use crate::auth::AuthUser;
use crate::{AppState, Error};

/// `GET /api/audit`: who did what with the patient's record, newest first.
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<AuditEntry>>, Error> {
    let patient = own_patient(&auth)?;
    let entries = state.store.patient_audit(patient, 500).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditEntry {
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
