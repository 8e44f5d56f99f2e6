//! `/api/documents`: the documents the signed-in user may read (the read
//! policy, `storage::read_access`), and the copies a device removed once
//! it no longer might.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use shared::api::{
    AuditAction, DocumentInfo, OfflineSet, PatientRow, PatientSearch, RemovedCopies,
};

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

/// The largest offline-set body: `OfflineSet::MAX_PATIENTS` quoted ids.
pub const MAX_OFFLINE_BYTES: usize = OfflineSet::MAX_PATIENTS * 48 + 64;

fn staff(auth: &AuthUser) -> Result<(), Error> {
    if auth.user.role.is_staff() { Ok(()) } else { Err(Error::Forbidden) }
}

/// `POST /api/documents/offline`: what a staff device keeps (issue 17
/// part 2): the documents the user may read of the clinic's work today
/// (today in each clinic's time zone: booked appointments, refill requests
/// and appointment requests waiting, unread messages from
/// patients; `Store::work_patients`) and of the patients the device
/// names (pinned, recently opened). Each through the read policy.
pub async fn offline(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<OfflineSet>,
) -> Result<Json<Vec<DocumentInfo>>, Error> {
    staff(&auth)?;
    if body.patients.len() > OfflineSet::MAX_PATIENTS {
        return Err(Error::BadRequest(format!(
            "at most {} patients per request",
            OfflineSet::MAX_PATIENTS
        )));
    }
    // Each clinic's own today (`zone`): a provider of clinics in two time
    // zones gets each clinic's booked appointments of its day.
    let now = state.now();
    let days: Vec<_> = state
        .store
        .clinic_time_zones(&auth.user.clinics)
        .await?
        .into_iter()
        .map(|(clinic, zone)| (clinic, crate::zone::today(now, &zone)))
        .collect();
    let mut patients = state.store.work_patients(&auth.user, &days).await?;
    patients.extend(body.patients);
    patients.sort();
    patients.dedup();
    let rows = state.store.readable_of_patients(&auth.user, &patients).await?;
    Ok(Json(rows.into_iter().map(|d| DocumentInfo { id: d.id, kind: d.kind }).collect()))
}

/// `POST /api/patients/search`: one page (`storage::PAGE`) of the
/// patients whose record the staff member may read, by name.
pub async fn patients(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(query): Body<PatientSearch>,
) -> Result<Json<Vec<PatientRow>>, Error> {
    staff(&auth)?;
    if query.q.len() > PatientSearch::MAX_QUERY_BYTES || query.offset > PatientSearch::MAX_OFFSET {
        return Err(Error::BadRequest("search words or page out of range".into()));
    }
    Ok(Json(state.store.patient_page(&auth.user, &query.q, query.offset as usize).await?))
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
    staff(&auth)?;
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
