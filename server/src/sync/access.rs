//! Read access: which documents a user's replicas may request, receive or
//! learn of. Everything else answers exactly like a missing document.

use std::collections::HashMap;

use shared::{DocId, DocKind};

use crate::storage::{Store, StoreError, UserRecord, UserRole};

/// The documents `user` may read, by id.
pub async fn readable_documents(store: &Store, user: &UserRecord) -> Result<HashMap<DocId, DocKind>, StoreError> {
    let mut readable = HashMap::new();
    match user.role {
        // A patient (or their caregiver) reads their whole record.
        UserRole::Patient | UserRole::Caregiver => {
            if let Some(patient) = user.patient {
                readable.extend(store.patient_documents(patient).await?.into_iter().map(|d| (d.id, d.kind)));
            }
        }
        // Staff read the records of patients who consent to their clinic:
        // what every clinic recorded (the record follows the patient), the
        // patient's own part, and their clinic's thread with the patient.
        UserRole::Provider | UserRole::Admin => {
            for clinic in &user.clinics {
                for patient in store.consenting_patients(*clinic).await? {
                    for doc in store.patient_documents(patient).await? {
                        let visible = match doc.kind {
                            DocKind::PatientRecord { .. } => true,
                            DocKind::ClinicalRecord { .. } => user.role == UserRole::Provider,
                            DocKind::MessageThread { clinic: c, .. } => user.role == UserRole::Provider && c == *clinic,
                        };
                        if visible {
                            readable.insert(doc.id, doc.kind);
                        }
                    }
                }
            }
        }
    }
    Ok(readable)
}
