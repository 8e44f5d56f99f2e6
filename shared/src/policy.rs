//! The write policy: who may change which part of a record.
//!
//! `check_change` looks at what a set of changes did to a document (the
//! Automerge diff between the heads before and after them) and decides whether
//! the principal who sent them may do all of it. The client calls it before
//! anything leaves the device; the server calls it on every incoming change
//! and is the security boundary. Conflict patches count as writes: a losing
//! concurrent value is stored even though it is not visible.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use automerge::{Automerge, ChangeHash, ObjId, Patch, PatchAction, Prop, ROOT, ReadDoc, Value};
use autosurgeon::Hydrate;
use serde::{Deserialize, Serialize};

use crate::ids::{ClinicId, EntryId, PatientId, UserId};
use crate::read::MapCache;
use crate::schema::{
    Allergy, Appointment, DocKind, Immunization, Message, Observation, Prescription, Provenance, RefillRequest, Report,
};
use crate::status::{RefillStatus, Side};

/// What a signed-in user is, for the purpose of writing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    Patient { patient: PatientId },
    /// Acts for a patient with the rights the patient granted.
    Caregiver { patient: PatientId, may_message: bool },
    Provider { clinics: Vec<ClinicId> },
    ClinicAdmin { clinic: ClinicId },
}

/// The author of a proposed change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user: UserId,
    pub role: Role,
}

impl Principal {
    /// A provider who is a member of `clinic`.
    pub fn is_provider_of(&self, clinic: ClinicId) -> bool {
        matches!(&self.role, Role::Provider { clinics } if clinics.contains(&clinic))
    }

    pub fn is_admin_of(&self, clinic: ClinicId) -> bool {
        matches!(self.role, Role::ClinicAdmin { clinic: c } if c == clinic)
    }

    /// The patient, or a caregiver allowed to write messages and requests for them.
    pub fn speaks_for(&self, patient: PatientId) -> bool {
        match self.role {
            Role::Patient { patient: p } => p == patient,
            Role::Caregiver { patient: p, may_message } => p == patient && may_message,
            _ => false,
        }
    }

    /// Which side of a patient-clinic conversation this principal writes on.
    pub fn side(&self) -> Side {
        match self.role {
            Role::Patient { .. } | Role::Caregiver { .. } => Side::Patient,
            Role::Provider { .. } | Role::ClinicAdmin { .. } => Side::Clinic,
        }
    }
}

/// The rule a denied change broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    AppendOnly,
    NotPermitted,
    ForeignClinic,
    ImpersonatedAuthor,
    ImmutableField,
    StatusTransition,
    MissingReason,
    Schema,
}

impl Rule {
    pub fn code(self) -> &'static str {
        match self {
            Self::AppendOnly => "append-only",
            Self::NotPermitted => "not-permitted",
            Self::ForeignClinic => "foreign-clinic",
            Self::ImpersonatedAuthor => "impersonated-author",
            Self::ImmutableField => "immutable-field",
            Self::StatusTransition => "status-transition",
            Self::MissingReason => "missing-reason",
            Self::Schema => "schema",
        }
    }

    pub fn explanation(self) -> &'static str {
        match self {
            Self::AppendOnly => {
                "clinical history is append-only: entries are never deleted or replaced; mark them entered-in-error instead"
            }
            Self::NotPermitted => "this role may not write this part of the record",
            Self::ForeignClinic => "staff may only write entries of their own clinic",
            Self::ImpersonatedAuthor => "an entry's author must be the signed-in user",
            Self::ImmutableField => {
                "this field cannot change once recorded; mark the entry entered-in-error and record a new one"
            }
            Self::StatusTransition => "this status change is not allowed",
            Self::MissingReason => "marking an entry entered-in-error needs a reason",
            Self::Schema => "the change does not match the record schema",
        }
    }
}

