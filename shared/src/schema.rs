//! The record schema: how a patient's record is split into Automerge
//! documents, and the typed entries each one holds.
//!
//! A record is split by who writes it, because Automerge permissions apply to
//! whole documents and the write policy checks the rest on the diff:
//! - one `ClinicalRecord` per patient and clinic: what that clinic's staff
//!   record (results, prescriptions, allergies, immunizations, appointments);
//! - one `PatientRecord` per patient: demographics and refill requests, written
//!   by the patient (and answered by the clinic the request is addressed to);
//! - one `MessageThread` per patient and clinic.
//!
//! Collections are maps keyed by entry id, never lists: concurrent inserts
//! from many offline devices then never conflict, and an entry is addressed by
//! the same path on every replica. Field names follow FHIR R4 (flattened).

use crate::vec_map::VecMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, Value};
use autosurgeon::{Hydrate, HydrateError, ReadDoc, Reconcile};
use serde::{Deserialize, Serialize};

use crate::hydrate::Fields;
use crate::ids::{ClinicId, DocId, EntryId, PatientId, UserId};
use crate::status::{
    AllergyStatus, AppointmentStatus, ImmunizationStatus, PrescriptionStatus, RefillStatus,
    ResultStatus, Severity, Side, TaskStatus,
};

/// Version of the document layout, stored at the root of every document.
pub const SCHEMA_VERSION: i64 = 1;

/// What an Automerge document holds, and therefore who may read and write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DocKind {
    ClinicalRecord { patient: PatientId, clinic: ClinicId },
    PatientRecord { patient: PatientId },
    MessageThread { patient: PatientId, clinic: ClinicId },
}

