//! Typed reads and writes of record documents. Every write here only adds
//! entries or sets fields the write policy allows; nothing is ever deleted.

use automerge::{ObjId, ROOT, ScalarValue};
use autosurgeon::{Doc, Hydrate, ReadDoc, Reconcile};

use crate::ids::{EntryId, UserId};
use crate::schema::{
    Allergy, Appointment, Collection, Demographics, Immunization, Message, Observation,
    Prescription, RefillRequest, Report, Task,
};

/// An entry type and the collection that holds it.
pub trait Entry: Reconcile + Hydrate {
    const COLLECTION: Collection;
}

macro_rules! entries {
    ($($ty:ty => $collection:ident),+ $(,)?) => {
        $(impl Entry for $ty {
            const COLLECTION: Collection = Collection::$collection;
        })+
    };
}

entries! {
    Report => Reports,
    Observation => Observations,
    Prescription => Prescriptions,
    Allergy => Allergies,
    Immunization => Immunizations,
    Appointment => Appointments,
    RefillRequest => RefillRequests,
    Message => Messages,
    Task => Tasks,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("this document has no {0} collection")]
    NoCollection(&'static str),
    #[error("entry not found")]
    NoEntry,
    // Boxed: Automerge's errors are over 100 bytes, and every `Result`
    // of a record write would carry that size on its happy path too.
    #[error(transparent)]
    Automerge(Box<automerge::AutomergeError>),
    #[error(transparent)]
    Reconcile(Box<autosurgeon::ReconcileError>),
}

impl From<automerge::AutomergeError> for RecordError {
    fn from(error: automerge::AutomergeError) -> Self {
        Self::Automerge(Box::new(error))
    }
}

impl From<autosurgeon::ReconcileError> for RecordError {
    fn from(error: autosurgeon::ReconcileError) -> Self {
        Self::Reconcile(Box::new(error))
    }
}

fn collection<D: ReadDoc>(doc: &D, name: Collection) -> Result<ObjId, RecordError> {
    match doc.get(&ROOT, name.code())? {
        Some((_, obj)) => Ok(obj),
        None => Err(RecordError::NoCollection(name.code())),
    }
}

fn entry_obj<D: ReadDoc>(
    doc: &D,
    collection_name: Collection,
    id: EntryId,
) -> Result<ObjId, RecordError> {
    let coll = collection(doc, collection_name)?;
    match doc.get(&coll, id.to_string())? {
        Some((_, obj)) => Ok(obj),
        None => Err(RecordError::NoEntry),
    }
}

/// Adds a new entry under a fresh id.
pub fn add<E: Entry, D: Doc>(doc: &mut D, id: EntryId, entry: &E) -> Result<(), RecordError> {
    let coll = collection(doc, E::COLLECTION)?;
    autosurgeon::reconcile_prop(doc, coll, id.to_string().as_str(), entry)?;
    Ok(())
}

/// Reads one entry, if it exists and matches the schema.
pub fn get<E: Entry, D: ReadDoc>(doc: &D, id: EntryId) -> Option<E> {
    let coll = collection(doc, E::COLLECTION).ok()?;
    autosurgeon::hydrate_prop(doc, &coll, id.to_string().as_str()).ok().flatten()
}

/// Changes the status of an entry of a clinical `collection` (an
/// [`Entry::COLLECTION`]), saying who did it, when and why. Marking an entry
/// entered-in-error is how a mistaken entry is corrected: it stays in the
/// record for the history, flagged. Not generic over the entry type: the app
/// calls it for every collection, and one copy is enough.
pub fn change_status<D: Doc>(
    doc: &mut D,
    collection: Collection,
    id: EntryId,
    status: &str,
    reason: &str,
    by: UserId,
    at: &str,
) -> Result<(), RecordError> {
    let obj = entry_obj(doc, collection, id)?;
    put_all(
        doc,
        &obj,
        &[
            ("status", status.into()),
            ("status_reason", reason.into()),
            ("status_by", by.to_string().into()),
            ("status_at", at.into()),
        ],
    )
}

/// Answers a refill request (approve or deny).
pub fn decide_refill<D: Doc>(
    doc: &mut D,
    id: EntryId,
    status: crate::status::RefillStatus,
    by: UserId,
    at: &str,
    note: &str,
) -> Result<(), RecordError> {
    let obj = entry_obj(doc, RefillRequest::COLLECTION, id)?;
    put_all(
        doc,
        &obj,
        &[
            ("status", status.code().into()),
            ("decided_by", by.to_string().into()),
            ("decided_at", at.into()),
            ("decision_note", note.into()),
        ],
    )
}

/// Records that the other side of a thread has read a message.
pub fn mark_read<D: Doc>(
    doc: &mut D,
    id: EntryId,
    by: UserId,
    at: &str,
) -> Result<(), RecordError> {
    let obj = entry_obj(doc, Message::COLLECTION, id)?;
    put_all(doc, &obj, &[("read_at", at.into()), ("read_by", by.to_string().into())])
}

