//! Consents: which clinics a patient lets see their record, and the access
//! version every change to who may read what moves on.

use shared::{ClinicId, PatientId};
use sqlx::Row;

use super::{Store, StoreError, parse_id};

impl Store {
    pub async fn grant_consent(
        &self,
        patient: PatientId,
        clinic: ClinicId,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO consents (patient_id, clinic_id, granted_at, revoked_at) VALUES ($1, $2, $3, NULL) \
             ON CONFLICT (patient_id, clinic_id) DO UPDATE SET granted_at = excluded.granted_at, revoked_at = NULL",
        )
        .bind(patient.to_string())
        .bind(clinic.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        bump_access_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn revoke_consent(
        &self,
        patient: PatientId,
        clinic: ClinicId,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE consents SET revoked_at = $1 WHERE patient_id = $2 AND clinic_id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(patient.to_string())
            .bind(clinic.to_string())
            .execute(&mut *tx)
            .await?;
        bump_access_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves the access version on (see `access_version`), e.g. after
    /// documents were created for a new consent.
    pub async fn access_changed(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        bump_access_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A counter that every change to who may read what moves on: when it
    /// has moved, what sync connections may read must be read again.
    pub async fn access_version(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT version FROM access_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .get(0))
    }

    /// Clinics the patient currently lets see their record.
    pub async fn consenting_clinics(
        &self,
        patient: PatientId,
    ) -> Result<Vec<ClinicId>, StoreError> {
        sqlx::query("SELECT clinic_id FROM consents WHERE patient_id = $1 AND revoked_at IS NULL ORDER BY clinic_id")
            .bind(patient.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| parse_id(&r.get::<String, _>(0)))
            .collect()
    }

    /// Patients who currently let `clinic` see their record.
    pub async fn consenting_patients(
        &self,
        clinic: ClinicId,
    ) -> Result<Vec<PatientId>, StoreError> {
        sqlx::query("SELECT patient_id FROM consents WHERE clinic_id = $1 AND revoked_at IS NULL ORDER BY patient_id")
            .bind(clinic.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| parse_id(&r.get::<String, _>(0)))
            .collect()
    }
}

/// Moves the access version on, in the transaction that changes access.
pub(super) async fn bump_access_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE access_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}