impl DocKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClinicalRecord { .. } => "clinical_record",
            Self::PatientRecord { .. } => "patient_record",
            Self::MessageThread { .. } => "message_thread",
        }
    }

    pub fn patient(&self) -> PatientId {
        match *self {
            Self::ClinicalRecord { patient, .. }
            | Self::PatientRecord { patient }
            | Self::MessageThread { patient, .. } => patient,
        }
    }

    pub fn clinic(&self) -> Option<ClinicId> {
        match *self {
            Self::ClinicalRecord { clinic, .. } | Self::MessageThread { clinic, .. } => {
                Some(clinic)
            }
            Self::PatientRecord { .. } => None,
        }
    }

    /// The kind named `name` (as [`DocKind::name`] gives it), if the clinic
    /// is there exactly when that kind has one.
    pub fn from_parts(name: &str, patient: PatientId, clinic: Option<ClinicId>) -> Option<DocKind> {
        match (name, clinic) {
            ("clinical_record", Some(clinic)) => Some(Self::ClinicalRecord { patient, clinic }),
            ("message_thread", Some(clinic)) => Some(Self::MessageThread { patient, clinic }),
            ("patient_record", None) => Some(Self::PatientRecord { patient }),
            _ => None,
        }
    }

    /// The document's id, the same on every replica.
    pub fn doc_id(&self) -> DocId {
        match self.clinic() {
            Some(clinic) => {
                DocId::derive(&format!("{}/{}/{}", self.name(), self.patient(), clinic))
            }
            None => DocId::derive(&format!("{}/{}", self.name(), self.patient())),
        }
    }

    /// The collections of entries at the root of this kind of document.
    pub fn collections(&self) -> &'static [Collection] {
        match self {
            Self::ClinicalRecord { .. } => &Collection::CLINICAL,
            Self::PatientRecord { .. } => &[Collection::RefillRequests],
            Self::MessageThread { .. } => &[Collection::Messages, Collection::Tasks],
        }
    }

    /// The collections the genesis change makes: all of them but the ones
    /// added later by a change of their own ([`DocKind::tasks_change`]), since
    /// the genesis change of documents that exist cannot change.
    fn genesis_collections(&self) -> &'static [Collection] {
        match self {
            Self::MessageThread { .. } => &[Collection::Messages],
            _ => self.collections(),
        }
    }

    /// The actor of [`DocKind::tasks_change`], the same on every replica.
    pub fn tasks_actor(&self) -> ActorId {
        let id = DocId::derive(&format!("tasks/{}", self.doc_id()));
        ActorId::from(id.as_uuid().as_bytes().as_slice())
    }

    /// The change that adds the `tasks` collection to a message thread
    /// (issue 14's work queue came after threads existed). Like the genesis
    /// change it is deterministic (fixed actor, time, content and
    /// dependencies: the genesis), so every device that adds it makes the
    /// same change and no two `tasks` maps ever conflict; the write policy
    /// accepts exactly this change from anyone who may write the thread.
    pub fn tasks_change(&self) -> Option<automerge::Change> {
        if !matches!(self, Self::MessageThread { .. }) {
            return None;
        }
        let mut doc = self.genesis().with_actor(self.tasks_actor());
        let mut tx = doc.transaction();
        tx.put_object(ROOT, Collection::Tasks.code(), ObjType::Map).expect("fresh document");
        tx.commit_with(CommitOptions::default().with_time(0));
        doc.get_last_local_change()
    }

    /// Adds the `tasks` collection to `doc` if this kind has one and the
    /// document lacks it; whether it added it.
    pub fn add_tasks_collection(&self, doc: &mut Automerge) -> bool {
        let Some(change) = self.tasks_change() else { return false };
        if automerge::ReadDoc::get(doc, ROOT, Collection::Tasks.code()).ok().flatten().is_some() {
            return false;
        }
        doc.apply_changes([change]).is_ok()
    }

    /// Whether this kind of document holds the patient's demographics.
    pub fn has_demographics(&self) -> bool {
        matches!(self, Self::PatientRecord { .. })
    }

    /// The document's first change. It is deterministic (fixed actor, time and
    /// content), so replicas that create it independently create the same
    /// change and never race to create the root collections, which in Automerge
    /// would hide one side's entries behind a conflict.
    pub fn genesis(&self) -> Automerge {
        let actor = ActorId::from(self.doc_id().as_uuid().as_bytes().as_slice());
        let mut doc = Automerge::new().with_actor(actor);
        let mut tx = doc.transaction();
        tx.put(ROOT, "schema", SCHEMA_VERSION).expect("fresh document");
        tx.put(ROOT, "kind", self.name()).expect("fresh document");
        tx.put(ROOT, "patient", self.patient().to_string()).expect("fresh document");
        if let Some(clinic) = self.clinic() {
            tx.put(ROOT, "clinic", clinic.to_string()).expect("fresh document");
        }
        let demographics = self.has_demographics().then_some(DEMOGRAPHICS);
        for name in self.genesis_collections().iter().map(|c| c.code()).chain(demographics) {
            tx.put_object(ROOT, name, ObjType::Map).expect("fresh document");
        }
        tx.commit_with(CommitOptions::default().with_time(0));
        doc
    }
}

crate::status::code_enum!(
    /// A map of entries at the root of a document, keyed by entry id.
    Collection {
        Reports => "reports",
        Observations => "observations",
        Prescriptions => "prescriptions",
        Allergies => "allergies",
        Immunizations => "immunizations",
        Appointments => "appointments",
        RefillRequests => "refill_requests",
        Messages => "messages",
        Tasks => "tasks",
    }
);

impl Collection {
    /// What a clinic records about a patient (`DocKind::ClinicalRecord`).
    pub const CLINICAL: [Collection; 6] = [
        Self::Reports,
        Self::Observations,
        Self::Prescriptions,
        Self::Allergies,
        Self::Immunizations,
        Self::Appointments,
    ];

