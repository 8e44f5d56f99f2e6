//! `/api/clinics`: the clinics a patient can choose to consent to; and
//! `/api/clinic`: a clinic admin's own clinic, its people and the details
//! patients read (phone, how soon messages are answered).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::api::{ClinicDetails, ClinicPage, ClinicRef};

use super::invitations::admin_clinic;
use super::json::Json as Body;
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

/// `GET /api/clinic`: the admin's clinic: its details and its people (to
/// issue them new sign-in links). Admins only.
pub async fn page(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<ClinicPage>, Error> {
    let clinic = admin_clinic(&auth)?;
    let contact = state.store.clinic_contacts(&[clinic]).await?.pop().ok_or(Error::NotFound)?;
    let people = state.store.clinic_people(clinic).await?;
    Ok(Json(ClinicPage { contact, people }))
}

/// `PUT /api/clinic/details`'s body: the details patients read, and the
/// clinic's IANA time zone (`America/Chicago`), which stays as it is when
/// absent (the app's admin page does not send it yet: it waits for bundle
/// room, so it is kept out of `shared::api`).
#[derive(Deserialize)]
pub struct DetailsBody {
    #[serde(flatten)]
    details: ClinicDetails,
    #[serde(default)]
    time_zone: Option<String>,
}

/// `PUT /api/clinic/details`: the admin changes the clinic's phone number
/// or reply time, which patients' devices read with their next `/api/me`,
/// or its time zone (an IANA name, else 400), whose date is the clinic's
/// "today" from the next request on (`zone`).
pub async fn set_details(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(body): Body<DetailsBody>,
) -> Result<StatusCode, Error> {
    let clinic = admin_clinic(&auth)?;
    let DetailsBody { details, time_zone } = body;
    details.check().map_err(|e| Error::BadRequest(e.into()))?;
    if let Some(zone) = &time_zone {
        crate::zone::check(zone).map_err(Error::BadRequest)?;
    }
    state.store.set_clinic_details(clinic, &details, time_zone.as_deref()).await?;
    tracing::info!(%clinic, "clinic details changed");
    Ok(StatusCode::NO_CONTENT)
}
