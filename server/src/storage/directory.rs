//! Who is who: clinics, patients, users with their roles and clinic
//! memberships, a patient's caregivers, and revoking a user.

use shared::api::{ClinicContact, ClinicDetails, ClinicPerson, UserRole};
use shared::{ClinicId, PatientId, Principal, Role, UserId};
use sqlx::Row;

use super::consents::bump_access_version;
use super::{ROWS_PER_STATEMENT, Store, StoreError, ids, parse_id};

pub(super) fn parse_role(code: &str) -> Result<UserRole, StoreError> {
    UserRole::parse(code).ok_or_else(|| StoreError::Corrupt("unknown role".into()))
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
    /// For a provider: the active providers of their clinics (themselves
    /// too), whom work items may be assigned to.
    pub colleagues: Vec<(ClinicId, UserId, String)>,
    /// For a patient or caregiver: the clinics the patient consents to,
    /// with their names (where the patient side may ask for appointments).
    pub care: Vec<(ClinicId, String)>,
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
        let clinic_names = if self.patient.is_some() {
            self.care.clone()
        } else {
            self.clinics.iter().copied().zip(self.clinic_names.iter().cloned()).collect()
        };
        Some(Principal {
            user: self.id,
            role,
            name: self.display_name.clone(),
            clinic_names,
            colleagues: self.colleagues.clone(),
        })
    }
}

/// A caregiver acting for a patient, as the patient sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaregiverInfo {
    pub id: UserId,
    pub display_name: String,
    pub may_message: bool,
    pub enrolled: bool,
    pub created_at: i64,
}

impl Store {
    pub async fn create_clinic(
        &self,
        id: ClinicId,
        name: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO clinics (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name)
            .bind(now)
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

    pub async fn create_patient(&self, id: PatientId, now: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO patients (id, created_at) VALUES ($1, $2)")
            .bind(id.to_string())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn create_user(&self, user: &NewUser, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, display_name, role, patient_id, may_message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.to_string())
        .bind(&user.display_name)
        .bind(user.role.code())
        .bind(user.patient.map(|p| p.to_string()))
        .bind(i64::from(user.may_message))
        .bind(now)
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
        let role = parse_role(&row.get::<String, _>(1))?;
        let colleagues =
            if role == UserRole::Provider { self.colleagues(id).await? } else { Vec::new() };
        let patient = row.get::<Option<String>, _>(2).map(|p| parse_id(&p)).transpose()?;
        let care = match patient {
            Some(patient) => self.care(patient).await?,
            None => Vec::new(),
        };
        Ok(Some(UserRecord {
            id,
            display_name: row.get(0),
            role,
            patient,
            may_message: row.get::<i64, _>(3) != 0,
            clinics,
            clinic_names,
            colleagues,
            care,
        }))
    }

    /// The clinics `patient` consents to, with their names.
    async fn care(&self, patient: PatientId) -> Result<Vec<(ClinicId, String)>, StoreError> {
        sqlx::query(
            "SELECT c.clinic_id, k.name FROM consents c JOIN clinics k ON k.id = c.clinic_id \
             WHERE c.patient_id = $1 AND c.revoked_at IS NULL ORDER BY c.clinic_id",
        )
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((parse_id(&r.get::<String, _>(0))?, r.get(1))))
        .collect()
    }