    /// What one of its entries is called, for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Reports => "Report",
            Self::Observations => "Result",
            Self::Prescriptions => "Prescription",
            Self::Allergies => "Allergy",
            Self::Immunizations => "Immunization",
            Self::Appointments => "Appointment",
            Self::RefillRequests => "Refill request",
            Self::Messages => "Message",
            Self::Tasks => "Work item",
        }
    }

    /// Whether an entry of this collection may go from status `from` to
    /// `to`, codes as stored, when `by` changes it (only appointments
    /// have rules for the patient side); an unknown code allows nothing.
    /// Refill requests and messages are not changed this way (see
    /// `RefillStatus::may_become`).
    pub fn status_may_change(self, from: &str, to: &str, by: Side) -> bool {
        fn parsed<T>(from: &str, to: &str, parse: fn(&str) -> Option<T>) -> Option<(T, T)> {
            Some((parse(from)?, parse(to)?))
        }
        match self {
            Self::Reports | Self::Observations => {
                parsed(from, to, ResultStatus::parse).is_some_and(|(from, to)| from.may_become(to))
            }
            Self::Prescriptions => parsed(from, to, PrescriptionStatus::parse)
                .is_some_and(|(from, to)| from.may_become(to)),
            Self::Allergies => {
                parsed(from, to, AllergyStatus::parse).is_some_and(|(from, to)| from.may_become(to))
            }
            Self::Immunizations => parsed(from, to, ImmunizationStatus::parse)
                .is_some_and(|(from, to)| from.may_become(to)),
            Self::Appointments => parsed(from, to, AppointmentStatus::parse)
                .is_some_and(|(from, to)| from.may_become(to, by)),
            Self::Tasks => {
                parsed(from, to, TaskStatus::parse).is_some_and(|(from, to)| from.may_become(to))
            }
            Self::RefillRequests | Self::Messages => false,
        }
    }
}

/// The map of the patient's demographics at the root of a `PatientRecord`
/// (one map of fields, not a collection of entries).
pub const DEMOGRAPHICS: &str = "demographics";

/// Who recorded an entry, where. Names are kept beside ids (like FHIR
/// `Reference.display`) so an offline replica can show them.
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Provenance {
    pub clinic: ClinicId,
    pub clinic_name: String,
    pub recorder: UserId,
    pub recorder_name: String,
    /// RFC 3339 time the entry was recorded.
    pub recorded: String,
}

/// A lab panel (FHIR DiagnosticReport) grouping observations.
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Report {
    pub loinc: String,
    pub display: String,
    pub effective: String,
    pub status: ResultStatus,
    pub provenance: Provenance,
    /// Why, by whom and when the status last changed (FHIR `statusReason`);
    /// `None` until it first changes.
    pub status_reason: Option<String>,
    pub status_by: Option<UserId>,
    pub status_at: Option<String>,
}

/// One lab result (FHIR Observation).
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Observation {
    /// The report (panel) this result belongs to, if any.
    pub report: Option<EntryId>,
    pub loinc: String,
    pub display: String,
    pub value_quantity: Option<f64>,
    pub value_string: Option<String>,
    /// UCUM unit of `value_quantity`.
    pub unit: Option<String>,
    pub reference_low: Option<f64>,
    pub reference_high: Option<f64>,
    pub effective: String,
    pub status: ResultStatus,
    /// The entry this one corrects (its status is `amended`).
    pub replaces: Option<EntryId>,
    pub provenance: Provenance,
    /// Why, by whom and when the status last changed (FHIR `statusReason`);
    /// `None` until it first changes.
    pub status_reason: Option<String>,
    pub status_by: Option<UserId>,
    pub status_at: Option<String>,
    /// FHIR `interpretation`: `HH` or `LL` when the value is critical
    /// (`safety::judge`), confirmed by the clinician; `None` otherwise.
    /// Entries from before the field exist lack it (read as `None`).
    pub interpretation: Option<String>,
}

/// FHIR `ObservationInterpretation` codes for critical values.
pub const CRITICAL_HIGH: &str = "HH";
pub const CRITICAL_LOW: &str = "LL";

impl Observation {
    /// Whether the value was recorded as critical (high or low).
    pub fn critical(&self) -> Option<RangeFlag> {
        match self.interpretation.as_deref()? {
            CRITICAL_HIGH => Some(RangeFlag::High),
            CRITICAL_LOW => Some(RangeFlag::Low),
            _ => None,
        }
    }

    /// Whether a numeric value lies outside the reference range.
    pub fn out_of_range(&self) -> Option<RangeFlag> {
        let value = self.value_quantity?;
        if self.reference_low.is_some_and(|low| value < low) {
            Some(RangeFlag::Low)
        } else if self.reference_high.is_some_and(|high| value > high) {
            Some(RangeFlag::High)
        } else {
            None
        }
    }
}

