//! The patient list and offline set of clinic staff (issue 17 part 2): a
//! provider's device keeps only the patients that matter for offline work,
//! and finds the others through the server. Two derived tables
//! (`migrations/*/0008_patient_index.sql`) are written with the changes
//! they come from (`write_index`, in `store_writes`' transaction); every
//! read goes through the read policy (`readable_sql`), so a row says
//! nothing about a patient the user may not read.

use shared::api::{PatientRow, UserRole};
use shared::{ClinicId, PatientId};
use sqlx::Row;

use super::read_access::{readable_sql, reader_key};
use super::{DocumentRow, ROWS_PER_STATEMENT, Store, StoreError, UserRecord};

/// What one document says about its patient for the list and the work
/// queue (`sync::summary` reads it from the document).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexRow {
    /// Name and birth date from the patient record's demographics.
    Name { patient: PatientId, name: String, birth_date: String },
    /// Open work at a clinic from one source; an empty `value` clears it.
    Work { clinic: ClinicId, patient: PatientId, source: WorkSource, value: String },
}

/// Where open work comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkSource {
    /// Refill requests waiting for the clinic (their count).
    Requests,
    /// The patient side's messages the clinic has not read (their count).
    Messages,
    /// Days of booked appointments (`YYYY-MM-DD`, space separated).
    Appointments,
    /// Appointments the patient side asked for and the clinic has not
    /// answered (their count).
    AppointmentRequests,
}

impl WorkSource {
    fn code(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Messages => "messages",
            Self::Appointments => "appointments",
            Self::AppointmentRequests => "appointment_requests",
        }
    }
}

/// Patients listed per page (`patient_page`).
pub const PAGE: usize = 50;
/// Most patients of the work queue one device is given (`work_patients`).
pub const MAX_WORK: usize = 500;