/// Why a change was refused. `path` names the place in the document (entry
/// ids and field names only, never values, so it is safe to log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub rule: Rule,
    pub path: String,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (rule {}, at /{})", self.rule.explanation(), self.rule.code(), self.path)
    }
}

impl std::error::Error for Denial {}

/// The rule an outsider to `clinic`'s part of a record breaks: staff of another
/// clinic write into a foreign clinic's entries; anyone else is not permitted.
fn outsider(who: &Principal, clinic: ClinicId) -> Rule {
    if who.side() == Side::Clinic && !who.is_admin_of(clinic) { Rule::ForeignClinic } else { Rule::NotPermitted }
}

fn deny<T>(rule: Rule, path: &[String]) -> Result<T, Denial> {
    Err(Denial { rule, path: path.join("/") })
}

/// Decides whether `who` may make the changes between `before` and the
/// document's current heads.
pub fn check_change(doc: &Automerge, before: &[ChangeHash], kind: &DocKind, who: &Principal) -> Result<(), Denial> {
    check_patches(doc, before, doc.diff(before, &doc.get_heads()), kind, who)
}

/// [`check_change`] for callers that already hold the patches: recording them
/// while applying changes (a [`automerge::PatchLog`]) costs about half as
/// much as diffing afterwards, which matters on the server.
pub fn check_patches(
    doc: &Automerge,
    before: &[ChangeHash],
    patches: Vec<Patch>,
    kind: &DocKind,
    who: &Principal,
) -> Result<(), Denial> {
    let mut created = BTreeSet::new();
    let mut updated = BTreeSet::new();
    // Reading at old heads is costly; a new entry yields many patches.
    let mut existed_before: HashMap<(String, String), bool> = HashMap::new();
    for patch in patches {
        let mut path = Vec::with_capacity(patch.path.len() + 1);
        for (_, prop) in &patch.path {
            match prop {
                Prop::Map(key) => path.push(key.clone()),
                Prop::Seq(_) => return deny(Rule::Schema, &path),
            }
        }
        let conflict = match patch.action {
            PatchAction::PutMap { key, conflict, .. } => {
                path.push(key);
                conflict
            }
            PatchAction::Conflict { prop: Prop::Map(key) } => {
                path.push(key);
                true
            }
            PatchAction::DeleteMap { key } => {
                path.push(key);
                return deny(Rule::AppendOnly, &path);
            }
            PatchAction::DeleteSeq { .. } => return deny(Rule::AppendOnly, &path),
            _ => return deny(Rule::Schema, &path),
        };
        match path.as_slice() {
            [_] => return deny(Rule::Schema, &path),
            [section, field] if section == "demographics" => check_demographics(doc, kind, who, &patch.obj, field, &path)?,
            [collection, id, rest @ ..] => {
                if !kind.collections().contains(&collection.as_str()) || id.parse::<EntryId>().is_err() {
                    return deny(Rule::Schema, &path);
                }
                let existed = *existed_before
                    .entry((collection.clone(), id.clone()))
                    .or_insert_with(|| entry_at(doc, collection, id, before).is_some());
                match (existed, rest) {
                    // A new entry: checked whole, as its type, below.
                    (false, _) if !conflict => {
                        created.insert((collection.clone(), id.clone()));
                    }
                    (false, _) => return deny(Rule::Schema, &path),
                    (true, []) => return deny(Rule::AppendOnly, &path),
                    (true, [field]) => {
                        check_update(doc, before, kind, who, collection, &patch.obj, field, &path)?;
                        updated.insert((collection.clone(), id.clone()));
                    }
                    (true, _) => return deny(Rule::ImmutableField, &path),
                }
            }
            _ => return deny(Rule::Schema, &path),
        }
    }
    let reads = MapCache::new(doc);
    for (collection, id) in &created {
        check_created(&reads, kind, who, collection, id)?;
    }
    for (collection, id) in updated.difference(&created) {
        check_still_valid(&reads, collection, id)?;
    }
    Ok(())
}