/// FHIR interpretation codes L and H.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeFlag {
    Low,
    High,
}

/// A prescription (FHIR MedicationRequest).
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Prescription {
    pub rxnorm: String,
    pub display: String,
    pub dosage: String,
    pub quantity: u32,
    pub refills_allowed: u32,
    pub authored: String,
    pub status: PrescriptionStatus,
    pub provenance: Provenance,
    /// Why, by whom and when the status last changed (FHIR `statusReason`);
    /// `None` until it first changes.
    pub status_reason: Option<String>,
    pub status_by: Option<UserId>,
    pub status_at: Option<String>,
    /// Why the prescriber went ahead despite an allergy or interaction
    /// warning (`safety::needs_reason`); shown wherever the prescription
    /// is. Entries from before the field exist lack it (read as `None`).
    pub override_reason: Option<String>,
}

/// FHIR AllergyIntolerance.
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Allergy {
    /// RxNorm code of the substance, so prescribing can warn on it.
    pub substance_code: String,
    pub substance: String,
    pub reaction: String,
    pub severity: Severity,
    pub status: AllergyStatus,
    pub provenance: Provenance,
    /// Why, by whom and when the status last changed (FHIR `statusReason`);
    /// `None` until it first changes.
    pub status_reason: Option<String>,
    pub status_by: Option<UserId>,
    pub status_at: Option<String>,
}

/// FHIR Immunization.
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Immunization {
    /// CVX vaccine code.
    pub cvx: String,
    pub vaccine: String,
    pub occurrence: String,
    pub status: ImmunizationStatus,
    pub provenance: Provenance,
    /// Why, by whom and when the status last changed (FHIR `statusReason`);
    /// `None` until it first changes.
    pub status_reason: Option<String>,
    pub status_by: Option<UserId>,
    pub status_at: Option<String>,
}

/// FHIR Appointment. A patient side's request is `proposed`, with no
/// `start` (empty) until the clinic gives it one.
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Appointment {
    /// RFC 3339; empty while only requested.
    pub start: String,
    pub reason: String,
    pub status: AppointmentStatus,
    pub provenance: Provenance,
    /// Why, by whom and when the status last changed (FHIR `statusReason`);
    /// `None` until it first changes.
    pub status_reason: Option<String>,
    pub status_by: Option<UserId>,
    pub status_at: Option<String>,
    /// When the patient side would like to come, in their words (a
    /// request's). Entries from before the field exist lack it.
    pub preferred: Option<String>,
}

/// Hydrates a collection of entries. Automerge lists map keys in order, so
/// each entry is pushed onto the [`VecMap`]: no sort, and no `BTreeMap` code
/// (autosurgeon's own `collect()` into a `BTreeMap` sorts, and each entry
/// type then carried its own copy of the sort and of the tree into the WASM
/// bundle).
pub(crate) fn hydrate_entries<D: ReadDoc, T: Hydrate>(
    doc: &D,
    obj: &ObjId,
    prop: autosurgeon::Prop<'_>,
) -> Result<VecMap<String, T>, HydrateError> {
    let Some((Value::Object(ObjType::Map), map)) = doc.get(obj, &prop)? else {
        return Err(HydrateError::unexpected("a map of entries", "something else".to_owned()));
    };
    let mut entries = VecMap::new();
    for item in doc.map_range(&map, ..) {
        let entry = T::hydrate(doc, &map, item.key.as_ref().into())?;
        entries.insert(item.key.into_owned(), entry);
    }
    Ok(entries)
}

/// What one clinic recorded about one patient.
#[derive(Clone, Debug, Default, PartialEq, Reconcile, Hydrate)]
pub struct ClinicalRecord {
    #[autosurgeon(hydrate = "hydrate_entries")]
    pub reports: VecMap<String, Report>,
    #[autosurgeon(hydrate = "hydrate_entries")]
    pub observations: VecMap<String, Observation>,
    #[autosurgeon(hydrate = "hydrate_entries")]
    pub prescriptions: VecMap<String, Prescription>,
    #[autosurgeon(hydrate = "hydrate_entries")]
    pub allergies: VecMap<String, Allergy>,
    #[autosurgeon(hydrate = "hydrate_entries")]
    pub immunizations: VecMap<String, Immunization>,
    #[autosurgeon(hydrate = "hydrate_entries")]
    pub appointments: VecMap<String, Appointment>,
}

