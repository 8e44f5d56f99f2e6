//! `/api/clinics`: the clinics a patient can choose to consent to.

use axum::Json;
use axum::extract::State;
use shared::api::ClinicRef;

use crate::auth::AuthUser;
use crate::{AppState, Error};

/// `GET /api/clinics`: every clinic, so a patient can choose whom to consent to.
pub async fn list(
    State(state): State<AppState>,
    _auth: AuthUser,
) -> Result<Json<Vec<ClinicRef>>, Error> {
    Ok(Json(
        state.store.clinics().await?.into_iter().map(|(id, name)| ClinicRef { id, name }).collect(),
    ))
}