fn entry_at(doc: &Automerge, collection: &str, id: &str, heads: &[ChangeHash]) -> Option<ObjId> {
    let (_, coll) = doc.get_at(ROOT, collection, heads).ok()??;
    let (_, entry) = doc.get_at(coll, id, heads).ok()??;
    Some(entry)
}

/// Every value now at `field`, the visible one and any it conflicts with.
fn values(doc: &Automerge, obj: &ObjId, field: &str) -> Vec<Option<String>> {
    doc.get_all(obj, field)
        .unwrap_or_default()
        .into_iter()
        .map(|(value, _)| match value {
            Value::Scalar(s) => s.as_str().map(str::to_owned),
            Value::Object(_) => Some(String::new()),
        })
        .collect()
}

fn scalar_at(doc: &Automerge, obj: &ObjId, field: &str, heads: &[ChangeHash]) -> Option<String> {
    match doc.get_at(obj, field, heads).ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        _ => None,
    }
}

fn check_demographics(
    doc: &Automerge,
    kind: &DocKind,
    who: &Principal,
    obj: &ObjId,
    field: &str,
    path: &[String],
) -> Result<(), Denial> {
    if !matches!(who.role, Role::Patient { patient } if patient == kind.patient()) {
        return deny(Rule::NotPermitted, path);
    }
    const FIELDS: [&str; 5] = ["family", "given", "birth_date", "phone", "email"];
    let scalars_only = doc
        .get_all(obj, field)
        .unwrap_or_default()
        .iter()
        .all(|(value, _)| matches!(value, Value::Scalar(s) if s.is_str() || s.is_null()));
    if !FIELDS.contains(&field) || !scalars_only {
        return deny(Rule::Schema, path);
    }
    Ok(())
}

/// A change to one field of an entry that already existed.
#[allow(clippy::too_many_arguments)]
fn check_update(
    doc: &Automerge,
    before: &[ChangeHash],
    kind: &DocKind,
    who: &Principal,
    collection: &str,
    entry: &ObjId,
    field: &str,
    path: &[String],
) -> Result<(), Denial> {
    let new_values = values(doc, entry, field);
    let all_are = |expected: &str| new_values.iter().all(|v| v.as_deref() == Some(expected));
    let me = who.user.to_string();
    match kind {
        DocKind::ClinicalRecord { clinic, .. } => {
            let staff = who.is_provider_of(*clinic) || (collection == "appointments" && who.is_admin_of(*clinic));
            if !staff {
                return deny(outsider(who, *clinic), path);
            }
            match field {
                "status" => {
                    let from = scalar_at(doc, entry, "status", before).unwrap_or_default();
                    let allowed =
                        new_values.iter().all(|to| to.as_deref().is_some_and(|to| transition_allowed(collection, &from, to)));
                    if !allowed {
                        return deny(Rule::StatusTransition, path);
                    }
                }
                "status_by" if !all_are(&me) => return deny(Rule::ImpersonatedAuthor, path),
                "status_by" | "status_reason" | "status_at" => {}
                _ => return deny(Rule::ImmutableField, path),
            }
        }
        DocKind::PatientRecord { patient } => {
            // Only refill requests can be updated: answered by their clinic, or
            // withdrawn by the patient side.
            let clinic = scalar_at(doc, entry, "clinic", before).and_then(|c| c.parse::<ClinicId>().ok());
            let from = scalar_at(doc, entry, "status", before).unwrap_or_default();
            if clinic.is_some_and(|c| who.is_provider_of(c)) {
                match field {
                    "status" if from == RefillStatus::Requested.code() => {
                        if !new_values.iter().all(|to| {
                            matches!(to.as_deref().and_then(RefillStatus::parse), Some(RefillStatus::Approved | RefillStatus::Denied))
                        }) {
                            return deny(Rule::StatusTransition, path);
                        }
                    }
                    "status" => return deny(Rule::StatusTransition, path),
                    "decided_by" if !all_are(&me) => return deny(Rule::ImpersonatedAuthor, path),
                    "decided_by" | "decided_at" | "decision_note" => {}
                    _ => return deny(Rule::ImmutableField, path),
                }
            } else if who.speaks_for(*patient) {
                if field != "status" {
                    return deny(Rule::ImmutableField, path);
                }
                if from != RefillStatus::Requested.code() || !all_are(RefillStatus::Cancelled.code()) {
                    return deny(Rule::StatusTransition, path);
                }
            } else {
                return deny(clinic.map_or(Rule::NotPermitted, |c| outsider(who, c)), path);
            }
        }
        DocKind::MessageThread { patient, clinic } => {
            if !(who.speaks_for(*patient) || who.is_provider_of(*clinic)) {
                return deny(outsider(who, *clinic), path);
            }
            if field != "read_at" && field != "read_by" {
                return deny(Rule::ImmutableField, path);
            }
            // Only the other side marks a message read, and only once.
            if scalar_at(doc, entry, "side", before).as_deref() == Some(who.side().code()) {
                return deny(Rule::NotPermitted, path);
            }
            if scalar_at(doc, entry, "read_at", before).is_some() {
                return deny(Rule::ImmutableField, path);
            }
            if field == "read_by" && !all_are(&me) {
                return deny(Rule::ImpersonatedAuthor, path);
            }
        }
    }
    Ok(())
}