/// FHIR Patient, as far as the portal keeps it.
#[derive(Clone, Debug, Default, PartialEq, Reconcile)]
pub struct Demographics {
    // Genesis creates an empty map: every field may be missing until
    // written (read as `None`).
    pub family: Option<String>,
    pub given: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A patient's request to refill a prescription, answered by its clinic.
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct RefillRequest {
    pub prescription: EntryId,
    pub clinic: ClinicId,
    pub requested_by: UserId,
    pub requested_at: String,
    pub note: String,
    pub status: RefillStatus,
    pub decided_by: Option<UserId>,
    pub decided_at: Option<String>,
    pub decision_note: Option<String>,
}

/// What the patient writes.
#[derive(Clone, Debug, Default, PartialEq, Reconcile, Hydrate)]
pub struct PatientRecord {
    pub demographics: Demographics,
    #[autosurgeon(hydrate = "hydrate_entries")]
    pub refill_requests: VecMap<String, RefillRequest>,
}

/// One message between a patient (or caregiver) and a clinic (FHIR
/// Communication). A thread holds many conversations: the first message of
/// one has a `topic` (its subject, perhaps empty), and each reply names that
/// first message (`in_response_to`). Messages written before conversations
/// existed have neither, and read as one conversation of their own.
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Message {
    pub author: UserId,
    pub author_name: String,
    pub side: Side,
    pub sent_at: String,
    pub body: String,
    /// Set once, by someone on the other side, when they first read it.
    pub read_at: Option<String>,
    pub read_by: Option<UserId>,
    /// The subject, on the first message of a conversation only.
    pub topic: Option<String>,
    /// The first message of the conversation this one answers.
    pub in_response_to: Option<EntryId>,
    /// The result (observation or report) a conversation is about, on its
    /// first message: a clinician's comment on a result, or a question
    /// about one. It is shown with that result.
    pub about: Option<EntryId>,
}

impl Message {
    /// A message nobody has read yet, outside any conversation: a reply or
    /// a first message sets `in_response_to`, or `topic` and `about`.
    pub fn new(
        author: UserId,
        author_name: impl Into<String>,
        side: Side,
        sent_at: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            author,
            author_name: author_name.into(),
            side,
            sent_at: sent_at.into(),
            body: body.into(),
            read_at: None,
            read_by: None,
            topic: None,
            in_response_to: None,
            about: None,
        }
    }

    /// The conversation this message belongs to: the id of its first
    /// message, or none for messages from before conversations.
    pub fn conversation(&self, id: &str) -> Option<String> {
        match (self.in_response_to, &self.topic) {
            (Some(first), _) => Some(first.to_string()),
            (None, Some(_)) => Some(id.to_owned()),
            (None, None) => None,
        }
    }
}

/// A piece of the clinic's work about one entry (FHIR Task): a message to
/// read, a refill request to answer, a result to look at. Written only by
/// the clinic's providers; the patient side never sees it in its views.
#[derive(Clone, Debug, PartialEq, Reconcile)]
pub struct Task {
    /// The entry the work is about (FHIR `Task.focus`), in this thread, the
    /// patient record (a refill request) or a clinical record (a result).
    pub focus: EntryId,
    /// Its collection: messages, refill_requests, reports, observations or appointments.
    pub focus_kind: Collection,
    pub status: TaskStatus,
    /// The colleague (a provider of the clinic) it is assigned to, with
    /// the directory's name.
    pub owner: Option<UserId>,
    pub owner_name: Option<String>,
    pub provenance: Provenance,
    /// Who last changed the status or the owner, and when.
    pub status_by: Option<UserId>,
    pub status_at: Option<String>,
}

/// A patient's conversation with one clinic, and the clinic's work items.
#[derive(Clone, Debug, Default, PartialEq, Reconcile, Hydrate)]
pub struct MessageThread {
    #[autosurgeon(hydrate = "hydrate_entries")]
    pub messages: VecMap<String, Message>,
    /// Missing in threads made before work items existed, until a provider
    /// adds the collection (`DocKind::tasks_change`).
    #[autosurgeon(hydrate = "hydrate_optional_entries")]
    pub tasks: VecMap<String, Task>,
}