/// Writes index rows within a transaction (a delete and at most one insert
/// each: rows change only with patient records, threads and appointments).
pub(super) async fn write_index(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[IndexRow],
    now: i64,
) -> Result<(), StoreError> {
    for row in rows {
        match row {
            IndexRow::Name { patient, name, birth_date } => {
                sqlx::query("DELETE FROM patient_index WHERE patient_id = $1")
                    .bind(patient.to_string())
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO patient_index (patient_id, name, birth_date, search) VALUES ($1, $2, $3, $4)",
                )
                .bind(patient.to_string())
                .bind(name.as_str())
                .bind(birth_date.as_str())
                .bind(search_text(name, birth_date))
                .execute(&mut **tx)
                .await?;
            }
            IndexRow::Work { clinic, patient, source, value } => {
                sqlx::query(
                    "DELETE FROM patient_work WHERE clinic_id = $1 AND patient_id = $2 AND source = $3",
                )
                .bind(clinic.to_string())
                .bind(patient.to_string())
                .bind(source.code())
                .execute(&mut **tx)
                .await?;
                if !value.is_empty() {
                    sqlx::query(
                        "INSERT INTO patient_work (clinic_id, patient_id, source, value, changed_ms) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(clinic.to_string())
                    .bind(patient.to_string())
                    .bind(source.code())
                    .bind(value.as_str())
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
    }
    Ok(())
}

fn search_text(name: &str, birth_date: &str) -> String {
    format!("{} {birth_date}", name.to_lowercase())
}

/// `%word%` for `LIKE ... ESCAPE '\'`, the word's own wildcards escaped.
fn like(word: &str) -> String {
    let mut out = String::from("%");
    for c in word.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// Writes index rows in a transaction of their own (bulk loading; sync
    /// writes them with the changes, `Writes::index`), as written at `now`
    /// (ms).
    pub async fn write_index(&self, rows: &[IndexRow], now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        write_index(&mut tx, rows, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Where the index backfill stands (`migrations/*/0009`): the last
    /// document id done ("" before the first), or `None` when there is
    /// nothing to do.
    pub async fn index_backfill(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT after_id FROM index_backfill")
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.get(0)))
    }

    /// Records the backfill's progress; `None` ends it.
    pub async fn set_index_backfill(&self, after: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM index_backfill").execute(&mut *tx).await?;
        if let Some(after) = after {
            sqlx::query("INSERT INTO index_backfill (after_id) VALUES ($1)")
                .bind(after)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` documents with ids after `after`, in id order.
    pub async fn documents_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<DocumentRow>, StoreError> {
        sqlx::query(
            "SELECT id, kind, patient_id, clinic_id FROM documents WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(super::documents::document_row)
        .collect()
    }

    /// One page of the patients whose record `user` may read (the read
    /// policy: a patient record readable to them), by name, then birth
    /// date, matching every word of `query` (name or birth date). Staff
    /// only; others answer no rows.
    pub async fn patient_page(
        &self,
        user: &UserRecord,
        query: &str,
        offset: usize,
    ) -> Result<Vec<PatientRow>, StoreError> {
        if !matches!(user.role, UserRole::Provider | UserRole::Admin)
            || !self.user_active(user.id).await?
        {
            return Ok(Vec::new());
        }
        let words: Vec<&str> = query.split_whitespace().take(4).collect();
        let Some(readable) = readable_sql(user, "d.kind = 'patient_record'") else {
            return Ok(Vec::new());
        };
        let filter: String = (0..words.len())
            .map(|i| format!(" AND COALESCE(i.search, '') LIKE ${} ESCAPE '\\'", i + 2))
            .collect();
        let sql = format!(
            "SELECT r.patient_id, COALESCE(i.name, '') AS name, COALESCE(i.birth_date, '') AS birth \
             FROM ({readable}) r LEFT JOIN patient_index i ON i.patient_id = r.patient_id \
             WHERE 1 = 1{filter} ORDER BY name, birth, r.patient_id LIMIT {PAGE} OFFSET {offset}"
        );
        let mut q = sqlx::query(&sql).bind(reader_key(user));
        for word in &words {
            q = q.bind(like(word));
        }
        let mut page = Vec::new();
        for row in q.fetch_all(&self.pool).await? {
            let id: String = row.try_get(0)?;
            page.push(PatientRow {
                patient: id.parse().map_err(|_| StoreError::Corrupt("a patient id".into()))?,
                name: row.try_get(1)?,
                birth_date: row.try_get(2)?,
            });
        }
        Ok(page)
    }

    /// The work of the user's clinics, each for its own day (`days`: a
    /// clinic and its today, `YYYY-MM-DD` in its time zone, `zone::today`)
    /// among patients consenting to it: booked appointments that day,
    /// refill requests and appointment requests waiting, unread messages
    /// from the patient side. A clinic not in `days` has no booked day. At
    /// most `MAX_WORK` patients: those whose work was written last first,
    /// so new work always reaches the device.
    pub async fn work_patients(
        &self,
        user: &UserRecord,
        days: &[(ClinicId, String)],
    ) -> Result<Vec<PatientId>, StoreError> {
        if !matches!(user.role, UserRole::Provider | UserRole::Admin) {
            return Ok(Vec::new());
        }
        // Memberships are few: one condition per clinic.
        let booked: String = (0..days.len().min(ROWS_PER_STATEMENT / 2))
            .map(|i| format!(" OR (w.clinic_id = ${} AND w.value LIKE ${})", 2 * i + 2, 2 * i + 3))
            .collect();
        let sql = format!(
            "SELECT w.patient_id FROM patient_work w \
             JOIN memberships m ON m.clinic_id = w.clinic_id AND m.user_id = $1 \
             JOIN consents c ON c.patient_id = w.patient_id AND c.clinic_id = w.clinic_id \
               AND c.revoked_at IS NULL \
             WHERE (w.source <> 'appointments'{booked}) \
             GROUP BY w.patient_id ORDER BY MAX(w.changed_ms) DESC, w.patient_id LIMIT {MAX_WORK}"
        );
        let mut query = sqlx::query(&sql).bind(user.id.to_string());
        for (clinic, day) in days.iter().take(ROWS_PER_STATEMENT / 2) {
            query = query.bind(clinic.to_string()).bind(like(day));
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0)?;
                id.parse().map_err(|_| StoreError::Corrupt("a patient id".into()))
            })
            .collect()
    }

    /// For a clinic admin: the patients consenting to their clinic with an
    /// appointment asked for or booked there, with their names, for the
    /// admin's appointment list (`handlers::appointments`, which reads only
    /// the appointments of those records). At most `MAX_WORK`.
    pub async fn appointment_patients(
        &self,
        user: &UserRecord,
    ) -> Result<Vec<(PatientId, String)>, StoreError> {
        if user.role != UserRole::Admin || !self.user_active(user.id).await? {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT w.patient_id, COALESCE(i.name, '') FROM patient_work w \
             JOIN memberships m ON m.clinic_id = w.clinic_id AND m.user_id = $1 \
             JOIN consents c ON c.patient_id = w.patient_id AND c.clinic_id = w.clinic_id \
               AND c.revoked_at IS NULL \
             LEFT JOIN patient_index i ON i.patient_id = w.patient_id \
             WHERE w.source IN ('appointments', 'appointment_requests') \
             ORDER BY w.patient_id LIMIT {MAX_WORK}"
        ))
        .bind(user.id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0)?;
                let id = id.parse().map_err(|_| StoreError::Corrupt("a patient id".into()))?;
                Ok((id, row.try_get(1)?))
            })
            .collect()
    }

    /// The documents of `patients` that `user` may read (the read policy,
    /// filtered by patient: an index lookup per patient).
    pub async fn readable_of_patients(
        &self,
        user: &UserRecord,
        patients: &[PatientId],
    ) -> Result<Vec<DocumentRow>, StoreError> {
        if patients.is_empty() || !self.user_active(user.id).await? {
            return Ok(Vec::new());
        }
        let mut readable = Vec::new();
        for part in patients.chunks(ROWS_PER_STATEMENT) {
            let ids = (2..part.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let Some(sql) = readable_sql(user, &format!("d.patient_id IN ({ids})")) else {
                return Ok(Vec::new());
            };
            let mut query = sqlx::query(&sql).bind(reader_key(user));
            for id in part {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.pool).await? {
                readable.push(super::documents::document_row(&row)?);
            }
        }
        Ok(readable)
    }
}
