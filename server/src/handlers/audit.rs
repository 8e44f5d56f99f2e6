//! `/api/audit`: the patient's audit trail, who did what with their record.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use shared::{DocId, UserId};

use super::own_patient;
use crate::auth::AuthUser;
use crate::{AppState, Error};

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
pub async fn list(
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