impl MessageThread {
    /// Whether the clinic marked the work on `focus` handled: a completed
    /// task for it exists. Two devices may each have made a task for the
    /// same entry offline; one completed is enough, and the rest are moot.
    pub fn handled(&self, focus: EntryId) -> bool {
        self.tasks.values().any(|t| t.focus == focus && t.status == TaskStatus::Completed)
    }

    /// The open task on `focus`, which says whom it is assigned to: of
    /// concurrent ones, the one changed last (then the greatest id).
    pub fn open_task(&self, focus: EntryId) -> Option<(&str, &Task)> {
        let mut best: Option<(&str, &Task)> = None;
        for (id, task) in &self.tasks {
            if task.focus != focus || task.status == TaskStatus::Completed {
                continue;
            }
            let at =
                |t: &Task| t.status_at.clone().unwrap_or_else(|| t.provenance.recorded.clone());
            if best.is_none_or(|(_, b)| at(task) >= at(b)) {
                best = Some((id, task));
            }
        }
        best
    }

    /// Messages from the patient side the clinic has not answered: those
    /// sent after the clinic's last message in the same conversation. A
    /// reply answers them; reading one does not (it shows who read it),
    /// nor does the clinic writing in another conversation.
    pub fn unanswered(&self) -> Vec<(&str, &Message)> {
        let last_reply = |conversation: &Option<String>| {
            self.messages
                .iter()
                .filter(|(id, m)| m.side == Side::Clinic && m.conversation(id) == *conversation)
                .map(|(_, m)| m.sent_at.as_str())
                .max()
                .unwrap_or("")
        };
        self.messages
            .iter()
            .filter(|(id, m)| {
                m.side == Side::Patient && m.sent_at.as_str() > last_reply(&m.conversation(id))
            })
            .map(|(id, m)| (id.as_str(), m))
            .collect()
    }
}

/// [`hydrate_entries`], or none if the collection is not there yet.
pub(crate) fn hydrate_optional_entries<D: ReadDoc, T: Hydrate>(
    doc: &D,
    obj: &ObjId,
    prop: autosurgeon::Prop<'_>,
) -> Result<VecMap<String, T>, HydrateError> {
    if doc.get(obj, &prop)?.is_none() {
        return Ok(VecMap::new());
    }
    hydrate_entries(doc, obj, prop)
}

// Hydration by hand (`crate::hydrate`): one copy of the field reads for
// every entry type, instead of autosurgeon's derived copy per type and per
// document type. Each field is read as its type above declares it; the
// fields older entries may lack are the `late_*` reads.
crate::hydrate::hydrate_by_hand! {
    Provenance => provenance,
    Report => report,
    Observation => observation,
    Prescription => prescription,
    Allergy => allergy,
    Immunization => immunization,
    Appointment => appointment,
    Demographics => demographics,
    RefillRequest => refill_request,
    Message => message,
    Task => task,
}

fn provenance(r: &mut Fields<'_>) -> Provenance {
    Provenance {
        clinic: ClinicId::from_uuid(r.id("clinic")),
        clinic_name: r.text("clinic_name"),
        recorder: UserId::from_uuid(r.id("recorder")),
        recorder_name: r.text("recorder_name"),
        recorded: r.text("recorded"),
    }
}

fn report(r: &mut Fields<'_>) -> Report {
    Report {
        loinc: r.text("loinc"),
        display: r.text("display"),
        effective: r.text("effective"),
        status: r.code("status", ResultStatus::parse, ResultStatus::Final),
        provenance: r.map("provenance", provenance),
        status_reason: r.opt_text("status_reason"),
        status_by: r.opt_id("status_by").map(UserId::from_uuid),
        status_at: r.opt_text("status_at"),
    }
}

