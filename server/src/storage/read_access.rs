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
use super::{DocumentRow, ROWS_PER_STATEMENT, Store, StoreError, UserRecord};
use shared::api::UserRole;

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
        let Some(sql) = readable_sql(user, "") else { return Ok(Vec::new()) };
        let rows = sqlx::query(&sql).bind(reader_key(user)).fetch_all(&self.pool).await?;
        rows.iter().map(document_row).collect()
    }

    /// Those of `docs` that `user` may read (the rules of
    /// `readable_documents`), found by their ids: a few index lookups per
    /// document, whatever the number of documents the user may read.
    pub async fn readable_among(
        &self,
        user: &UserRecord,
        docs: &[shared::DocId],
    ) -> Result<Vec<DocumentRow>, StoreError> {
        if docs.is_empty() || !self.user_active(user.id).await? {
            return Ok(Vec::new());
        }
        let mut readable = Vec::new();
        for part in docs.chunks(ROWS_PER_STATEMENT) {
            let ids = (2..part.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let Some(sql) = readable_sql(user, &format!("d.id IN ({ids})")) else {
                return Ok(Vec::new());
            };
            let mut query = sqlx::query(&sql).bind(reader_key(user));
            for id in part {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.pool).await? {
                readable.push(document_row(&row)?);
            }
        }
        Ok(readable)
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
}

/// The read rules as one query on `documents d`, with `$1` bound to
/// `reader_key` and `filter` (on `d`, placeholders from `$2`) added, or
/// `None` for a patient-side user with no patient.
pub(super) fn readable_sql(user: &UserRecord, filter: &str) -> Option<String> {
    let and = if filter.is_empty() { String::new() } else { format!(" AND {filter}") };
    let columns = "SELECT DISTINCT d.id, d.kind, d.patient_id, d.clinic_id FROM documents d";
    let consenting = "JOIN consents c ON c.patient_id = d.patient_id AND c.revoked_at IS NULL \
                      JOIN memberships m ON m.clinic_id = c.clinic_id AND m.user_id = $1";
    Some(match user.role {
        UserRole::Patient | UserRole::Caregiver => {
            user.patient?;
            format!("{columns} WHERE d.patient_id = $1{and} ORDER BY d.id")
        }
        UserRole::Provider => format!(
            "{columns} {consenting} WHERE (d.kind IN ('patient_record', 'clinical_record') \
             OR (d.kind = 'message_thread' AND d.clinic_id = c.clinic_id)){and} ORDER BY d.id"
        ),
        UserRole::Admin => {
            format!("{columns} {consenting} WHERE d.kind = 'patient_record'{and} ORDER BY d.id")
        }
    })
}

/// What `$1` of `readable_sql` is: the patient a patient-side user acts
/// for, else the staff member's own id.
pub(super) fn reader_key(user: &UserRecord) -> String {
    match (user.role, user.patient) {
        (UserRole::Patient | UserRole::Caregiver, Some(patient)) => patient.to_string(),
        _ => user.id.to_string(),
    }
}
