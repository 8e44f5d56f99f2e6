//! Typed reads and writes of record documents. Every write here only adds
//! entries or sets fields the write policy allows; nothing is ever deleted.

use automerge::{ObjId, ROOT, ScalarValue};
use autosurgeon::{Doc, Hydrate, ReadDoc};

use crate::ids::{EntryId, UserId};
use crate::schema::{
    Allergy, Appointment, Collection, Demographics, Immunization, Message, Observation,
    Prescription, Provenance, RefillRequest, Report, Task,
};

/// One field of an entry as it is written: a value, or the provenance map.
pub enum Put<'a> {
    Value(&'static str, ScalarValue),
    Provenance(&'a Provenance),
}

/// An entry type, the collection that holds it, and its fields as written,
/// in declaration order: the same operations autosurgeon's derived
/// `Reconcile` makes for a new entry (a test compares the bytes), without
/// its code for each entry type in the web app (a few KB each).
pub trait Entry: Hydrate {
    const COLLECTION: Collection;
    fn fields(&self) -> Vec<Put<'_>>;
}

fn text(value: &str) -> ScalarValue {
    value.into()
}

/// `None` is written as null, as autosurgeon writes it.
fn optional<T: ToString>(value: &Option<T>) -> ScalarValue {
    value.as_ref().map_or(ScalarValue::Null, |v| v.to_string().into())
}

fn number(value: Option<f64>) -> ScalarValue {
    value.map_or(ScalarValue::Null, ScalarValue::F64)
}

/// The fields every clinical entry ends with: why, by whom and when its
/// status last changed.
fn status_fields(
    reason: &Option<String>,
    by: &Option<UserId>,
    at: &Option<String>,
) -> [Put<'static>; 3] {
    [
        Put::Value("status_reason", optional(reason)),
        Put::Value("status_by", optional(by)),
        Put::Value("status_at", optional(at)),
    ]
}

impl Entry for Report {
    const COLLECTION: Collection = Collection::Reports;
    fn fields(&self) -> Vec<Put<'_>> {
        let mut f = vec![
            Put::Value("loinc", text(&self.loinc)),
            Put::Value("display", text(&self.display)),
            Put::Value("effective", text(&self.effective)),
            Put::Value("status", text(self.status.code())),
            Put::Provenance(&self.provenance),
        ];
        f.extend(status_fields(&self.status_reason, &self.status_by, &self.status_at));
        f
    }
}

impl Entry for Observation {
    const COLLECTION: Collection = Collection::Observations;
    fn fields(&self) -> Vec<Put<'_>> {
        let mut f = vec![
            Put::Value("report", optional(&self.report)),
            Put::Value("loinc", text(&self.loinc)),
            Put::Value("display", text(&self.display)),
            Put::Value("value_quantity", number(self.value_quantity)),
            Put::Value("value_string", optional(&self.value_string)),
            Put::Value("unit", optional(&self.unit)),
            Put::Value("reference_low", number(self.reference_low)),
            Put::Value("reference_high", number(self.reference_high)),
            Put::Value("effective", text(&self.effective)),
            Put::Value("status", text(self.status.code())),
            Put::Value("replaces", optional(&self.replaces)),
            Put::Provenance(&self.provenance),
        ];
        f.extend(status_fields(&self.status_reason, &self.status_by, &self.status_at));
        f.push(Put::Value("interpretation", optional(&self.interpretation)));
        f
    }
}

impl Entry for Prescription {
    const COLLECTION: Collection = Collection::Prescriptions;
    fn fields(&self) -> Vec<Put<'_>> {
        let mut f = vec![
            Put::Value("rxnorm", text(&self.rxnorm)),
            Put::Value("display", text(&self.display)),
            Put::Value("dosage", text(&self.dosage)),
            Put::Value("quantity", ScalarValue::Uint(self.quantity.into())),
            Put::Value("refills_allowed", ScalarValue::Uint(self.refills_allowed.into())),
            Put::Value("authored", text(&self.authored)),
            Put::Value("status", text(self.status.code())),
            Put::Provenance(&self.provenance),
        ];
        f.extend(status_fields(&self.status_reason, &self.status_by, &self.status_at));
        f.push(Put::Value("override_reason", optional(&self.override_reason)));
        f
    }
}

