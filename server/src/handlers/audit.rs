//! `/api/audit`: the patient's audit trail, who did what with their record.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use shared::api::{AuditAction, AuditEntry, DownloadReport};

use super::own_patient;
use crate::auth::AuthUser;
use crate::storage::AuditEvent;
use crate::{AppState, Error};

/// How far ahead of the server's clock a device's report of a download may
/// be: device clocks drift by seconds, not minutes.
const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

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
                clinic_name: e.clinic_name,
                role: e.role,
                action: e.action,
                doc_id: e.doc,
                detail: e.detail,
            })
            .collect(),
    ))
}

/// `POST /api/audit/downloads`: a device reports that the record was
/// downloaded from its own copy (offline, perhaps long ago), once it is
/// online again; the access log shows it at the time of the download.
/// Patients and their caregivers (who read the whole record) only.
pub async fn download(
    State(state): State<AppState>,
    auth: AuthUser,
    super::json::Json(report): super::json::Json<DownloadReport>,
) -> Result<StatusCode, Error> {
    let patient = auth.patient().ok_or(Error::Forbidden)?;
    if report.at <= 0 || report.at > state.now() + CLOCK_SKEW_MS {
        return Err(Error::BadRequest("`at` must be a time that has passed".into()));
    }
    let event = AuditEvent {
        user: Some(auth.user.id),
        session: Some(&auth.session_id),
        action: AuditAction::RecordDownloaded,
        patient: Some(patient),
        doc: None,
        detail: "from the device's copy",
    };
    state.store.audit(&event, report.at).await?;
    Ok(StatusCode::NO_CONTENT)
}
