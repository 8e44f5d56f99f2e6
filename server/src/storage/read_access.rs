//! The read policy: which documents a user may read. The write policy
//! (`shared::policy`) judges what someone may change; this decides what
//! they are sent at all.
//!
//! - Nobody whose account is revoked reads anything.
//! - A patient and their caregivers read every document of the patient,
//!   whatever the consents (a read-only caregiver reads too; may-message
//!   only matters for writing).
//! - A provider reads, for each patient consenting to one of their clinics,
//!   the patient record, every clinical record of that patient (the record
//!   follows the patient across clinics) and the message thread with their
//!   own clinic only.
//! - A clinic admin reads only the patient record (demographics) of
//!   patients consenting to their clinic.
//! - Everything else is unreadable, and answers the same as a document that
//!   does not exist (`doc-unavailable`), so existence does not leak.
//!
//! A withdrawn consent ends reading at once; a change sent for a document
//! read under it is told so (`withdrawn_document`) rather than ignored.

use super::documents::document_row;
use super::{DocumentRow, Store, StoreError, UserRecord, UserRole};

impl Store {
    /// Documents `user` may read:
    /// - patient and caregiver: every document of their patient;
    /// - provider: for each of their clinics and each patient consenting to
    ///   it, the patient record, every clinical record of that patient (the
    ///   record follows the patient across clinics) and the thread with that
    ///   clinic only;
    /// - clinic admin: the patient record (demographics) of consenting patients.
    pub async fn readable_documents(
        &self,
        user: &UserRecord,
    ) -> Result<Vec<DocumentRow>, StoreError> {
        if !self.user_active(user.id).await? {
            return Ok(Vec::new());
        }
        let rows = match user.role {
            UserRole::Patient | UserRole::Caregiver => match user.patient {
                Some(patient) => {
                    sqlx::query("SELECT id, kind, patient_id, clinic_id FROM documents WHERE patient_id = $1 ORDER BY id")
                        .bind(patient.to_string())
                        .fetch_all(&self.pool)
                        .await?
                }
                None => Vec::new(),
            },
            UserRole::Provider => {
                sqlx::query(
                    "SELECT DISTINCT d.id, d.kind, d.patient_id, d.clinic_id FROM documents d \
                     JOIN consents c ON c.patient_id = d.patient_id AND c.revoked_at IS NULL \
                     JOIN memberships m ON m.clinic_id = c.clinic_id AND m.user_id = $1 \
                     WHERE d.kind IN ('patient_record', 'clinical_record') \
                     OR (d.kind = 'message_thread' AND d.clinic_id = c.clinic_id) ORDER BY d.id",
                )
                .bind(user.id.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            UserRole::Admin => {
                sqlx::query(
                    "SELECT DISTINCT d.id, d.kind, d.patient_id, d.clinic_id FROM documents d \
                     JOIN consents c ON c.patient_id = d.patient_id AND c.revoked_at IS NULL \
                     JOIN memberships m ON m.clinic_id = c.clinic_id AND m.user_id = $1 \
                     WHERE d.kind = 'patient_record' ORDER BY d.id",
                )
                .bind(user.id.to_string())
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(document_row).collect()
    }

    /// The document `doc` if `user` would read it under a consent that the
    /// patient has since withdrawn (and not granted again): a provider or
    /// admin of a clinic whose access ended. Patients and caregivers read
    /// their own documents whatever the consents, so never get one.
    pub async fn withdrawn_document(
        &self,
        user: &UserRecord,
        doc: shared::DocId,
    ) -> Result<Option<DocumentRow>, StoreError> {
        let kinds = match user.role {
            UserRole::Patient | UserRole::Caregiver => return Ok(None),
            UserRole::Provider => {
                "(d.kind IN ('patient_record', 'clinical_record') OR (d.kind = 'message_thread' AND d.clinic_id = c.clinic_id))"
            }
            UserRole::Admin => "d.kind = 'patient_record'",
        };
        let row = sqlx::query(&format!(
            "SELECT d.id, d.kind, d.patient_id, d.clinic_id FROM documents d \
             JOIN consents c ON c.patient_id = d.patient_id AND c.revoked_at IS NOT NULL \
             JOIN memberships m ON m.clinic_id = c.clinic_id AND m.user_id = $1 \
             WHERE d.id = $2 AND {kinds} ORDER BY d.id LIMIT 1"
        ))
        .bind(user.id.to_string())
        .bind(doc.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(document_row).transpose()
    }

    /// The document `doc`, if `user` may read it (the same rules as
    /// `readable_documents`).
    pub async fn readable_document(
        &self,
        user: &UserRecord,
        doc: shared::DocId,
    ) -> Result<Option<DocumentRow>, StoreError> {
        Ok(self.readable_documents(user).await?.into_iter().find(|row| row.id == doc))
    }
}
