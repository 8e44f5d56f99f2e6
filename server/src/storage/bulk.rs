//! Loading many records at once: patients, their documents with their
//! first bytes, and their consents, in one transaction per call and a few
//! multi-row statements per 500 rows, instead of a transaction per row.
//! The soak benchmark seeds 100,000 patients through it; one row at a time
//! (a synced commit each on SQLite) would take longer than the benchmark.

use shared::schema::DocKind;
use shared::{ClinicId, PatientId};

use super::{ROWS_PER_STATEMENT, Store, StoreError};

/// One patient to create, with the clinics they consent to and their
/// documents, each with the bytes to store as its first snapshot (which
/// must hold the document's genesis change, as `DocKind::genesis` makes it).
pub struct NewRecord {
    pub patient: PatientId,
    pub consents: Vec<ClinicId>,
    pub documents: Vec<(DocKind, Vec<u8>)>,
}

impl Store {
    /// Creates `records` at time `now` (ms) in one transaction: all or none.
    pub async fn create_records(&self, records: &[NewRecord], now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for part in records.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO patients (id, created_at) VALUES {}",
                self.backend.placeholder_rows(part.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for record in part {
                query = query.bind(record.patient.to_string()).bind(now);
            }
            query.execute(&mut *tx).await?;
        }
        let consents: Vec<(PatientId, ClinicId)> =
            records.iter().flat_map(|r| r.consents.iter().map(|c| (r.patient, *c))).collect();
        for part in consents.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO consents (patient_id, clinic_id, granted_at) VALUES {}",
                self.backend.placeholder_rows(part.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for (patient, clinic) in part {
                query = query.bind(patient.to_string()).bind(clinic.to_string()).bind(now);
            }
            query.execute(&mut *tx).await?;
        }
        let documents: Vec<&(DocKind, Vec<u8>)> =
            records.iter().flat_map(|r| r.documents.iter()).collect();
        for part in documents.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO documents (id, kind, patient_id, clinic_id, created_at, seq) VALUES {}",
                self.backend.placeholder_rows(part.len(), 6)
            );
            let mut query = sqlx::query(&sql);
            for (kind, _) in part {
                query = query
                    .bind(kind.doc_id().to_string())
                    .bind(kind.name())
                    .bind(kind.patient().to_string())
                    .bind(kind.clinic().map(|c| c.to_string()))
                    .bind(now)
                    .bind(0_i64);
            }
            query.execute(&mut *tx).await?;
            let sql = format!(
                "INSERT INTO doc_chunks (doc_id, is_snapshot, data, created_at, seq) VALUES {}",
                self.backend.placeholder_rows(part.len(), 5)
            );
            let mut query = sqlx::query(&sql);
            for (kind, data) in part {
                query = query
                    .bind(kind.doc_id().to_string())
                    .bind(1_i64)
                    .bind(data.as_slice())
                    .bind(now)
                    .bind(0_i64);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