impl Entry for Allergy {
    const COLLECTION: Collection = Collection::Allergies;
    fn fields(&self) -> Vec<Put<'_>> {
        let mut f = vec![
            Put::Value("substance_code", text(&self.substance_code)),
            Put::Value("substance", text(&self.substance)),
            Put::Value("reaction", text(&self.reaction)),
            Put::Value("severity", text(self.severity.code())),
            Put::Value("status", text(self.status.code())),
            Put::Provenance(&self.provenance),
        ];
        f.extend(status_fields(&self.status_reason, &self.status_by, &self.status_at));
        f
    }
}

impl Entry for Immunization {
    const COLLECTION: Collection = Collection::Immunizations;
    fn fields(&self) -> Vec<Put<'_>> {
        let mut f = vec![
            Put::Value("cvx", text(&self.cvx)),
            Put::Value("vaccine", text(&self.vaccine)),
            Put::Value("occurrence", text(&self.occurrence)),
            Put::Value("status", text(self.status.code())),
            Put::Provenance(&self.provenance),
        ];
        f.extend(status_fields(&self.status_reason, &self.status_by, &self.status_at));
        f
    }
}

impl Entry for Appointment {
    const COLLECTION: Collection = Collection::Appointments;
    fn fields(&self) -> Vec<Put<'_>> {
        let mut f = vec![
            Put::Value("start", text(&self.start)),
            Put::Value("reason", text(&self.reason)),
            Put::Value("status", text(self.status.code())),
            Put::Provenance(&self.provenance),
        ];
        f.extend(status_fields(&self.status_reason, &self.status_by, &self.status_at));
        f.push(Put::Value("preferred", optional(&self.preferred)));
        f
    }
}

impl Entry for RefillRequest {
    const COLLECTION: Collection = Collection::RefillRequests;
    fn fields(&self) -> Vec<Put<'_>> {
        vec![
            Put::Value("prescription", text(&self.prescription.to_string())),
            Put::Value("clinic", text(&self.clinic.to_string())),
            Put::Value("requested_by", text(&self.requested_by.to_string())),
            Put::Value("requested_at", text(&self.requested_at)),
            Put::Value("note", text(&self.note)),
            Put::Value("status", text(self.status.code())),
            Put::Value("decided_by", optional(&self.decided_by)),
            Put::Value("decided_at", optional(&self.decided_at)),
            Put::Value("decision_note", optional(&self.decision_note)),
        ]
    }
}

impl Entry for Message {
    const COLLECTION: Collection = Collection::Messages;
    fn fields(&self) -> Vec<Put<'_>> {
        vec![
            Put::Value("author", text(&self.author.to_string())),
            Put::Value("author_name", text(&self.author_name)),
            Put::Value("side", text(self.side.code())),
            Put::Value("sent_at", text(&self.sent_at)),
            Put::Value("body", text(&self.body)),
            Put::Value("read_at", optional(&self.read_at)),
            Put::Value("read_by", optional(&self.read_by)),
            Put::Value("topic", optional(&self.topic)),
            Put::Value("in_response_to", optional(&self.in_response_to)),
            Put::Value("about", optional(&self.about)),
        ]
    }
}

impl Entry for Task {
    const COLLECTION: Collection = Collection::Tasks;
    fn fields(&self) -> Vec<Put<'_>> {
        vec![
            Put::Value("focus", text(&self.focus.to_string())),
            Put::Value("focus_kind", text(self.focus_kind.code())),
            Put::Value("status", text(self.status.code())),
            Put::Value("owner", optional(&self.owner)),
            Put::Value("owner_name", optional(&self.owner_name)),
            Put::Provenance(&self.provenance),
            Put::Value("status_by", optional(&self.status_by)),
            Put::Value("status_at", optional(&self.status_at)),
        ]
    }
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
    put_new(doc, E::COLLECTION, id, &entry.fields())
}

