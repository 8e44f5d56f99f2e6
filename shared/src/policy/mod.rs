//! The write policy: who may change which part of a record.
//!
//! A set of changes is judged in two steps. Before anything is applied,
//! every operation they carry is checked against the document as it is
//! (`ops`): the object it writes into, the key and the value must be ones
//! this principal may write, as the schema types them (`fields`). Judging
//! operations rather than what a view would show matters: Automerge stores
//! values that lose a conflict, writes into hidden objects and changes that
//! change nothing visible, and all of them replicate to every reader. Once
//! applied, each entry the changes created or updated is read whole and
//! checked as its type (`entries`): authors, clinics, required reasons.
//!
//! The client runs the same checks before anything leaves the device; the
//! server's run is the security boundary. Denials name the rule and the path
//! (entry ids and field names only, never values), so they are safe to log.

mod entries;
mod ops;
mod safety;

use std::fmt;

use automerge::{Automerge, Change, ChangeHash};
use serde::{Deserialize, Serialize};

use crate::ids::{ClinicId, PatientId, UserId};
use crate::schema::DocKind;
use crate::status::Side;

pub use ops::Plan;

/// What a signed-in user is, for the purpose of writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Patient {
        patient: PatientId,
    },
    /// Acts for a patient with the rights the patient granted.
    Caregiver {
        patient: PatientId,
        may_message: bool,
    },
    Provider {
        clinics: Vec<ClinicId>,
    },
    ClinicAdmin {
        clinic: ClinicId,
    },
}

/// The author of a proposed change, with their names as the directory
/// holds them: entries carry display names beside ids (so offline replicas
/// can show them), and those must be the directory's, not free text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub role: Role,
    pub name: String,
    /// The names of the clinics the principal works for; for the patient
    /// side, of the clinics the patient consents to (where they may ask for
    /// appointments).
    pub clinic_names: Vec<(ClinicId, String)>,
    /// For a provider: the providers of their clinics (themselves too),
    /// with the directory's names; work items are assigned only to them.
    pub colleagues: Vec<(ClinicId, UserId, String)>,
}

impl Principal {
    /// The directory's name of one of the principal's clinics.
    pub fn clinic_name(&self, clinic: ClinicId) -> Option<&str> {
        self.clinic_names.iter().find(|(id, _)| *id == clinic).map(|(_, name)| name.as_str())
    }

    /// The directory's name of `user` if they are a provider of `clinic`,
    /// one of this principal's clinics.
    pub fn colleague_name(&self, clinic: ClinicId, user: UserId) -> Option<&str> {
        self.colleagues
            .iter()
            .find(|(c, u, _)| *c == clinic && *u == user)
            .map(|(_, _, name)| name.as_str())
    }

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
    /// A value over its size limit, or too many entries at once.
    Limit,
    /// A lab value that is physiologically impossible for its test.
    Implausible,
    /// A critical lab value not marked critical (or a mark on one that is not).
    CriticalMark,
    /// A prescription against an allergy or interaction without a reason.
    OverrideReason,
    /// A work item assigned to someone who is not a provider of its clinic.
    Assignee,
}

impl Rule {
    /// Every rule: the app's catalog test checks each explanation has its
    /// translation (a rule added here without one fails it).
    pub const ALL: [Self; 13] = [
        Self::AppendOnly,
        Self::NotPermitted,
        Self::ForeignClinic,
        Self::ImpersonatedAuthor,
        Self::ImmutableField,
        Self::StatusTransition,
        Self::MissingReason,
        Self::Schema,
        Self::Limit,
        Self::Implausible,
        Self::CriticalMark,
        Self::OverrideReason,
        Self::Assignee,
    ];

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
            Self::Limit => "limit",
            Self::Implausible => "implausible",
            Self::CriticalMark => "critical-mark",
            Self::OverrideReason => "override-reason",
            Self::Assignee => "assignee",
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
            Self::MissingReason => {
                "marking an entry entered-in-error, or declining or cancelling an appointment for the clinic, needs a reason"
            }
            Self::Schema => "the change does not match the record schema",
            Self::Limit => "this is longer than the record allows, or too many entries at once",
            Self::Implausible => {
                "this value is impossible for this test: check the number and its unit"
            }
            Self::CriticalMark => {
                "a value in the critical range must be confirmed and marked critical, and only such a value"
            }
            Self::OverrideReason => {
                "prescribing despite a recorded allergy or a serious interaction needs a reason"
            }
            Self::Assignee => "a work item can only be assigned to a provider of its clinic",
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
    if who.side() == Side::Clinic && !who.is_admin_of(clinic) {
        Rule::ForeignClinic
    } else {
        Rule::NotPermitted
    }
}

