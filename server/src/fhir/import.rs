//! A clinic system's transaction Bundle into that clinic's record of one
//! patient, through the same checks and the same commit as a provider's
//! entry: the write policy and safety rules (`shared::check_edit`) on the
//! change, then `Hub::commit` with the author's checks under the storing
//! transaction's locks (consent, account, daily quota, actor binding), the
//! `change_accepted` audit row, and the announcement that sends the
//! entries live to every replica that syncs the record.
//!
//! The author is the clinic's import account ([`system_user`]): a
//! directory user of the clinic's staff that has no passkey and can never
//! sign in, so every imported entry names the system, on behalf of the
//! clinic, as its recorder. Entries whose ids (from their identifiers)
//! the record already holds are left as they are: re-sending adds nothing
//! and changes nothing (the record is append-only; a correction is a new
//! resource with its own identifier). All entries of a Bundle are one
//! change: they are stored together or not at all.

use std::collections::BTreeMap;

use automerge::{ActorId, AutoCommit, ROOT, ReadDoc};
use chrono::{SecondsFormat, TimeZone, Utc};
use shared::api::{AuditAction, UserRole};
use shared::fhir::Issue;
use shared::fhir::Value;
use shared::fhir::import::{self as plan, Entry};
use shared::record::{self, Entry as _};
use shared::schema::{Allergy, DocKind, Observation, Prescription, Provenance, Report};
use shared::{ClinicId, EntryId, UserId};
use uuid::Uuid;

use crate::Error;
use crate::storage::{AuditEvent, Author, NewUser, StoreError, UserRecord};
use crate::sync::{Accepted, Hub};

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The clinic's record of the patient.
    pub doc: shared::DocId,
    /// Entries added.
    pub created: usize,
    /// Entries the record already held (sent before).
    pub existing: usize,
    /// Each resource's index in `Bundle.entry`, its entry id and whether
    /// it was added (else the record held it).
    pub entries: Vec<(usize, EntryId, bool)>,
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Resources that are malformed or break the write policy or a safety
    /// rule, each named.
    #[error("the Bundle was refused: {} problem(s)", .0.len())]
    Invalid(Vec<Issue>),
    /// The clinic does not exist, or the patient does not exist or does not
    /// let the clinic see their record (answered alike).
    #[error("no such patient for this clinic")]
    NotFound,
    #[error(transparent)]
    Server(#[from] Error),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        Self::Server(error.into())
    }
}

impl Refused {
    /// The OperationOutcome a client is told.
    pub fn outcome(&self) -> Value {
        match self {
            Self::Invalid(issues) => shared::fhir::operation_outcome(issues),
            Self::NotFound => shared::fhir::operation_outcome(&[Issue::new(
                "not-found",
                "",
                "no such patient for this clinic: the patient must exist and let the clinic see their record",
            )]),
            Self::Server(_) => shared::fhir::operation_outcome(&[Issue::new(
                "exception",
                "",
                "the server could not complete the import; nothing was changed",
            )]),
        }
    }
}

/// Imports parsed and judged at once on one instance: each holds a parsed
/// Bundle (tens of megabytes for a 2 MiB body of tiny values) and a copy of
/// the record, so the rest wait their turn rather than the server's memory
/// growing with the number of senders.
pub const AT_ONCE: usize = 2;

static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AT_ONCE);

/// Waits for a turn to parse and import a Bundle (`AT_ONCE`); the turn
/// ends when the permit is dropped.
pub async fn turn() -> tokio::sync::SemaphorePermit<'static> {
    RUNNING.acquire().await.expect("the semaphore is never closed")
}

/// Namespace of clinics' import accounts (fixed).
const SYSTEM_NAMESPACE: Uuid = Uuid::from_u128(0x51c7_e2a0_8b3d_4f96_a1e4_6d0c_92b7_f3e8);

