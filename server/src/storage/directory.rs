//! Clinics, patients, users, clinic memberships, consents and actor bindings.

use std::collections::HashMap;

use shared::{ClinicId, PatientId, Principal, Role, UserId};
use sqlx::Row;

use super::{ROWS_PER_STATEMENT, Store, StoreError, now_ms, parse_id, placeholder_list};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserRole {
    Patient,
    Caregiver,
    Provider,
    Admin,
}

impl UserRole {
    pub fn code(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Caregiver => "caregiver",
            Self::Provider => "provider",
            Self::Admin => "admin",
        }
    }

    fn parse(code: &str) -> Result<Self, StoreError> {
        Ok(match code {
            "patient" => Self::Patient,
            "caregiver" => Self::Caregiver,
            "provider" => Self::Provider,
            "admin" => Self::Admin,
            _ => return Err(StoreError::Corrupt("unknown role".into())),
        })
    }
}

/// A user to create. Patients and caregivers name their patient; providers
/// and admins name their clinics.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: UserId,
    pub display_name: String,
    pub role: UserRole,
    pub patient: Option<PatientId>,
    pub may_message: bool,
    pub clinics: Vec<ClinicId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub display_name: String,
    pub role: UserRole,
    pub patient: Option<PatientId>,
    pub may_message: bool,
    pub clinics: Vec<ClinicId>,
    /// The names of `clinics`, in the same order.
    pub clinic_names: Vec<String>,
}

impl UserRecord {
    /// The user as the write policy sees them.
    pub fn principal(&self) -> Option<Principal> {
        let role = match self.role {
            UserRole::Patient => Role::Patient { patient: self.patient? },
            UserRole::Caregiver => {
                Role::Caregiver { patient: self.patient?, may_message: self.may_message }
            }
            UserRole::Provider => Role::Provider { clinics: self.clinics.clone() },
            UserRole::Admin => Role::ClinicAdmin { clinic: *self.clinics.first()? },
        };
        let clinic_names =
            self.clinics.iter().copied().zip(self.clinic_names.iter().cloned()).collect();
        Some(Principal { user: self.id, role, name: self.display_name.clone(), clinic_names })
    }
}

impl Store {
    pub async fn create_clinic(&self, id: ClinicId, name: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO clinics (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn clinic_name(&self, id: ClinicId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT name FROM clinics WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn create_patient(&self, id: PatientId) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO patients (id, created_at) VALUES ($1, $2)")
            .bind(id.to_string())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn create_user(&self, user: &NewUser) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, display_name, role, patient_id, may_message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.to_string())
        .bind(&user.display_name)
        .bind(user.role.code())
        .bind(user.patient.map(|p| p.to_string()))
        .bind(i64::from(user.may_message))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        for clinic in &user.clinics {
            sqlx::query("INSERT INTO memberships (user_id, clinic_id) VALUES ($1, $2)")
                .bind(user.id.to_string())
                .bind(clinic.to_string())
                .execute(&mut *tx)
                .await?;
        }
        bump_access_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT display_name, role, patient_id, may_message FROM users WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let memberships = sqlx::query(
            "SELECT m.clinic_id, c.name FROM memberships m JOIN clinics c ON c.id = m.clinic_id \
             WHERE m.user_id = $1 ORDER BY m.clinic_id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let clinics = memberships
            .iter()
            .map(|r| parse_id(&r.get::<String, _>(0)))
            .collect::<Result<_, _>>()?;
        let clinic_names = memberships.iter().map(|r| r.get::<String, _>(1)).collect();
        Ok(Some(UserRecord {
            id,
            display_name: row.get(0),
            role: UserRole::parse(&row.get::<String, _>(1))?,
            patient: row.get::<Option<String>, _>(2).map(|p| parse_id(&p)).transpose()?,
            may_message: row.get::<i64, _>(3) != 0,
            clinics,
            clinic_names,
        }))
    }

    pub async fn grant_consent(
        &self,
        patient: PatientId,
        clinic: ClinicId,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO consents (patient_id, clinic_id, granted_at, revoked_at) VALUES ($1, $2, $3, NULL) \
             ON CONFLICT (patient_id, clinic_id) DO UPDATE SET granted_at = excluded.granted_at, revoked_at = NULL",
        )
        .bind(patient.to_string())
        .bind(clinic.to_string())
        .bind(now_ms())
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
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE consents SET revoked_at = $1 WHERE patient_id = $2 AND clinic_id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
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

    /// Binds an Automerge actor id to a user. Binding an id that already
    /// belongs to someone else fails; rebinding to the same user is a no-op.
    pub async fn bind_actor(&self, actor_hex: &str, user: UserId) -> Result<bool, StoreError> {
        sqlx::query("INSERT INTO actors (actor_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (actor_id) DO NOTHING")
            .bind(actor_hex)
            .bind(user.to_string())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(self.actor_owner(actor_hex).await? == Some(user))
    }

    /// Who each of these actor ids is bound to, for those bound at all.
    pub async fn actor_owners(
        &self,
        actors: &[String],
    ) -> Result<HashMap<String, UserId>, StoreError> {
        let mut owners = HashMap::new();
        for part in actors.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT actor_id, user_id FROM actors WHERE actor_id IN ({})",
                placeholder_list(part.len())
            );
            let mut query = sqlx::query(&sql);
            for actor in part {
                query = query.bind(actor.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                owners.insert(row.get::<String, _>(0), parse_id(&row.get::<String, _>(1))?);
            }
        }
        Ok(owners)
    }

    pub async fn actor_owner(&self, actor_hex: &str) -> Result<Option<UserId>, StoreError> {
        let row = sqlx::query("SELECT user_id FROM actors WHERE actor_id = $1")
            .bind(actor_hex)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| parse_id(&r.get::<String, _>(0))).transpose()
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