fn observation(r: &mut Fields<'_>) -> Observation {
    Observation {
        report: r.opt_id("report").map(EntryId::from_uuid),
        loinc: r.text("loinc"),
        display: r.text("display"),
        value_quantity: r.opt_number("value_quantity"),
        value_string: r.opt_text("value_string"),
        unit: r.opt_text("unit"),
        reference_low: r.opt_number("reference_low"),
        reference_high: r.opt_number("reference_high"),
        effective: r.text("effective"),
        status: r.code("status", ResultStatus::parse, ResultStatus::Final),
        replaces: r.opt_id("replaces").map(EntryId::from_uuid),
        provenance: r.map("provenance", provenance),
        status_reason: r.opt_text("status_reason"),
        status_by: r.opt_id("status_by").map(UserId::from_uuid),
        status_at: r.opt_text("status_at"),
        interpretation: r.late_text("interpretation"),
    }
}

fn prescription(r: &mut Fields<'_>) -> Prescription {
    Prescription {
        rxnorm: r.text("rxnorm"),
        display: r.text("display"),
        dosage: r.text("dosage"),
        quantity: r.count("quantity"),
        refills_allowed: r.count("refills_allowed"),
        authored: r.text("authored"),
        status: r.code("status", PrescriptionStatus::parse, PrescriptionStatus::Active),
        provenance: r.map("provenance", provenance),
        status_reason: r.opt_text("status_reason"),
        status_by: r.opt_id("status_by").map(UserId::from_uuid),
        status_at: r.opt_text("status_at"),
        override_reason: r.late_text("override_reason"),
    }
}

fn allergy(r: &mut Fields<'_>) -> Allergy {
    Allergy {
        substance_code: r.text("substance_code"),
        substance: r.text("substance"),
        reaction: r.text("reaction"),
        severity: r.code("severity", Severity::parse, Severity::ALL[0]),
        status: r.code("status", AllergyStatus::parse, AllergyStatus::ALL[0]),
        provenance: r.map("provenance", provenance),
        status_reason: r.opt_text("status_reason"),
        status_by: r.opt_id("status_by").map(UserId::from_uuid),
        status_at: r.opt_text("status_at"),
    }
}

fn immunization(r: &mut Fields<'_>) -> Immunization {
    Immunization {
        cvx: r.text("cvx"),
        vaccine: r.text("vaccine"),
        occurrence: r.text("occurrence"),
        status: r.code("status", ImmunizationStatus::parse, ImmunizationStatus::ALL[0]),
        provenance: r.map("provenance", provenance),
        status_reason: r.opt_text("status_reason"),
        status_by: r.opt_id("status_by").map(UserId::from_uuid),
        status_at: r.opt_text("status_at"),
    }
}

fn appointment(r: &mut Fields<'_>) -> Appointment {
    Appointment {
        start: r.text("start"),
        reason: r.text("reason"),
        status: r.code("status", AppointmentStatus::parse, AppointmentStatus::ALL[0]),
        provenance: r.map("provenance", provenance),
        status_reason: r.opt_text("status_reason"),
        status_by: r.opt_id("status_by").map(UserId::from_uuid),
        status_at: r.opt_text("status_at"),
        preferred: r.late_text("preferred"),
    }
}

fn demographics(r: &mut Fields<'_>) -> Demographics {
    Demographics {
        family: r.late_text("family"),
        given: r.late_text("given"),
        birth_date: r.late_text("birth_date"),
        phone: r.late_text("phone"),
        email: r.late_text("email"),
    }
}

fn refill_request(r: &mut Fields<'_>) -> RefillRequest {
    RefillRequest {
        prescription: EntryId::from_uuid(r.id("prescription")),
        clinic: ClinicId::from_uuid(r.id("clinic")),
        requested_by: UserId::from_uuid(r.id("requested_by")),
        requested_at: r.text("requested_at"),
        note: r.text("note"),
        status: r.code("status", RefillStatus::parse, RefillStatus::ALL[0]),
        decided_by: r.opt_id("decided_by").map(UserId::from_uuid),
        decided_at: r.opt_text("decided_at"),
        decision_note: r.opt_text("decision_note"),
    }
}