/// The clinic's import account, created on first use: a provider of the
/// clinic (so the write policy lets it record entries there) named after
/// the clinic, without passkey or enrollment link.
pub async fn system_user(
    hub: &Hub,
    clinic: ClinicId,
    clinic_name: &str,
) -> Result<UserRecord, Error> {
    let id = UserId::from_uuid(Uuid::new_v5(&SYSTEM_NAMESPACE, clinic.to_string().as_bytes()));
    let store = hub.store();
    if let Some(user) = store.user(id).await? {
        return Ok(user);
    }
    let new = NewUser {
        id,
        display_name: format!("{clinic_name} (FHIR import)"),
        role: UserRole::Provider,
        patient: None,
        may_message: false,
        clinics: vec![clinic],
    };
    // Two imports at once may both create it: the second finds it made.
    if let Err(error) = store.create_user(&new, hub.clock().now_ms()).await
        && store.user(id).await?.is_none()
    {
        return Err(error.into());
    }
    store.user(id).await?.ok_or(Error::NotFound)
}

/// Who sent a Bundle, as the `change_accepted` audit row names them.
#[derive(Clone, Copy, Debug)]
pub enum SentBy<'a> {
    /// The operator's `portal import` (the row names the import account).
    Operator,
    /// A signed-in staff member, from this session.
    Staff(UserId, &'a str),
    /// A clinic system (SMART Backend Services) by client id and name: the
    /// row names the import account and, as device and detail, the system.
    System { client: &'a str, name: &'a str },
}