    /// The active providers of `user`'s clinics, themselves included, by
    /// clinic and name.
    async fn colleagues(
        &self,
        user: UserId,
    ) -> Result<Vec<(ClinicId, UserId, String)>, StoreError> {
        sqlx::query(
            "SELECT m.clinic_id, u.id, u.display_name FROM memberships mine \
             JOIN memberships m ON m.clinic_id = mine.clinic_id \
             JOIN users u ON u.id = m.user_id \
             WHERE mine.user_id = $1 AND u.role = 'provider' AND u.revoked_at IS NULL \
             ORDER BY m.clinic_id, u.display_name",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((parse_id(&r.get::<String, _>(0))?, parse_id(&r.get::<String, _>(1))?, r.get(2)))
        })
        .collect()
    }

    /// The display name of the patient's own account, if they have one.
    pub async fn patient_name(&self, patient: PatientId) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT display_name FROM users WHERE patient_id = $1 AND role = 'patient' ORDER BY created_at LIMIT 1",
        )
        .bind(patient.to_string())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Whether a user exists and has not been revoked.
    pub async fn user_active(&self, user: UserId) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM users WHERE id = $1 AND revoked_at IS NULL")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Revokes a user: they can no longer sign in and their sessions end.
    /// Returns the ended sessions' ids.
    pub async fn revoke_user(&self, user: UserId, now: i64) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        let sessions = ids(
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(now)
                .bind(user.to_string())
                .fetch_all(&mut *tx)
                .await?,
        );
        bump_access_version(&mut tx).await?;
        tx.commit().await?;
        Ok(sessions)
    }

    /// The active caregivers of a patient.
    pub async fn caregivers(&self, patient: PatientId) -> Result<Vec<CaregiverInfo>, StoreError> {
        sqlx::query(
            "SELECT u.id, u.display_name, u.may_message, u.created_at, \
             (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = u.id) \
             FROM users u WHERE u.patient_id = $1 AND u.role = 'caregiver' AND u.revoked_at IS NULL ORDER BY u.id",
        )
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CaregiverInfo {
                id: parse_id(&r.get::<String, _>(0))?,
                display_name: r.get(1),
                may_message: r.get::<i64, _>(2) != 0,
                created_at: r.get(3),
                enrolled: r.get::<i64, _>(4) > 0,
            })
        })
        .collect()
    }

    /// How patients reach each of `clinics` (those that exist), by name.
    pub async fn clinic_contacts(
        &self,
        clinics: &[ClinicId],
    ) -> Result<Vec<ClinicContact>, StoreError> {
        let mut contacts = Vec::new();
        for part in clinics.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, name, phone, reply_days FROM clinics WHERE id IN ({}) ORDER BY name, id",
                self.backend.placeholder_list(part.len())
            );
            let mut query = sqlx::query(&sql);
            for id in part {
                query = query.bind(id.to_string());
            }
            for r in query.fetch_all(&self.pool).await? {
                contacts.push(ClinicContact {
                    id: parse_id(&r.get::<String, _>(0))?,
                    name: r.get(1),
                    phone: r.get(2),
                    reply_days: r.get(3),
                });
            }
        }
        Ok(contacts)
    }

    /// Stores what the admin says about the clinic; a `time_zone` is
    /// stored only if given (the caller checked it, `zone::check`).
    pub async fn set_clinic_details(
        &self,
        clinic: ClinicId,
        details: &ClinicDetails,
        time_zone: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE clinics SET phone = $1, reply_days = $2 WHERE id = $3")
            .bind(details.phone.as_str())
            .bind(details.reply_days)
            .bind(clinic.to_string())
            .execute(&mut *tx)
            .await?;
        if let Some(zone) = time_zone {
            sqlx::query("UPDATE clinics SET time_zone = $1 WHERE id = $2")
                .bind(zone)
                .bind(clinic.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets a clinic's time zone (an IANA name the caller checked,
    /// `zone::check`): the demo, tests and the command line.
    pub async fn set_clinic_time_zone(
        &self,
        clinic: ClinicId,
        zone: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE clinics SET time_zone = $1 WHERE id = $2")
            .bind(zone)
            .bind(clinic.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The time zone of each of `clinics` that exists (`zone::today` gives
    /// its day).
    pub async fn clinic_time_zones(
        &self,
        clinics: &[ClinicId],
    ) -> Result<Vec<(ClinicId, String)>, StoreError> {
        let mut zones = Vec::new();
        for part in clinics.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, time_zone FROM clinics WHERE id IN ({}) ORDER BY id",
                self.backend.placeholder_list(part.len())
            );
            let mut query = sqlx::query(&sql);
            for id in part {
                query = query.bind(id.to_string());
            }
            for r in query.fetch_all(&self.pool).await? {
                zones.push((parse_id(&r.get::<String, _>(0))?, r.get(1)));
            }
        }
        Ok(zones)
    }

    /// A clinic's active people: its providers and admins, and the
    /// patients consenting to it (not their caregivers: the patient
    /// manages those): staff first, each by name.
    pub async fn clinic_people(&self, clinic: ClinicId) -> Result<Vec<ClinicPerson>, StoreError> {
        sqlx::query(
            "SELECT u.id, u.display_name, u.role, \
             (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = u.id AND p.revoked_at IS NULL) \
             FROM users u WHERE u.revoked_at IS NULL AND (\
               (u.role IN ('provider', 'admin') AND u.id IN (SELECT user_id FROM memberships WHERE clinic_id = $1)) \
               OR (u.role = 'patient' AND u.patient_id IN \
                 (SELECT patient_id FROM consents WHERE clinic_id = $1 AND revoked_at IS NULL))) \
             ORDER BY CASE WHEN u.role = 'patient' THEN 1 ELSE 0 END, u.display_name, u.id",
        )
        .bind(clinic.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ClinicPerson {
                user_id: parse_id(&r.get::<String, _>(0))?,
                display_name: r.get(1),
                role: parse_role(&r.get::<String, _>(2))?,
                enrolled: r.get::<i64, _>(3) > 0,
            })
        })
        .collect()
    }

    /// Every clinic, by name.
    pub async fn clinics(&self) -> Result<Vec<(ClinicId, String)>, StoreError> {
        sqlx::query("SELECT id, name FROM clinics ORDER BY name, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((parse_id(&r.get::<String, _>(0))?, r.get(1))))
            .collect()
    }

    pub async fn clinic_by_name(&self, name: &str) -> Result<Option<ClinicId>, StoreError> {
        let row = sqlx::query("SELECT id FROM clinics WHERE name = $1 ORDER BY id")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| parse_id(&r.get::<String, _>(0))).transpose()
    }
}