fn task(r: &mut Fields<'_>) -> Task {
    Task {
        focus: EntryId::from_uuid(r.id("focus")),
        focus_kind: r.code("focus_kind", Collection::parse, Collection::ALL[0]),
        status: r.code("status", TaskStatus::parse, TaskStatus::ALL[0]),
        owner: r.opt_id("owner").map(UserId::from_uuid),
        owner_name: r.opt_text("owner_name"),
        provenance: r.map("provenance", provenance),
        status_by: r.opt_id("status_by").map(UserId::from_uuid),
        status_at: r.opt_text("status_at"),
    }
}

fn message(r: &mut Fields<'_>) -> Message {
    Message {
        author: UserId::from_uuid(r.id("author")),
        author_name: r.text("author_name"),
        side: r.code("side", Side::parse, Side::ALL[0]),
        sent_at: r.text("sent_at"),
        body: r.text("body"),
        read_at: r.opt_text("read_at"),
        read_by: r.opt_id("read_by").map(UserId::from_uuid),
        topic: r.late_text("topic"),
        in_response_to: r.late_id("in_response_to").map(EntryId::from_uuid),
        about: r.late_id("about").map(EntryId::from_uuid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_identical_on_every_replica() {
        let kind = DocKind::ClinicalRecord { patient: PatientId::mint(), clinic: ClinicId::mint() };
        assert_eq!(kind.genesis().get_heads(), kind.genesis().get_heads());
        let record: ClinicalRecord = autosurgeon::hydrate(&kind.genesis()).unwrap();
        assert_eq!(record, ClinicalRecord::default());
        let patient: PatientRecord =
            autosurgeon::hydrate(&DocKind::PatientRecord { patient: PatientId::mint() }.genesis())
                .unwrap();
        assert_eq!(patient, PatientRecord::default());
    }

    #[test]
    fn a_message_is_answered_only_within_its_conversation() {
        let (patient, clinic) = (UserId::mint(), UserId::mint());
        let mut thread = MessageThread::default();
        fn add(thread: &mut MessageThread, id: EntryId, m: Message) {
            thread.messages.insert(id.to_string(), m);
        }
        let (knee, travel) = (EntryId::mint(), EntryId::mint());
        let first = |topic: &str, at: &str| Message {
            topic: Some(topic.into()),
            ..Message::new(patient, "Maria", Side::Patient, at, "?")
        };
        add(&mut thread, knee, first("Knee", "2026-01-01T10:00:00Z"));
        add(&mut thread, travel, first("Travel", "2026-01-02T10:00:00Z"));
        let reply = |to: EntryId, side: Side, at: &str| Message {
            in_response_to: Some(to),
            ..Message::new(if side == Side::Patient { patient } else { clinic }, "", side, at, "!")
        };
        // The clinic answers the knee question after both were asked...
        add(&mut thread, EntryId::mint(), reply(knee, Side::Clinic, "2026-01-03T10:00:00Z"));
        // ...and comments on a result, a conversation of its own.
        let comment = Message {
            topic: Some("Your LDL".into()),
            ..Message::new(clinic, "Dr", Side::Clinic, "2026-01-04T10:00:00Z", "Good")
        };
        add(&mut thread, EntryId::mint(), comment);
        let open: Vec<&str> = thread.unanswered().iter().map(|(id, _)| *id).collect();
        assert_eq!(open, [travel.to_string()]);
        // A new question on the knee is open again.
        let again = EntryId::mint();
        add(&mut thread, again, reply(knee, Side::Patient, "2026-01-05T10:00:00Z"));
        let mut open: Vec<String> =
            thread.unanswered().iter().map(|(id, _)| id.to_string()).collect();
        open.sort();
        let mut expected = vec![travel.to_string(), again.to_string()];
        expected.sort();
        assert_eq!(open, expected);
    }

    #[test]
    fn document_ids_differ_by_kind_patient_and_clinic() {
        let patient = PatientId::mint();
        let clinic = ClinicId::mint();
        let ids = [
            DocKind::ClinicalRecord { patient, clinic }.doc_id(),
            DocKind::MessageThread { patient, clinic }.doc_id(),
            DocKind::PatientRecord { patient }.doc_id(),
            DocKind::ClinicalRecord { patient, clinic: ClinicId::mint() }.doc_id(),
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