/// Not generic over the entry type (nor inlined): one copy in the web app.
#[inline(never)]
fn put_new<D: Doc>(
    doc: &mut D,
    collection_name: Collection,
    id: EntryId,
    fields: &[Put<'_>],
) -> Result<(), RecordError> {
    let coll = collection(doc, collection_name)?;
    put_entry(doc, &coll, &id.to_string(), fields)
}

/// Writes an entry as `add` does, into the map `coll` (the web app's
/// summary of a record keeps entries of several documents in one).
pub fn add_at<E: Entry, D: Doc>(
    doc: &mut D,
    coll: &ObjId,
    id: &str,
    entry: &E,
) -> Result<(), RecordError> {
    put_entry(doc, coll, id, &entry.fields())
}

#[inline(never)]
fn put_entry<D: Doc>(
    doc: &mut D,
    coll: &ObjId,
    id: &str,
    fields: &[Put<'_>],
) -> Result<(), RecordError> {
    let obj = doc.put_object(coll, id, automerge::ObjType::Map)?;
    for field in fields {
        match field {
            Put::Value(key, value) => doc.put(&obj, *key, value.clone())?,
            Put::Provenance(p) => {
                let provenance = doc.put_object(&obj, "provenance", automerge::ObjType::Map)?;
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
                )?;
            }
        }
    }
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

/// The patient side asks the clinic of `provenance` for an appointment:
/// `proposed`, with a reason and the times they would like, no time yet.
pub fn request_appointment<D: Doc>(
    doc: &mut D,
    id: EntryId,
    reason: &str,
    preferred: &str,
    provenance: &Provenance,
) -> Result<(), RecordError> {
    let request = Appointment {
        start: String::new(),
        reason: reason.to_owned(),
        status: crate::status::AppointmentStatus::Proposed,
        provenance: provenance.clone(),
        status_reason: None,
        status_by: None,
        status_at: None,
        preferred: (!preferred.is_empty()).then(|| preferred.to_owned()),
    };
    add(doc, id, &request)
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

#[cfg(test)]
mod tests {
    use automerge::transaction::{CommitOptions, Transaction};
    use automerge::{ActorId, Automerge, ObjType, ReadDoc};

    use super::*;
    use crate::ids::ClinicId;
    use crate::status::*;

    /// Writes `entry` by hand and by autosurgeon's derived `Reconcile` into
    /// the same document, as the same actor at the same time: the saved
    /// bytes are the same, so the operations are.
    fn same_as_reconcile<E: Entry + autosurgeon::Reconcile>(entry: &E) {
        let mut base = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        let mut tx = base.transaction();
        tx.put_object(ROOT, E::COLLECTION.code(), ObjType::Map).unwrap();
        tx.commit_with(CommitOptions::default().with_time(0));
        let id = EntryId::mint();
        let write = |how: &dyn Fn(&mut Transaction<'_>)| {
            let mut doc = base.fork().with_actor(ActorId::from([2u8; 16]));
            let mut tx = doc.transaction();
            how(&mut tx);
            tx.commit_with(CommitOptions::default().with_time(0));
            doc.save()
        };
        let by_hand = write(&|tx| add(tx, id, entry).unwrap());
        let derived = write(&|tx| {
            let coll = tx.get(ROOT, E::COLLECTION.code()).unwrap().unwrap().1;
            autosurgeon::reconcile_prop(tx, coll, id.to_string().as_str(), entry).unwrap();
        });
        assert_eq!(by_hand, derived, "{}", E::COLLECTION.code());
        let read: E = get(&Automerge::load(&by_hand).unwrap(), id).expect("reads back");
        let again = write(&|tx| add(tx, id, &read).unwrap());
        assert_eq!(again, by_hand, "{} reads back as written", E::COLLECTION.code());
    }

    fn provenance() -> Provenance {
        Provenance {
            clinic: ClinicId::mint(),
            clinic_name: "Riverside".into(),
            recorder: UserId::mint(),
            recorder_name: "Dr. Okafor".into(),
            recorded: "2026-12-04T10:00:00Z".into(),
        }
    }

    #[test]
    fn entries_are_written_as_autosurgeon_would() {
        let (some, none) = (Some("why".to_owned()), None::<String>);
        let by = Some(UserId::mint());
        for (reason, who) in [(some.clone(), by), (none.clone(), None)] {
            let at = reason.clone();
            same_as_reconcile(&Report {
                loinc: "24323-8".into(),
                display: "Panel".into(),
                effective: "2026-12-01".into(),
                status: ResultStatus::Final,
                provenance: provenance(),
                status_reason: reason.clone(),
                status_by: who,
                status_at: at.clone(),
            });
            for value in [Some(5.5), None] {
                same_as_reconcile(&Observation {
                    report: who.map(|_| EntryId::mint()),
                    loinc: "2823-3".into(),
                    display: "Potassium".into(),
                    value_quantity: value,
                    value_string: value.is_none().then(|| "negative".into()),
                    unit: value.map(|_| "mmol/L".into()),
                    reference_low: value.map(|_| 3.5),
                    reference_high: Some(5.1),
                    effective: "2026-12-01".into(),
                    status: ResultStatus::Amended,
                    replaces: who.map(|_| EntryId::mint()),
                    provenance: provenance(),
                    status_reason: reason.clone(),
                    status_by: who,
                    status_at: at.clone(),
                    interpretation: reason.as_ref().map(|_| "HH".into()),
                });
            }
            same_as_reconcile(&Prescription {
                rxnorm: "197361".into(),
                display: "Amlodipine".into(),
                dosage: "once daily".into(),
                quantity: 30,
                refills_allowed: 3,
                authored: "2026-12-01".into(),
                status: PrescriptionStatus::Active,
                provenance: provenance(),
                status_reason: reason.clone(),
                status_by: who,
                status_at: at.clone(),
                override_reason: reason.clone(),
            });
            same_as_reconcile(&Allergy {
                substance_code: "7980".into(),
                substance: "Penicillin".into(),
                reaction: "Hives".into(),
                severity: Severity::Moderate,
                status: AllergyStatus::Active,
                provenance: provenance(),
                status_reason: reason.clone(),
                status_by: who,
                status_at: at.clone(),
            });
            same_as_reconcile(&Immunization {
                cvx: "140".into(),
                vaccine: "Influenza".into(),
                occurrence: "2026-10-01".into(),
                status: ImmunizationStatus::Completed,
                provenance: provenance(),
                status_reason: reason.clone(),
                status_by: who,
                status_at: at.clone(),
            });
            same_as_reconcile(&Appointment {
                start: "2026-12-10T09:00:00Z".into(),
                reason: "Check-up".into(),
                status: AppointmentStatus::Booked,
                provenance: provenance(),
                status_reason: reason.clone(),
                status_by: who,
                status_at: at.clone(),
                preferred: reason.clone(),
            });
            same_as_reconcile(&RefillRequest {
                prescription: EntryId::mint(),
                clinic: ClinicId::mint(),
                requested_by: UserId::mint(),
                requested_at: "2026-12-01".into(),
                note: "".into(),
                status: RefillStatus::Requested,
                decided_by: who,
                decided_at: at.clone(),
                decision_note: reason.clone(),
            });
            same_as_reconcile(&Message {
                author: UserId::mint(),
                author_name: "Maria".into(),
                side: Side::Patient,
                sent_at: "2026-12-01".into(),
                body: "Hello".into(),
                read_at: at.clone(),
                read_by: who,
                topic: reason.clone(),
                in_response_to: Some(EntryId::mint()),
                about: None,
            });
            same_as_reconcile(&Task {
                focus: EntryId::mint(),
                focus_kind: Collection::Messages,
                status: TaskStatus::InProgress,
                owner: who,
                owner_name: reason.clone(),
                provenance: provenance(),
                status_by: who,
                status_at: at.clone(),
            });
        }
    }
}
