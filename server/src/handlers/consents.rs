//! `/api/consents`: which clinics may see a patient's record; the patient
//! grants and withdraws, a caregiver may read the list.

use axum::Json;
use axum::extract::{Path, State};
use shared::api::{AuditAction, Consent};
use shared::{ClinicId, PatientId};

use super::own_patient;
use crate::auth::AuthUser;
use crate::auth::accounts;
use crate::{AppState, Error};

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
pub async fn list(
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
    accounts::grant_consent(&state.store, patient, clinic, state.now()).await?;
    state.hub.access_changed();
    auth.audit(&state, AuditAction::ConsentGranted, Some(patient), &format!("clinic {clinic}"))
        .await?;
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
    state.store.revoke_consent(patient, clinic, state.now()).await?;
    // Open sync connections of that clinic stop receiving the record now.
    state.hub.access_changed();
    auth.audit(&state, AuditAction::ConsentRevoked, Some(patient), &format!("clinic {clinic}"))
        .await?;
    Ok(Json(consent_list(&state, patient).await?))
}
