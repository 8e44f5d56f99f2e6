//! The audit trail: append-only. There is no function to change or delete
//! an event.

use shared::api::{AuditAction, UserRole};
use shared::{DocId, PatientId, UserId};
use sqlx::Row;
use uuid::Uuid;

use super::directory::parse_role;
use super::{Backend, ROWS_PER_STATEMENT, Store, StoreError, parse_id};

/// One thing that happened. `detail` must hold no clinical content (ids,
/// rule names and passkey names are fine).
#[derive(Clone, Debug)]
pub struct AuditEvent<'a> {
    /// Who did it (None for anonymous attempts).
    pub user: Option<UserId>,
    /// The session (device) it came from.
    pub session: Option<&'a str>,
    pub action: AuditAction,
    /// Whose record it concerns.
    pub patient: Option<PatientId>,
    pub doc: Option<DocId>,
    pub detail: &'a str,
}

/// An audit event as a patient sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: i64,
    pub user: Option<UserId>,
    pub user_name: Option<String>,
    pub role: Option<UserRole>,
    pub action: AuditAction,
    pub doc: Option<DocId>,
    pub detail: String,
    /// The user's clinic, the first by name (staff only).
    pub clinic_name: Option<String>,
}

impl Store {
    /// Appends an event that happened at `now` to the audit trail. (Sync
    /// writes a batch's events with its changes: `Store::store_audited`.)
    pub async fn audit(&self, event: &AuditEvent<'_>, now: i64) -> Result<(), StoreError> {
        self.audit_all(std::slice::from_ref(event), now).await
    }

    /// Several events in one transaction.
    pub async fn audit_all(&self, events: &[AuditEvent<'_>], now: i64) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        insert_audit(self.backend, &mut tx, events, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events concerning a patient's record, newest first (at most `limit`).
    pub async fn patient_audit(
        &self,
        patient: PatientId,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query(
            "SELECT a.at, a.user_id, u.display_name, u.role, a.action, a.doc_id, a.detail, \
             (SELECT c.name FROM memberships m JOIN clinics c ON c.id = m.clinic_id \
              WHERE m.user_id = a.user_id ORDER BY c.name LIMIT 1) FROM audit_events a \
             LEFT JOIN users u ON u.id = a.user_id WHERE a.patient_id = $1 ORDER BY a.at DESC, a.id DESC LIMIT $2",
        )
        .bind(patient.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                at: r.get(0),
                user: r.get::<Option<String>, _>(1).map(|u| parse_id(&u)).transpose()?,
                user_name: r.get(2),
                role: r.get::<Option<String>, _>(3).as_deref().map(parse_role).transpose()?,
                action: AuditAction::parse(&r.get::<String, _>(4))
                    .ok_or_else(|| StoreError::Corrupt("unknown audit action".into()))?,
                doc: r.get::<Option<String>, _>(5).map(|d| parse_id(&d)).transpose()?,
                detail: r.get(6),
                clinic_name: r.get(7),
            })
        })
        .collect()
    }
}

/// Appends events that happened at `now` within a transaction (one
/// multi-row `INSERT` per `ROWS_PER_STATEMENT` events); sync stores a
/// batch's changes and their audit rows together.
pub(super) async fn insert_audit(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[AuditEvent<'_>],
    now: i64,
) -> Result<(), StoreError> {
    for part in events.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO audit_events (id, at, user_id, session_id, action, patient_id, doc_id, detail) VALUES {}",
            backend.placeholder_rows(part.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for event in part {
            query = query
                .bind(Uuid::now_v7().to_string())
                .bind(now)
                .bind(event.user.map(|u| u.to_string()))
                .bind(event.session)
                .bind(event.action.code())
                .bind(event.patient.map(|p| p.to_string()))
                .bind(event.doc.map(|d| d.to_string()))
                .bind(event.detail);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