/// The status changes each kind of clinical entry allows. Entered-in-error is final.
fn transition_allowed(collection: &str, from: &str, to: &str) -> bool {
    const EIE: &str = "entered-in-error";
    if from == to {
        return true;
    }
    if from == EIE {
        return false;
    }
    match collection {
        "prescriptions" => {
            matches!((from, to), ("active", "stopped" | "completed") | (_, EIE))
        }
        "allergies" => matches!((from, to), ("active", "inactive") | ("inactive", "active") | (_, EIE)),
        "appointments" => matches!((from, to), ("booked", "fulfilled" | "cancelled" | "noshow") | (_, EIE)),
        _ => to == EIE,
    }
}

fn hydrate_entry<T: Hydrate>(doc: &MapCache<'_>, collection: &str, id: &str) -> Result<T, Denial> {
    let path = [collection.to_owned(), id.to_owned()];
    let Some((_, coll)) = autosurgeon::ReadDoc::get(doc, &ROOT, collection).ok().flatten() else {
        return deny(Rule::Schema, &path);
    };
    match autosurgeon::hydrate_prop::<_, Option<T>, _, _>(doc, &coll, id) {
        Ok(Some(entry)) => Ok(entry),
        _ => deny(Rule::Schema, &path),
    }
}

/// The parts every clinical entry shares.
struct ClinicalFields<'a> {
    provenance: &'a Provenance,
    status: &'static str,
    status_reason: Option<&'a str>,
    status_by: Option<UserId>,
    status_at: Option<&'a str>,
}

macro_rules! clinical_fields {
    ($entry:expr) => {{
        let e = &$entry;
        ClinicalFields {
            provenance: &e.provenance,
            status: e.status.code(),
            status_reason: e.status_reason.as_deref(),
            status_by: e.status_by,
            status_at: e.status_at.as_deref(),
        }
    }};
}

/// Calls `$body` with the clinical fields of the entry at `collection`/`id`.
macro_rules! with_clinical_entry {
    ($doc:expr, $collection:expr, $id:expr, |$fields:ident| $body:expr) => {
        match $collection {
            "reports" => { let e: Report = hydrate_entry($doc, $collection, $id)?; let $fields = clinical_fields!(e); $body }
            "observations" => { let e: Observation = hydrate_entry($doc, $collection, $id)?; let $fields = clinical_fields!(e); $body }
            "prescriptions" => { let e: Prescription = hydrate_entry($doc, $collection, $id)?; let $fields = clinical_fields!(e); $body }
            "allergies" => { let e: Allergy = hydrate_entry($doc, $collection, $id)?; let $fields = clinical_fields!(e); $body }
            "immunizations" => { let e: Immunization = hydrate_entry($doc, $collection, $id)?; let $fields = clinical_fields!(e); $body }
            "appointments" => { let e: Appointment = hydrate_entry($doc, $collection, $id)?; let $fields = clinical_fields!(e); $body }
            _ => deny(Rule::Schema, &[$collection.to_owned()]),
        }
    };
}