/// Adds a work item field by field: autosurgeon's reconcile of a whole
/// entry costs the web app a few KB per entry type, and this is the only
/// place the app makes one.
pub fn add_task<D: Doc>(doc: &mut D, id: EntryId, task: &Task) -> Result<(), RecordError> {
    let coll = collection(doc, Task::COLLECTION)?;
    let obj = doc.put_object(&coll, id.to_string(), automerge::ObjType::Map)?;
    let text = |v: Option<String>| v.map_or(ScalarValue::Null, Into::into);
    put_all(
        doc,
        &obj,
        &[
            ("focus", task.focus.to_string().into()),
            ("focus_kind", task.focus_kind.code().into()),
            ("status", task.status.code().into()),
            ("owner", text(task.owner.map(|o| o.to_string()))),
            ("owner_name", text(task.owner_name.clone())),
            ("status_by", text(task.status_by.map(|o| o.to_string()))),
            ("status_at", text(task.status_at.clone())),
        ],
    )?;
    put_provenance(doc, &obj, &task.provenance)
}

fn put_provenance<D: Doc>(
    doc: &mut D,
    obj: &ObjId,
    p: &crate::schema::Provenance,
) -> Result<(), RecordError> {
    let provenance = doc.put_object(obj, "provenance", automerge::ObjType::Map)?;
    put_all(
        doc,
        &provenance,
        &[
            ("clinic", p.clinic.to_string().into()),
            ("clinic_name", p.clinic_name.as_str().into()),
            ("recorder", p.recorder.to_string().into()),
            ("recorder_name", p.recorder_name.as_str().into()),
            ("recorded", p.recorded.as_str().into()),
        ],
    )
}

/// The patient side asks the clinic of `provenance` for an appointment:
/// `proposed`, with a reason and the times they would like, no time yet.
/// Field by field, like [`add_task`].
pub fn request_appointment<D: Doc>(
    doc: &mut D,
    id: EntryId,
    reason: &str,
    preferred: &str,
    provenance: &crate::schema::Provenance,
) -> Result<(), RecordError> {
    let coll = collection(doc, Appointment::COLLECTION)?;
    let obj = doc.put_object(&coll, id.to_string(), automerge::ObjType::Map)?;
    let preferred = if preferred.is_empty() { ScalarValue::Null } else { preferred.into() };
    put_all(
        doc,
        &obj,
        &[
            ("start", "".into()),
            ("reason", reason.into()),
            ("status", crate::status::AppointmentStatus::Proposed.code().into()),
            ("status_reason", ScalarValue::Null),
            ("status_by", ScalarValue::Null),
            ("status_at", ScalarValue::Null),
            ("preferred", preferred),
        ],
    )?;
    put_provenance(doc, &obj, provenance)
}

/// Moves an appointment on ([`change_status`]); `start` gives it its time
/// (the clinic confirming a request or offering a time).
#[allow(clippy::too_many_arguments)]
pub fn move_appointment<D: Doc>(
    doc: &mut D,
    id: EntryId,
    status: crate::status::AppointmentStatus,
    start: Option<&str>,
    reason: &str,
    by: UserId,
    at: &str,
) -> Result<(), RecordError> {
    if let Some(start) = start {
        let obj = entry_obj(doc, Appointment::COLLECTION, id)?;
        doc.put(&obj, "start", start)?;
    }
    change_status(doc, Appointment::COLLECTION, id, status.code(), reason, by, at)
}

/// Moves a work item on (handled) or assigns it to a colleague, saying who
/// did it and when; `owner` is left as it is when `None`.
pub fn update_task<D: Doc>(
    doc: &mut D,
    id: EntryId,
    status: crate::status::TaskStatus,
    owner: Option<(UserId, &str)>,
    by: UserId,
    at: &str,
) -> Result<(), RecordError> {
    let obj = entry_obj(doc, Task::COLLECTION, id)?;
    let mut fields = vec![
        ("status", status.code().into()),
        ("status_by", by.to_string().into()),
        ("status_at", at.into()),
    ];
    if let Some((owner, name)) = owner {
        fields.push(("owner", owner.to_string().into()));
        fields.push(("owner_name", name.into()));
    }
    put_all(doc, &obj, &fields)
}

/// Updates the patient's demographics (only fields that changed are written).
pub fn set_demographics<D: Doc>(
    doc: &mut D,
    demographics: &Demographics,
) -> Result<(), RecordError> {
    autosurgeon::reconcile_prop(doc, ROOT, crate::schema::DEMOGRAPHICS, demographics)?;
    Ok(())
}

fn put_all<D: Doc>(
    doc: &mut D,
    obj: &ObjId,
    fields: &[(&str, ScalarValue)],
) -> Result<(), RecordError> {
    for (key, value) in fields {
        doc.put(obj, *key, value.clone())?;
    }
    Ok(())
}
