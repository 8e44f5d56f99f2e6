//! Creating accounts (no self sign-up: an admin, a patient for a caregiver,
//! or the operator's CLI creates them) and one-time enrollment links.

use shared::{ClinicId, DocKind, PatientId, UserId};

use super::{ENROLLMENT_TTL, hash_secret, ms, new_secret};
use crate::Error;
use crate::storage::{NewUser, Store, UserRecord};
use shared::api::UserRole;

/// An account to create.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub role: UserRole,
    pub display_name: String,
    /// The clinic of a provider or admin; for a patient, a clinic that gets
    /// the patient's consent at once.
    pub clinic: Option<ClinicId>,
    /// The patient a caregiver acts for.
    pub patient: Option<PatientId>,
    /// Whether a caregiver may also message and request refills.
    pub may_message: bool,
    pub created_by: Option<UserId>,
}

/// A created account and its enrollment link.
#[derive(Clone, Debug)]
pub struct Invitation {
    pub user: UserRecord,
    pub link: String,
    pub expires_at: i64,
}

/// The enrollment link for a token: the token is in the fragment, so it never
/// reaches the server's request logs.
pub fn enrollment_link(public_url: &str, token: &str) -> String {
    format!("{}/enroll#{token}", public_url.trim_end_matches('/'))
}

/// Issues a fresh one-time enrollment link for an existing user at `now`.
pub async fn issue_enrollment(
    store: &Store,
    public_url: &str,
    user: UserId,
    created_by: Option<UserId>,
    now: i64,
) -> Result<(String, i64), Error> {
    let token = new_secret();
    let expires_at = now + ms(ENROLLMENT_TTL);
    store.create_enrollment(&hash_secret(&token), user, created_by, expires_at, now).await?;
    Ok((enrollment_link(public_url, &token), expires_at))
}

/// Grants `clinic` access to the patient's record and creates the clinic's
/// documents for the patient if they are missing.
pub async fn grant_consent(
    store: &Store,
    patient: PatientId,
    clinic: ClinicId,
    now: i64,
) -> Result<(), Error> {
    store.grant_consent(patient, clinic, now).await?;
    store.create_document(&DocKind::ClinicalRecord { patient, clinic }, now).await?;
    store.create_document(&DocKind::MessageThread { patient, clinic }, now).await?;
    // Again once the documents exist, so that sockets re-reading access on
    // the version see them.
    store.access_changed().await?;
    Ok(())
}

/// Creates an account at `now` and its first enrollment link. A patient
/// account also gets a new patient and their patient record.
pub async fn create_account(
    store: &Store,
    public_url: &str,
    new: NewAccount,
    now: i64,
) -> Result<Invitation, Error> {
    let display_name = new.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 120 {
        return Err(Error::BadRequest("a display name of 1 to 120 characters is required".into()));
    }
    let id = UserId::mint();
    let (patient, clinics) =
        match new.role {
            UserRole::Patient => {
                let patient = PatientId::mint();
                store.create_patient(patient, now).await?;
                (Some(patient), Vec::new())
            }
            UserRole::Caregiver => (
                Some(
                    new.patient
                        .ok_or_else(|| Error::BadRequest("a caregiver needs a patient".into()))?,
                ),
                Vec::new(),
            ),
            UserRole::Provider | UserRole::Admin => (
                None,
                vec![new.clinic.ok_or_else(|| {
                    Error::BadRequest("a provider or admin needs a clinic".into())
                })?],
            ),
        };
    let user = NewUser {
        id,
        display_name,
        role: new.role,
        patient,
        may_message: new.role == UserRole::Caregiver && new.may_message,
        clinics,
    };
    store.create_user(&user, now).await?;
    if let (UserRole::Patient, Some(patient)) = (new.role, patient) {
        store.create_document(&DocKind::PatientRecord { patient }, now).await?;
        if let Some(clinic) = new.clinic {
            grant_consent(store, patient, clinic, now).await?;
        }
    }
    let (link, expires_at) = issue_enrollment(store, public_url, id, new.created_by, now).await?;
    let user = store.user(id).await?.ok_or(Error::NotFound)?;
    Ok(Invitation { user, link, expires_at })
}