/// Imports `bundle` into `clinic`'s record of the patient it names, sent by `sent_by`.
pub async fn import(
    hub: &Hub,
    clinic: ClinicId,
    bundle: &Value,
    sent_by: SentBy<'_>,
) -> Result<Outcome, Refused> {
    let store = hub.store();
    let clinic_name = store.clinic_name(clinic).await?.ok_or(Refused::NotFound)?;
    let system = system_user(hub, clinic, &clinic_name).await?;
    let principal = system.principal().ok_or(Refused::NotFound)?;
    let recorded = Utc
        .timestamp_millis_opt(hub.clock().now_ms())
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let provenance = Provenance {
        clinic,
        clinic_name,
        recorder: system.id,
        recorder_name: system.display_name.clone(),
        recorded,
    };
    let plan = plan::plan(bundle, clinic, &provenance).map_err(Refused::Invalid)?;
    if !store.consenting_clinics(plan.patient).await?.contains(&clinic) {
        return Err(Refused::NotFound);
    }
    let kind = DocKind::ClinicalRecord { patient: plan.patient, clinic };
    let id = store.create_document(&kind, hub.clock().now_ms()).await?;
    // Another writer may commit between judging and storing: judge again.
    for _ in 0..3 {
        let mut locked: BTreeMap<_, _> = hub.lock_all([id]).await?.into_iter().collect();
        let base = locked.get(&id).and_then(|g| g.as_ref()).ok_or(Refused::NotFound)?.doc().clone();
        // Building and judging the change costs as much as the record is
        // long: off the async runtime, as sync judges changes.
        let (plan_, principal_) = (plan.clone(), principal.clone());
        let judged =
            super::off_runtime(move || judge(base, &plan_, kind, &principal_, id)).await??;
        let Judged { doc, data, outcome, actor } = judged;
        if outcome.created == 0 {
            return Ok(outcome);
        }
        let accepted = Accepted { id, kind, data, doc, snapshot: false, touched: None };
        let (user, session, detail) = match sent_by {
            SentBy::Operator => (system.id, None, "fhir import".to_owned()),
            SentBy::Staff(user, session) => (user, Some(session), "fhir import".to_owned()),
            SentBy::System { client, name } => {
                (system.id, Some(client), format!("fhir import by the clinic system \"{name}\""))
            }
        };
        let events = [AuditEvent {
            user: Some(user),
            session,
            action: AuditAction::ChangeAccepted,
            patient: Some(plan.patient),
            doc: Some(id),
            detail: &detail,
        }];
        let patients = [(id, plan.patient)];
        let entries = [(id, outcome.created)];
        let actors = [actor.to_hex_string()];
        let author =
            Author { user: &system, patients: &patients, entries: &entries, actors: &actors };
        match hub.commit(&mut locked, vec![accepted], &events, Some(author), None).await {
            Ok(()) => return Ok(outcome),
            Err(StoreError::Stale(_)) => continue,
            Err(StoreError::AccessEnded(_)) => return Err(Refused::NotFound),
            Err(StoreError::Quota(_)) => {
                return Err(Refused::Invalid(vec![Issue::new(
                    "too-costly",
                    "Bundle",
                    "the clinic's import account reached its daily limit of new entries for this patient",
                )]));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(Refused::Server(Error::Conflict("the record kept changing; send the Bundle again".into())))
}

/// The change a plan makes to the record as it is (`base`), judged.
struct Judged {
    doc: automerge::Automerge,
    /// The change's bytes, as stored.
    data: Vec<u8>,
    outcome: Outcome,
    actor: ActorId,
}

/// Adds the plan's entries the record lacks to a copy of `base` as one
/// change and judges it as the write policy judges a provider's.
fn judge(
    base: automerge::Automerge,
    plan: &plan::Plan,
    kind: DocKind,
    principal: &shared::Principal,
    id: shared::DocId,
) -> Result<Judged, Refused> {
    let mut doc = AutoCommit::load(&base.save())
        .map_err(|e| StoreError::Corrupt(format!("a stored document does not load: {e}")))?;
    let actor = ActorId::random();
    doc.set_actor(actor.clone());
    let mut outcome = Outcome { doc: id, created: 0, existing: 0, entries: Vec::new() };
    for imported in &plan.entries {
        let held = holds(&base, &imported.entry, imported.id);
        outcome.entries.push((imported.index, imported.id, !held));
        if held {
            outcome.existing += 1;
            continue;
        }
        let added = match &imported.entry {
            Entry::Report(e) => record::add(&mut doc, imported.id, e),
            Entry::Observation(e) => record::add(&mut doc, imported.id, e),
            Entry::Prescription(e) => record::add(&mut doc, imported.id, e),
            Entry::Allergy(e) => record::add(&mut doc, imported.id, e),
        };
        added
            .map_err(|e| StoreError::Corrupt(format!("the record does not take an entry: {e}")))?;
        outcome.created += 1;
    }
    if outcome.created == 0 {
        return Ok(Judged { doc: base, data: Vec::new(), outcome, actor });
    }
    shared::check_edit(&base, doc.document(), &kind, principal).map_err(|denial| {
        // The denial's path starts with the collection and entry id.
        let entry = denial.path.split('/').nth(1).and_then(|e| e.parse::<EntryId>().ok());
        let index = plan.entries.iter().find(|i| Some(i.id) == entry).map(|i| i.index);
        let expression = index.map(|i| format!("Bundle.entry[{i}].resource")).unwrap_or_default();
        Refused::Invalid(vec![Issue::new(
            "business-rule",
            &expression,
            format!("{} (rule {})", denial.rule.explanation(), denial.rule.code()),
        )])
    })?;
    let data = doc.save_after(&base.get_heads());
    Ok(Judged { doc: doc.document().clone(), data, outcome, actor })
}

/// Whether the record holds an entry of this type under `id` already.
fn holds(doc: &automerge::Automerge, entry: &Entry, id: EntryId) -> bool {
    let collection = match entry {
        Entry::Report(_) => Report::COLLECTION,
        Entry::Observation(_) => Observation::COLLECTION,
        Entry::Prescription(_) => Prescription::COLLECTION,
        Entry::Allergy(_) => Allergy::COLLECTION,
    };
    let Ok(Some((_, map))) = doc.get(ROOT, collection.code()) else { return false };
    matches!(doc.get(&map, id.to_string()), Ok(Some(_)))
}
