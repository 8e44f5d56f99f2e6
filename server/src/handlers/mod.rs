//! One module per resource the HTTP API serves; `router.rs` lists every
//! route in one place.

pub mod appointments;
pub mod audit;
pub mod caregivers;
pub mod clinics;
pub mod consents;
pub mod documents;
pub mod fallback;
pub mod fhir;
pub mod health;
pub mod invitations;
pub mod json;
pub mod oauth;
pub mod passkeys;
pub mod session;
pub mod web;

use shared::PatientId;

use crate::Error;
use crate::auth::AuthUser;
use shared::api::UserRole;

/// The patient a patient user is; other roles may not manage consents or caregivers.
fn own_patient(auth: &AuthUser) -> Result<PatientId, Error> {
    match (auth.user.role, auth.user.patient) {
        (UserRole::Patient, Some(patient)) => Ok(patient),
        _ => Err(Error::Forbidden),
    }
}