/// A whole new entry, checked as its type.
fn check_created(doc: &MapCache<'_>, kind: &DocKind, who: &Principal, collection: &str, id: &str) -> Result<(), Denial> {
    let path = [collection.to_owned(), id.to_owned()];
    match kind {
        DocKind::ClinicalRecord { clinic, .. } => {
            let staff = who.is_provider_of(*clinic) || (collection == "appointments" && who.is_admin_of(*clinic));
            if !staff {
                return deny(outsider(who, *clinic), &path);
            }
            with_clinical_entry!(doc, collection, id, |entry| {
                if entry.provenance.clinic != *clinic {
                    return deny(Rule::ForeignClinic, &path);
                }
                if entry.provenance.recorder != who.user {
                    return deny(Rule::ImpersonatedAuthor, &path);
                }
                // Past entries may be recorded as such (a prescription that was
                // stopped years ago), but not as already voided.
                if entry.status == "entered-in-error" {
                    return deny(Rule::StatusTransition, &path);
                }
                if entry.status_by.is_some_and(|by| by != who.user) {
                    return deny(Rule::ImpersonatedAuthor, &path);
                }
                status_fields_valid(&entry, &path)
            })
        }
        DocKind::PatientRecord { patient } => {
            if !who.speaks_for(*patient) {
                return deny(Rule::NotPermitted, &path);
            }
            let request: RefillRequest = hydrate_entry(doc, collection, id)?;
            if request.requested_by != who.user {
                return deny(Rule::ImpersonatedAuthor, &path);
            }
            if request.status != RefillStatus::Requested || request.decided_by.is_some() || request.decided_at.is_some() {
                return deny(Rule::StatusTransition, &path);
            }
            Ok(())
        }
        DocKind::MessageThread { patient, clinic } => {
            if !(who.speaks_for(*patient) || who.is_provider_of(*clinic)) {
                return deny(outsider(who, *clinic), &path);
            }
            let message: Message = hydrate_entry(doc, collection, id)?;
            if message.author != who.user || message.side != who.side() {
                return deny(Rule::ImpersonatedAuthor, &path);
            }
            if message.read_at.is_some() || message.read_by.is_some() || message.body.trim().is_empty() {
                return deny(Rule::Schema, &path);
            }
            Ok(())
        }
    }
}

/// A new or updated entry must be a well-formed entry of its type.
fn check_still_valid(doc: &MapCache<'_>, collection: &str, id: &str) -> Result<(), Denial> {
    let path = [collection.to_owned(), id.to_owned()];
    match collection {
        "refill_requests" => hydrate_entry::<RefillRequest>(doc, collection, id).map(drop),
        "messages" => hydrate_entry::<Message>(doc, collection, id).map(drop),
        _ => with_clinical_entry!(doc, collection, id, |entry| status_fields_valid(&entry, &path)),
    }
}

/// Entered-in-error needs a reason; who and when come together.
fn status_fields_valid(entry: &ClinicalFields<'_>, path: &[String]) -> Result<(), Denial> {
    let reason_given = entry.status_reason.is_some_and(|r| !r.trim().is_empty());
    if entry.status == "entered-in-error" && !reason_given {
        return deny(Rule::MissingReason, path);
    }
    if entry.status_by.is_some() != entry.status_at.is_some() {
        return deny(Rule::Schema, path);
    }
    Ok(())
}