fn deny<T>(rule: Rule, path: &[String]) -> Result<T, Denial> {
    Err(Denial { rule, path: path.join("/") })
}

/// Decides whether `who` may make the changes between `before` and the
/// document's current heads. For the server's own writes (the demo seeder)
/// and tests: it rebuilds the document as it was at `before`, and applies
/// no per-person quota.
pub fn check_change(
    doc: &Automerge,
    before: &[ChangeHash],
    kind: &DocKind,
    who: &Principal,
) -> Result<(), Denial> {
    let base =
        doc.fork_at(before).map_err(|_| Denial { rule: Rule::Schema, path: String::new() })?;
    let changes = doc.get_changes(before);
    let plan = check_ops(&base, &changes, kind, who)?;
    check_entries(doc, &plan, kind, who)
}

/// Decides whether `who` may turn `base` into `after` (a copy of `base` with
/// changes added), as the server will: the app's check of a local edit,
/// with the copy it kept.
pub fn check_edit(
    base: &Automerge,
    after: &Automerge,
    kind: &DocKind,
    who: &Principal,
) -> Result<(), Denial> {
    let changes = after.get_changes(&base.get_heads());
    let plan = check_ops(base, &changes, kind, who)?;
    check_quota(&plan)?;
    check_entries(after, &plan, kind, who)
}

/// What one person may add in one change (`fields::limits`).
pub fn check_quota(plan: &Plan) -> Result<(), Denial> {
    if plan.largest_change > crate::fields::limits::ENTRIES_PER_CHANGE {
        return deny(Rule::Limit, &[]);
    }
    Ok(())
}

/// Checks every operation of `changes` against `base`, the document they
/// are about to be applied to, before anything is applied. Changes `base`
/// already holds are skipped (they change nothing).
pub fn check_ops(
    base: &Automerge,
    changes: &[Change],
    kind: &DocKind,
    who: &Principal,
) -> Result<Plan, Denial> {
    ops::check(base, changes, kind, who)
}

/// Once the changes of `plan` are applied (`after`), checks each entry
/// they created or updated whole, as its type.
pub fn check_entries(
    after: &Automerge,
    plan: &Plan,
    kind: &DocKind,
    who: &Principal,
) -> Result<(), Denial> {
    entries::check(after, plan, kind, who)
}

/// The entry at `collection`/`id`, hydrated whole as `T`; one that is
/// missing or does not match the schema is refused.
fn hydrate_entry<T: autosurgeon::Hydrate>(
    doc: &crate::read::MapCache<'_>,
    collection: crate::schema::Collection,
    id: &str,
) -> Result<T, Denial> {
    let hydrated = entry_object(doc, collection, id).and_then(|obj| T::hydrate_map(doc, &obj).ok());
    hydrated.map_or_else(|| deny(Rule::Schema, &[collection.code().to_owned(), id.to_owned()]), Ok)
}

/// The map of the entry at `collection`/`id`, if there is one. Apart from
/// [`hydrate_entry`] so that only the hydration is compiled per entry type
/// (the web app runs the policy too).
fn entry_object(
    doc: &crate::read::MapCache<'_>,
    collection: crate::schema::Collection,
    id: &str,
) -> Option<automerge::ObjId> {
    use autosurgeon::ReadDoc;
    let (_, coll) = doc.get(&automerge::ROOT, collection.code()).ok().flatten()?;
    match doc.get(&coll, id).ok().flatten()? {
        (automerge::Value::Object(automerge::ObjType::Map), obj) => Some(obj),
        _ => None,
    }
}
