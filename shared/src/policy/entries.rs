//! Whole entries, once changes are applied: each entry they created must be
//! a well-formed entry of its type written by its sender (author, recorder,
//! clinic), and each entry they updated must still be well-formed.

use automerge::Automerge;

use super::ops::Plan;
use super::{Denial, Principal, Rule, deny, hydrate_entry, outsider};
use crate::ids::UserId;
use crate::read::MapCache;
use crate::schema::{
    Allergy, Appointment, Collection, DocKind, Immunization, Message, Observation, Prescription,
    Provenance, RefillRequest, Report, Task,
};
use crate::status::{AppointmentStatus, RefillStatus, ResultStatus, Side};

/// Every status enum spells entered-in-error alike (FHIR's code).
const ENTERED_IN_ERROR: &str = ResultStatus::EnteredInError.code();

pub(super) fn check(
    after: &Automerge,
    plan: &Plan,
    kind: &DocKind,
    who: &Principal,
) -> Result<(), Denial> {
    // New entries as their operations wrote them, where those are what
    // `after` shows (`NewMaps`); the rest read from `after`.
    #[cfg(feature = "new-maps")]
    let reads = match plan.new_maps.in_doc(after) {
        Some(known) => MapCache::with_known(after, known),
        None => MapCache::new(after),
    };
    #[cfg(not(feature = "new-maps"))]
    let reads = MapCache::new(after);
    for (collection, id) in &plan.created {
        check_created(&reads, kind, who, *collection, id)?;
    }
    for (collection, id) in plan.updated.difference(&plan.created) {
        check_still_valid(&reads, *collection, id)?;
    }
    let appointments = plan.created.iter().map(|e| (e, true));
    let appointments =
        appointments.chain(plan.updated.difference(&plan.created).map(|e| (e, false)));
    for ((collection, id), created) in appointments {
        if *collection == Collection::Appointments {
            appointment_valid(
                &hydrate_entry(&reads, *collection, id)?,
                who,
                created,
                &[collection.code().to_owned(), id.clone()],
            )?;
        }
    }
    for id in &plan.assigned {
        let task: Task = hydrate_entry(&reads, Collection::Tasks, id)?;
        owner_valid(&task, kind, who, &[Collection::Tasks.code().to_owned(), id.clone()])?;
    }
    Ok(())
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

/// Calls `$body` with the entry at `collection`/`id`, hydrated as its type,
/// and its clinical fields.
macro_rules! with_clinical_entry {
    ($doc:expr, $collection:expr, $id:expr, |$entry:ident, $fields:ident| $body:expr) => {
        match $collection {
            Collection::Reports => {
                let $entry: Report = hydrate_entry($doc, $collection, $id)?;
                let $fields = clinical_fields!($entry);
                $body
            }
            Collection::Observations => {
                let $entry: Observation = hydrate_entry($doc, $collection, $id)?;
                let $fields = clinical_fields!($entry);
                $body
            }
            Collection::Prescriptions => {
                let $entry: Prescription = hydrate_entry($doc, $collection, $id)?;
                let $fields = clinical_fields!($entry);
                $body
            }
            Collection::Allergies => {
                let $entry: Allergy = hydrate_entry($doc, $collection, $id)?;
                let $fields = clinical_fields!($entry);
                $body
            }
            Collection::Immunizations => {
                let $entry: Immunization = hydrate_entry($doc, $collection, $id)?;
                let $fields = clinical_fields!($entry);
                $body
            }
            Collection::Appointments => {
                let $entry: Appointment = hydrate_entry($doc, $collection, $id)?;
                let $fields = clinical_fields!($entry);
                $body
            }
            Collection::RefillRequests | Collection::Messages | Collection::Tasks => {
                deny(Rule::Schema, &[$collection.code().to_owned()])
            }
        }
    };
}

/// A whole new entry, checked as its type.
fn check_created(
    doc: &MapCache<'_>,
    kind: &DocKind,
    who: &Principal,
    collection: Collection,
    id: &str,
) -> Result<(), Denial> {
    let path = [collection.code().to_owned(), id.to_owned()];
    match kind {
        DocKind::ClinicalRecord { patient, clinic } => {
            // The patient side only asks for appointments (`appointment_valid`).
            let staff = who.is_provider_of(*clinic)
                || (collection == Collection::Appointments
                    && (who.is_admin_of(*clinic) || who.speaks_for(*patient)));
            if !staff {
                return deny(outsider(who, *clinic), &path);
            }
            with_clinical_entry!(doc, collection, id, |typed, entry| {
                if entry.provenance.clinic != *clinic {
                    return deny(Rule::ForeignClinic, &path);
                }
                let names_match = entry.provenance.recorder_name == who.name
                    && who.clinic_name(*clinic) == Some(entry.provenance.clinic_name.as_str());
                if entry.provenance.recorder != who.user || !names_match {
                    return deny(Rule::ImpersonatedAuthor, &path);
                }
                // Past entries may be recorded as such (a prescription that was
                // stopped years ago), but not as already voided.
                if entry.status == ENTERED_IN_ERROR {
                    return deny(Rule::StatusTransition, &path);
                }
                if entry.status_by.is_some_and(|by| by != who.user) {
                    return deny(Rule::ImpersonatedAuthor, &path);
                }
                status_fields_valid(&entry, &path)?;
                // The entry as hydrated once for both sets of rules.
                super::safety::SafetyRules::check_created(&typed, doc, id, &path)
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
            if request.status != RefillStatus::Requested
                || request.decided_by.is_some()
                || request.decided_at.is_some()
            {
                return deny(Rule::StatusTransition, &path);
            }
            Ok(())
        }
        DocKind::MessageThread { clinic, .. } if collection == Collection::Tasks => {
            if !who.is_provider_of(*clinic) {
                return deny(outsider(who, *clinic), &path);
            }
            let task: Task = hydrate_entry(doc, collection, id)?;
            let p = &task.provenance;
            if p.clinic != *clinic {
                return deny(Rule::ForeignClinic, &path);
            }
            let names_match = p.recorder_name == who.name
                && who.clinic_name(*clinic) == Some(p.clinic_name.as_str());
            if p.recorder != who.user
                || !names_match
                || task.status_by.is_some_and(|by| by != who.user)
            {
                return deny(Rule::ImpersonatedAuthor, &path);
            }
            if !matches!(
                task.focus_kind,
                Collection::Messages
                    | Collection::RefillRequests
                    | Collection::Observations
                    | Collection::Reports
                    | Collection::Appointments
            ) {
                return deny(Rule::Schema, &path);
            }
            owner_valid(&task, kind, who, &path)?;
            task_stamp_valid(&task, &path)
        }
        DocKind::MessageThread { patient, clinic } => {
            if !(who.speaks_for(*patient) || who.is_provider_of(*clinic)) {
                return deny(outsider(who, *clinic), &path);
            }
            let message: Message = hydrate_entry(doc, collection, id)?;
            if message.author != who.user
                || message.author_name != who.name
                || message.side != who.side()
            {
                return deny(Rule::ImpersonatedAuthor, &path);
            }
            if message.read_at.is_some()
                || message.read_by.is_some()
                || message.body.trim().is_empty()
            {
                return deny(Rule::Schema, &path);
            }
            let Some(first) = message.in_response_to else { return Ok(()) };
            // A reply names the first message of a conversation in this
            // thread, and has no subject or result of its own: what the
            // conversation is about is said once, by its first message.
            if message.topic.is_some() || message.about.is_some() {
                return deny(Rule::Schema, &path);
            }
            match hydrate_entry::<Message>(doc, collection, &first.to_string()) {
                Ok(first) if first.topic.is_some() && first.in_response_to.is_none() => Ok(()),
                _ => deny(Rule::Schema, &path),
            }
        }
    }
}

/// A new or updated entry must be a well-formed entry of its type.
fn check_still_valid(doc: &MapCache<'_>, collection: Collection, id: &str) -> Result<(), Denial> {
    let path = [collection.code().to_owned(), id.to_owned()];
    match collection {
        Collection::RefillRequests => hydrate_entry::<RefillRequest>(doc, collection, id).map(drop),
        Collection::Messages => hydrate_entry::<Message>(doc, collection, id).map(drop),
        Collection::Tasks => task_stamp_valid(&hydrate_entry(doc, collection, id)?, &path),
        _ => with_clinical_entry!(doc, collection, id, |_typed, entry| status_fields_valid(
            &entry, &path
        )),
    }
}

/// An appointment as its author's side may leave it. The patient side
/// only asks: a new request is `proposed`, with a reason, no time and no
/// status stamp. A time the clinic offers or books is a date and time, and
/// the clinic turning one down or cancelling it says why (the patient
/// reads it).
fn appointment_valid(
    a: &Appointment,
    who: &Principal,
    created: bool,
    path: &[String],
) -> Result<(), Denial> {
    use AppointmentStatus::*;
    let side = who.side();
    if created && side == Side::Patient {
        if a.status != Proposed
            || a.status_by.is_some()
            || a.status_at.is_some()
            || a.status_reason.is_some()
        {
            return deny(Rule::StatusTransition, path);
        }
        if !a.start.is_empty() || a.reason.trim().is_empty() {
            return deny(Rule::Schema, path);
        }
    }
    if matches!(a.status, Pending | Booked) && !is_time(&a.start) {
        return deny(Rule::Schema, path);
    }
    let reason_given = a.status_reason.as_deref().is_some_and(|r| !r.trim().is_empty());
    if !created && side == Side::Clinic && a.status == Cancelled && !reason_given {
        return deny(Rule::MissingReason, path);
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM`, then anything (seconds, an offset).
pub(crate) fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16
        && b.iter().take(16).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// A work item is assigned only to a provider of its clinic, under the
/// directory's name, and an owner's name comes with an owner.
fn owner_valid(
    task: &Task,
    kind: &DocKind,
    who: &Principal,
    path: &[String],
) -> Result<(), Denial> {
    let Some(clinic) = kind.clinic() else { return deny(Rule::Schema, path) };
    let valid = match (task.owner, task.owner_name.as_deref()) {
        (None, None) => true,
        (Some(owner), Some(name)) => who.colleague_name(clinic, owner) == Some(name),
        _ => false,
    };
    if !valid {
        return deny(Rule::Assignee, path);
    }
    Ok(())
}

/// Who and when a work item last moved come together.
fn task_stamp_valid(task: &Task, path: &[String]) -> Result<(), Denial> {
    if task.status_by.is_some() != task.status_at.is_some() {
        return deny(Rule::Schema, path);
    }
    Ok(())
}

/// Entered-in-error needs a reason; who and when come together.
fn status_fields_valid(entry: &ClinicalFields<'_>, path: &[String]) -> Result<(), Denial> {
    let reason_given = entry.status_reason.is_some_and(|r| !r.trim().is_empty());
    if entry.status == ENTERED_IN_ERROR && !reason_given {
        return deny(Rule::MissingReason, path);
    }
    if entry.status_by.is_some() != entry.status_at.is_some() {
        return deny(Rule::Schema, path);
    }
    Ok(())
}
