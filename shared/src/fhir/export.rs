//! Entries to FHIR resources, and a patient's whole record to a Bundle.
//!
//! A refill request becomes a `Task` whose `focus` is the prescription's
//! `MedicationRequest`, `for` the patient and `owner` the clinic asked.
//! Not a new `MedicationRequest` (intent `proposal`): the patient asks the
//! clinic to act on an order that exists, with a lifecycle of its own
//! (requested, then accepted, rejected or cancelled) and a requester who
//! is not a prescriber; a second MedicationRequest would copy the order's
//! medication and dosage and read as a new prescription to anyone
//! counting orders. FHIR's workflow module models exactly this as a
//! fulfilment `Task` on the request.

use crate::vec_map::VecMap;

use super::json::Value;
use super::{
    ALLERGY_CLINICAL, ALLERGY_VERIFICATION, CVX, DATA_ABSENT_REASON, DATA_OPERATION,
    DIAGNOSTIC_SERVICE, INTERPRETATION, LOINC, OBSERVATION_CATEGORY, PARTICIPANT_TYPE, RXNORM,
    TASK_CODE, UCUM, URI, US_CORE, resource_id, urn,
};
use crate::ids::{ClinicId, DocId, PatientId, UserId};
use crate::schema::{
    Allergy, Appointment, ClinicalRecord, DocKind, Immunization, Message, MessageThread,
    Observation, PatientRecord, Prescription, Provenance, RangeFlag, RefillRequest, Report,
};
use crate::status::{AllergyStatus, RefillStatus, Side};

/// Everything of one patient's record that is exported: what each of
/// their documents holds, and the names of the clinics involved.
#[derive(Clone, Debug, PartialEq)]
pub struct PatientData {
    pub patient: PatientId,
    /// The patient's own document (demographics, refill requests).
    pub own: PatientRecord,
    pub clinical: VecMap<ClinicId, ClinicalRecord>,
    pub threads: VecMap<ClinicId, MessageThread>,
    /// Clinic names as the directory has them (threads and requests name
    /// clinics by id only).
    pub clinic_names: VecMap<ClinicId, String>,
}

/// Where an entry comes from.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    doc: DocId,
    patient: PatientId,
    /// The clinic of the document, with its name; `None` for the patient's own.
    clinic: Option<(ClinicId, &'a str)>,
}

impl Ctx<'_> {
    fn meta(&self, profile: Option<&str>) -> Value {
        let source = match self.clinic {
            Some((clinic, _)) => urn(clinic),
            None => urn(self.patient),
        };
        let mut meta = Value::object([("source", source.into())]);
        meta.set_some(
            "profile",
            profile.map(|p| vec![Value::String(format!("{US_CORE}{p}"))].into()),
        );
        meta
    }

    fn id(&self, entry: &str) -> String {
        resource_id(self.doc, entry)
    }

    fn reference(&self, resource_type: &str, entry: &str) -> String {
        format!("{resource_type}/{}", self.id(entry))
    }

    fn organization(&self) -> Option<Value> {
        self.clinic.map(|(clinic, name)| organization_ref(clinic, name))
    }
}

/// A text element, left out when empty (FHIR has no empty strings).
fn text(s: &str) -> Option<Value> {
    (!s.is_empty()).then(|| Value::str(s))
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    let mut c = Value::object([("system", system.into()), ("code", code.into())]);
    c.set_some("display", text(display));
    c
}

/// A CodeableConcept of one coding, with `display` also as its text.
fn concept(system: &str, code: &str, display: &str) -> Value {
    let mut c = Value::object([("coding", vec![coding(system, code, display)].into())]);
    c.set_some("text", text(display));
    c
}

/// A CodeableConcept of text only.
fn text_concept(s: &str) -> Option<Value> {
    text(s).map(|t| Value::object([("text", t)]))
}

fn identifier(entry: &str) -> Value {
    vec![Value::object([("system", URI.into()), ("value", urn(entry).into())])].into()
}

fn reference(target: String, display: &str) -> Value {
    let mut r = Value::object([("reference", target.into())]);
    r.set_some("display", text(display));
    r
}

fn patient_ref(patient: PatientId) -> Value {
    reference(format!("Patient/{patient}"), "")
}

fn organization_ref(clinic: ClinicId, name: &str) -> Value {
    reference(format!("Organization/{clinic}"), name)
}

/// A member of a clinic's staff.
fn staff_ref(user: UserId, name: &str) -> Value {
    reference(format!("Practitioner/{user}"), name)
}

/// A person on `side` of the record: staff are Practitioners; the patient
/// and caregivers are named by identifier (a portal user is no resource).
fn person_ref(side: Side, user: UserId, name: &str) -> Value {
    match side {
        Side::Clinic => staff_ref(user, name),
        Side::Patient => {
            let mut r = Value::object([(
                "identifier",
                Value::object([("system", URI.into()), ("value", urn(user).into())]),
            )]);
            r.set_some("display", text(name));
            r
        }
    }
}

/// The `_element` of a primitive that has no value, saying why with HL7's
/// data-absent-reason extension (`unknown`, `asked-unknown`, ...).
fn absent(reason: &str) -> Value {
    Value::object([(
        "extension",
        vec![Value::object([("url", DATA_ABSENT_REASON.into()), ("valueCode", reason.into())])]
            .into(),
    )])
}

/// A quantity in UCUM (or unitless when the entry has no unit).
fn quantity(value: f64, unit: Option<&str>) -> Value {
    let mut q = Value::object([("value", value.into())]);
    if let Some(unit) = unit.filter(|u| !u.is_empty()) {
        q.set("unit", unit.into());
        q.set("system", UCUM.into());
        q.set("code", unit.into());
    }
    q
}

/// The `Provenance` of an entry's recording.
fn recorded(
    ctx: &Ctx<'_>,
    entry: &str,
    target: String,
    p: &Provenance,
    revision_of: Option<String>,
) -> Value {
    let agent = Value::object([
        ("type", concept(PARTICIPANT_TYPE, "author", "Author")),
        ("who", staff_ref(p.recorder, &p.recorder_name)),
        ("onBehalfOf", organization_ref(p.clinic, &p.clinic_name)),
    ]);
    let mut v = provenance(ctx, entry, "recorded", target, &p.recorded, "CREATE", agent);
    v.set_some(
        "entity",
        revision_of.map(|what| {
            vec![Value::object([
                ("role", "revision".into()),
                ("what", Value::object([("reference", what.into())])),
            ])]
            .into()
        }),
    );
    v
}

/// A `Provenance` of `what` happened to an entry (`suffix` tells them apart).
fn provenance(
    ctx: &Ctx<'_>,
    entry: &str,
    suffix: &str,
    target: String,
    at: &str,
    activity: &str,
    agent: Value,
) -> Value {
    Value::object([
        ("resourceType", "Provenance".into()),
        ("id", ctx.id(&format!("{entry}/{suffix}")).into()),
        ("meta", ctx.meta(Some("us-core-provenance"))),
        ("target", vec![Value::object([("reference", target.into())])].into()),
        ("recorded", at.into()),
        ("activity", concept(DATA_OPERATION, activity, "")),
        ("agent", vec![agent].into()),
    ])
}

/// The `Provenance` of an entry's last status change, if it changed.
fn status_changed(
    ctx: &Ctx<'_>,
    entry: &str,
    target: String,
    entered_in_error: bool,
    by: Option<UserId>,
    at: Option<&str>,
    reason: Option<&str>,
) -> Option<Value> {
    let (by, at) = (by?, at?);
    let mut agent = Value::object([
        ("type", concept(PARTICIPANT_TYPE, "author", "Author")),
        ("who", staff_ref(by, "")),
    ]);
    agent.set_some("onBehalfOf", ctx.organization());
    let activity = if entered_in_error { "NULLIFY" } else { "UPDATE" };
    let mut v = provenance(ctx, entry, "status", target, at, activity, agent);
    v.set_some("reason", reason.and_then(text_concept).map(|r| vec![r].into()));
    Some(v)
}

const EIE: &str = "entered-in-error";

/// One entry's resource and its `Provenance` resources.
struct Out<'v> {
    resources: &'v mut Vec<Value>,
    provenance: &'v mut Vec<Value>,
}

macro_rules! status_provenance {
    ($out:expr, $ctx:expr, $id:expr, $target:expr, $e:expr) => {
        if let Some(p) = status_changed(
            $ctx,
            $id,
            $target,
            $e.status.code() == EIE,
            $e.status_by,
            $e.status_at.as_deref(),
            $e.status_reason.as_deref(),
        ) {
            $out.provenance.push(p);
        }
    };
}

fn report(out: &mut Out<'_>, ctx: &Ctx<'_>, id: &str, r: &Report, results: Vec<Value>) {
    let target = ctx.reference("DiagnosticReport", id);
    let mut v = Value::object([
        ("resourceType", "DiagnosticReport".into()),
        ("id", ctx.id(id).into()),
        ("meta", ctx.meta(Some("us-core-diagnosticreport-lab"))),
        ("identifier", identifier(id)),
        ("status", r.status.code().into()),
        ("category", vec![concept(DIAGNOSTIC_SERVICE, "LAB", "Laboratory")].into()),
        ("code", concept(LOINC, &r.loinc, &r.display)),
        ("subject", patient_ref(ctx.patient)),
        ("effectiveDateTime", r.effective.as_str().into()),
        ("issued", r.provenance.recorded.as_str().into()),
        ("performer", performers(&r.provenance)),
    ]);
    if !results.is_empty() {
        v.set("result", results.into());
    }
    out.resources.push(v);
    out.provenance.push(recorded(ctx, id, target.clone(), &r.provenance, None));
    status_provenance!(out, ctx, id, target, r);
}

/// The clinic, then the person who recorded the entry.
fn performers(p: &Provenance) -> Value {
    vec![organization_ref(p.clinic, &p.clinic_name), staff_ref(p.recorder, &p.recorder_name)].into()
}

fn observation(out: &mut Out<'_>, ctx: &Ctx<'_>, id: &str, o: &Observation) {
    let target = ctx.reference("Observation", id);
    let mut v = Value::object([
        ("resourceType", "Observation".into()),
        ("id", ctx.id(id).into()),
        ("meta", ctx.meta(Some("us-core-observation-lab"))),
        ("identifier", identifier(id)),
        ("status", o.status.code().into()),
        ("category", vec![concept(OBSERVATION_CATEGORY, "laboratory", "Laboratory")].into()),
        ("code", concept(LOINC, &o.loinc, &o.display)),
        ("subject", patient_ref(ctx.patient)),
        ("effectiveDateTime", o.effective.as_str().into()),
        ("issued", o.provenance.recorded.as_str().into()),
        ("performer", performers(&o.provenance)),
    ]);
    if let Some(value) = o.value_quantity {
        v.set("valueQuantity", quantity(value, o.unit.as_deref()));
    } else if let Some(s) = o.value_string.as_deref().and_then(text) {
        v.set("valueString", s);
    }
    let flag = match (o.critical(), o.out_of_range()) {
        (Some(RangeFlag::High), _) => Some(("HH", "Critical high")),
        (Some(RangeFlag::Low), _) => Some(("LL", "Critical low")),
        (None, Some(RangeFlag::High)) => Some(("H", "High")),
        (None, Some(RangeFlag::Low)) => Some(("L", "Low")),
        (None, None)
            if o.value_quantity.is_some()
                && (o.reference_low.is_some() || o.reference_high.is_some()) =>
        {
            Some(("N", "Normal"))
        }
        (None, None) => None,
    };
    if let Some((code, display)) = flag {
        v.set("interpretation", vec![concept(INTERPRETATION, code, display)].into());
    }
    if o.reference_low.is_some() || o.reference_high.is_some() {
        let mut range = Value::Object(Vec::new());
        range.set_some("low", o.reference_low.map(|l| quantity(l, o.unit.as_deref())));
        range.set_some("high", o.reference_high.map(|h| quantity(h, o.unit.as_deref())));
        v.set("referenceRange", vec![range].into());
    }
    out.resources.push(v);
    let revision = o.replaces.map(|old| ctx.reference("Observation", &old.to_string()));
    out.provenance.push(recorded(ctx, id, target.clone(), &o.provenance, revision));
    status_provenance!(out, ctx, id, target, o);
}

fn prescription(out: &mut Out<'_>, ctx: &Ctx<'_>, id: &str, m: &Prescription) {
    let target = ctx.reference("MedicationRequest", id);
    let requester = staff_ref(m.provenance.recorder, &m.provenance.recorder_name);
    let mut v = Value::object([
        ("resourceType", "MedicationRequest".into()),
        ("id", ctx.id(id).into()),
        ("meta", ctx.meta(Some("us-core-medicationrequest"))),
        ("identifier", identifier(id)),
        ("status", m.status.code().into()),
        ("intent", "order".into()),
        ("medicationCodeableConcept", concept(RXNORM, &m.rxnorm, &m.display)),
        ("subject", patient_ref(ctx.patient)),
        ("authoredOn", m.authored.as_str().into()),
        ("requester", requester.clone()),
        ("recorder", requester),
    ]);
    v.set_some("statusReason", m.status_reason.as_deref().and_then(text_concept));
    v.set_some(
        "note",
        m.override_reason
            .as_deref()
            .and_then(text)
            .map(|t| vec![Value::object([("text", t)])].into()),
    );
    v.set_some(
        "dosageInstruction",
        text(&m.dosage).map(|t| vec![Value::object([("text", t)])].into()),
    );
    v.set(
        "dispenseRequest",
        Value::object([
            ("numberOfRepeatsAllowed", m.refills_allowed.into()),
            ("quantity", Value::object([("value", m.quantity.into())])),
        ]),
    );
    out.resources.push(v);
    out.provenance.push(recorded(ctx, id, target.clone(), &m.provenance, None));
    status_provenance!(out, ctx, id, target, m);
}

fn allergy(out: &mut Out<'_>, ctx: &Ctx<'_>, id: &str, a: &Allergy) {
    let target = ctx.reference("AllergyIntolerance", id);
    let mut v = Value::object([
        ("resourceType", "AllergyIntolerance".into()),
        ("id", ctx.id(id).into()),
        ("meta", ctx.meta(Some("us-core-allergyintolerance"))),
        ("identifier", identifier(id)),
    ]);
    // An entered-in-error allergy has no clinical status (FHIR ait-2).
    let (clinical, verification) = match a.status {
        AllergyStatus::Active => (Some("active"), "confirmed"),
        AllergyStatus::Inactive => (Some("inactive"), "confirmed"),
        AllergyStatus::EnteredInError => (None, EIE),
    };
    v.set_some("clinicalStatus", clinical.map(|c| concept(ALLERGY_CLINICAL, c, "")));
    v.set("verificationStatus", concept(ALLERGY_VERIFICATION, verification, ""));
    v.set("code", concept(RXNORM, &a.substance_code, &a.substance));
    v.set("patient", patient_ref(ctx.patient));
    v.set("recordedDate", a.provenance.recorded.as_str().into());
    v.set("recorder", staff_ref(a.provenance.recorder, &a.provenance.recorder_name));
    let mut reaction = Value::Object(Vec::new());
    reaction.set_some("manifestation", text_concept(&a.reaction).map(|c| vec![c].into()));
    reaction.set("severity", a.severity.code().into());
    v.set("reaction", vec![reaction].into());
    out.resources.push(v);
    out.provenance.push(recorded(ctx, id, target.clone(), &a.provenance, None));
    status_provenance!(out, ctx, id, target, a);
}

fn immunization(out: &mut Out<'_>, ctx: &Ctx<'_>, id: &str, i: &Immunization) {
    let target = ctx.reference("Immunization", id);
    let mut v = Value::object([
        ("resourceType", "Immunization".into()),
        ("id", ctx.id(id).into()),
        ("meta", ctx.meta(Some("us-core-immunization"))),
        ("identifier", identifier(id)),
        ("status", i.status.code().into()),
        ("vaccineCode", concept(CVX, &i.cvx, &i.vaccine)),
        ("patient", patient_ref(ctx.patient)),
        ("occurrenceDateTime", i.occurrence.as_str().into()),
        ("recorded", i.provenance.recorded.as_str().into()),
        ("primarySource", true.into()),
    ]);
    v.set_some(
        "performer",
        ctx.organization().map(|org| vec![Value::object([("actor", org)])].into()),
    );
    out.resources.push(v);
    out.provenance.push(recorded(ctx, id, target.clone(), &i.provenance, None));
    status_provenance!(out, ctx, id, target, i);
}

fn appointment(out: &mut Out<'_>, ctx: &Ctx<'_>, id: &str, a: &Appointment) {
    let target = ctx.reference("Appointment", id);
    let mut v = Value::object([
        ("resourceType", "Appointment".into()),
        ("id", ctx.id(id).into()),
        ("meta", ctx.meta(None)),
        ("identifier", identifier(id)),
        ("status", a.status.code().into()),
    ]);
    if a.status == crate::status::AppointmentStatus::Cancelled {
        v.set_some("cancelationReason", a.status_reason.as_deref().and_then(text_concept));
    }
    v.set_some("description", text(&a.reason));
    // The portal records when a visit starts, not how long it lasts. FHIR
    // wants an end beside every start (app-2; app-3 for booked, arrived,
    // fulfilled...): an end equal to the start would tell calendars the
    // visit takes no time, so the end is there without a value, marked
    // `unknown` with HL7's data-absent-reason extension.
    // A request has no time until the clinic gives it one.
    if !a.start.is_empty() {
        v.set("start", a.start.as_str().into());
        v.set("_end", absent("unknown"));
    }
    v.set_some("comment", a.preferred.as_deref().and_then(text));
    v.set("created", a.provenance.recorded.as_str().into());
    v.set(
        "participant",
        vec![Value::object([("actor", patient_ref(ctx.patient)), ("status", "accepted".into())])]
            .into(),
    );
    out.resources.push(v);
    out.provenance.push(recorded(ctx, id, target.clone(), &a.provenance, None));
    status_provenance!(out, ctx, id, target, a);
}

fn communication(out: &mut Out<'_>, ctx: &Ctx<'_>, id: &str, m: &Message) {
    let target = ctx.reference("Communication", id);
    let (clinic, clinic_name) = ctx.clinic.expect("threads belong to a clinic");
    let recipient = match m.side {
        Side::Patient => organization_ref(clinic, clinic_name),
        Side::Clinic => patient_ref(ctx.patient),
    };
    let mut v = Value::object([
        ("resourceType", "Communication".into()),
        ("id", ctx.id(id).into()),
        ("meta", ctx.meta(None)),
        ("identifier", identifier(id)),
        ("status", "completed".into()),
        ("subject", patient_ref(ctx.patient)),
        ("sent", m.sent_at.as_str().into()),
    ]);
    v.set_some("received", m.read_at.as_deref().map(Value::str));
    v.set_some("topic", m.topic.as_deref().and_then(text).map(|t| Value::object([("text", t)])));
    v.set_some(
        "inResponseTo",
        m.in_response_to.map(|first| {
            vec![reference(ctx.reference("Communication", &first.to_string()), "")].into()
        }),
    );
    // The result is an Observation of the same clinic's clinical record.
    let results = DocKind::ClinicalRecord { patient: ctx.patient, clinic }.doc_id();
    v.set_some(
        "about",
        m.about.map(|result| {
            let id = resource_id(results, &result.to_string());
            vec![reference(format!("Observation/{id}"), "")].into()
        }),
    );
    v.set("recipient", vec![recipient].into());
    v.set("sender", person_ref(m.side, m.author, &m.author_name));
    v.set_some(
        "payload",
        text(&m.body).map(|b| vec![Value::object([("contentString", b)])].into()),
    );
    out.resources.push(v);
    let mut agent = Value::object([
        ("type", concept(PARTICIPANT_TYPE, "author", "Author")),
        ("who", person_ref(m.side, m.author, &m.author_name)),
    ]);
    if m.side == Side::Clinic {
        agent.set("onBehalfOf", organization_ref(clinic, clinic_name));
    }
    out.provenance.push(provenance(
        ctx,
        id,
        "recorded",
        target.clone(),
        &m.sent_at,
        "CREATE",
        agent,
    ));
    if let (Some(by), Some(at)) = (m.read_by, m.read_at.as_deref()) {
        // Read by someone on the other side.
        let reader = match m.side {
            Side::Patient => Side::Clinic,
            Side::Clinic => Side::Patient,
        };
        let agent = Value::object([
            ("type", concept(PARTICIPANT_TYPE, "informant", "Informant")),
            ("who", person_ref(reader, by, "")),
        ]);
        out.provenance.push(provenance(ctx, id, "read", target, at, "UPDATE", agent));
    }
}

/// FHIR `Task.status` of a refill request's status.
pub fn task_status(status: RefillStatus) -> &'static str {
    match status {
        RefillStatus::Requested => "requested",
        RefillStatus::Approved => "accepted",
        RefillStatus::Denied => "rejected",
        RefillStatus::Cancelled => "cancelled",
    }
}

fn task(out: &mut Out<'_>, ctx: &Ctx<'_>, id: &str, r: &RefillRequest, clinic_name: &str) {
    let target = ctx.reference("Task", id);
    let prescription_doc =
        DocKind::ClinicalRecord { patient: ctx.patient, clinic: r.clinic }.doc_id();
    let focus =
        format!("MedicationRequest/{}", resource_id(prescription_doc, &r.prescription.to_string()));
    let mut v = Value::object([
        ("resourceType", "Task".into()),
        ("id", ctx.id(id).into()),
        ("meta", ctx.meta(None)),
        ("identifier", identifier(id)),
        ("status", task_status(r.status).into()),
        ("intent", "order".into()),
        ("code", concept(TASK_CODE, "fulfill", "Refill request")),
        ("focus", Value::object([("reference", focus.into())])),
        ("for", patient_ref(ctx.patient)),
        ("authoredOn", r.requested_at.as_str().into()),
    ]);
    v.set_some("lastModified", r.decided_at.as_deref().map(Value::str));
    v.set("requester", person_ref(Side::Patient, r.requested_by, ""));
    v.set("owner", organization_ref(r.clinic, clinic_name));
    v.set_some("statusReason", r.decision_note.as_deref().and_then(text_concept));
    v.set_some("note", text(&r.note).map(|t| vec![Value::object([("text", t)])].into()));
    out.resources.push(v);
    let agent = Value::object([
        ("type", concept(PARTICIPANT_TYPE, "author", "Author")),
        ("who", person_ref(Side::Patient, r.requested_by, "")),
    ]);
    out.provenance.push(provenance(
        ctx,
        id,
        "recorded",
        target.clone(),
        &r.requested_at,
        "CREATE",
        agent,
    ));
    if let (Some(by), Some(at)) = (r.decided_by, r.decided_at.as_deref()) {
        // Approved or denied by the clinic; cancelled by the patient side.
        let (side, on_behalf) = match r.status {
            RefillStatus::Cancelled => (Side::Patient, None),
            _ => (Side::Clinic, Some(organization_ref(r.clinic, clinic_name))),
        };
        let mut agent = Value::object([
            ("type", concept(PARTICIPANT_TYPE, "author", "Author")),
            ("who", person_ref(side, by, "")),
        ]);
        agent.set_some("onBehalfOf", on_behalf);
        let mut p = provenance(ctx, id, "decided", target, at, "UPDATE", agent);
        p.set_some(
            "reason",
            r.decision_note.as_deref().and_then(text_concept).map(|c| vec![c].into()),
        );
        out.provenance.push(p);
    }
}

fn patient(data: &PatientData) -> Value {
    let d = &data.own.demographics;
    let mut v = Value::object([
        ("resourceType", "Patient".into()),
        ("id", data.patient.to_string().into()),
        (
            "meta",
            Value::object([
                ("source", urn(data.patient).into()),
                ("profile", vec![Value::String(format!("{US_CORE}us-core-patient"))].into()),
            ]),
        ),
        ("identifier", identifier(&data.patient.to_string())),
    ]);
    let mut name = Value::Object(Vec::new());
    name.set_some("family", d.family.as_deref().and_then(text));
    name.set_some("given", d.given.as_deref().and_then(text).map(|g| vec![g].into()));
    if name.members().is_some_and(|m| !m.is_empty()) {
        v.set("name", vec![name].into());
    }
    let telecom: Vec<Value> = [("phone", &d.phone), ("email", &d.email)]
        .into_iter()
        .filter_map(|(system, value)| {
            let value = text(value.as_deref()?)?;
            Some(Value::object([("system", system.into()), ("value", value)]))
        })
        .collect();
    if !telecom.is_empty() {
        v.set("telecom", telecom.into());
    }
    // US Core Patient requires a gender (1..1) and, for a required element
    // with a required binding, says to send the value set's own "unknown"
    // when it is not known; the portal does not record one.
    v.set("gender", "unknown".into());
    v.set_some("birthDate", d.birth_date.as_deref().and_then(text));
    v
}

/// Every resource of the record: the Patient, the clinics (Organization)
/// and staff (Practitioner) it names, each entry's resource, and last the
/// Provenance resources. Order is stable: by document, collection, entry id.
pub fn resources(data: &PatientData) -> Vec<Value> {
    let mut resources = vec![patient(data)];
    let mut provenance = Vec::new();
    let mut clinics: VecMap<ClinicId, String> = data.clinic_names.clone();
    let mut staff: VecMap<UserId, String> = VecMap::new();
    let mut name_staff = |user: UserId, name: &str| {
        let known = staff.get_or_insert_with(user, String::new);
        if known.is_empty() {
            *known = name.to_owned();
        }
    };
    let name_of = |clinics: &VecMap<ClinicId, String>, clinic: ClinicId| {
        clinics.get(&clinic).cloned().unwrap_or_default()
    };
    let mut entries = Vec::new();
    {
        let mut out = Out { resources: &mut entries, provenance: &mut provenance };
        for (&clinic, record) in &data.clinical {
            let name = record
                .reports
                .values()
                .map(|r| &r.provenance)
                .chain(record.observations.values().map(|o| &o.provenance))
                .chain(record.prescriptions.values().map(|p| &p.provenance))
                .next()
                .map(|p| p.clinic_name.clone())
                .unwrap_or_else(|| name_of(&clinics, clinic));
            clinics.get_or_insert_with(clinic, || name.clone());
            let name = name_of(&clinics, clinic);
            let ctx = Ctx {
                doc: DocKind::ClinicalRecord { patient: data.patient, clinic }.doc_id(),
                patient: data.patient,
                clinic: Some((clinic, &name)),
            };
            macro_rules! note_staff {
                ($e:expr) => {{
                    name_staff($e.provenance.recorder, &$e.provenance.recorder_name);
                    if let Some(by) = $e.status_by {
                        name_staff(by, "");
                    }
                }};
            }
            for (id, r) in &record.reports {
                note_staff!(r);
                let results = record
                    .observations
                    .iter()
                    .filter(|(_, o)| o.report.is_some_and(|rep| rep.to_string() == *id))
                    .map(|(oid, _)| {
                        Value::object([("reference", ctx.reference("Observation", oid).into())])
                    })
                    .collect();
                report(&mut out, &ctx, id, r, results);
            }
            for (id, o) in &record.observations {
                note_staff!(o);
                observation(&mut out, &ctx, id, o);
            }
            for (id, m) in &record.prescriptions {
                note_staff!(m);
                prescription(&mut out, &ctx, id, m);
            }
            for (id, a) in &record.allergies {
                note_staff!(a);
                allergy(&mut out, &ctx, id, a);
            }
            for (id, i) in &record.immunizations {
                note_staff!(i);
                immunization(&mut out, &ctx, id, i);
            }
            for (id, a) in &record.appointments {
                note_staff!(a);
                appointment(&mut out, &ctx, id, a);
            }
        }
        for (&clinic, thread) in &data.threads {
            let name = name_of(&clinics, clinic);
            clinics.get_or_insert_with(clinic, String::new);
            let ctx = Ctx {
                doc: DocKind::MessageThread { patient: data.patient, clinic }.doc_id(),
                patient: data.patient,
                clinic: Some((clinic, &name)),
            };
            for (id, m) in &thread.messages {
                match m.side {
                    Side::Clinic => name_staff(m.author, &m.author_name),
                    Side::Patient => {
                        if let Some(by) = m.read_by {
                            name_staff(by, "");
                        }
                    }
                }
                communication(&mut out, &ctx, id, m);
            }
        }
        let ctx = Ctx {
            doc: DocKind::PatientRecord { patient: data.patient }.doc_id(),
            patient: data.patient,
            clinic: None,
        };
        for (id, r) in &data.own.refill_requests {
            clinics.get_or_insert_with(r.clinic, String::new);
            if let (Some(by), RefillStatus::Approved | RefillStatus::Denied) =
                (r.decided_by, r.status)
            {
                name_staff(by, "");
            }
            task(&mut out, &ctx, id, r, &name_of(&clinics, r.clinic));
        }
    }
    for (clinic, name) in &clinics {
        let mut org = Value::object([
            ("resourceType", "Organization".into()),
            ("id", clinic.to_string().into()),
            (
                "meta",
                Value::object([(
                    "profile",
                    vec![Value::String(format!("{US_CORE}us-core-organization"))].into(),
                )]),
            ),
            ("identifier", identifier(&clinic.to_string())),
            ("active", true.into()),
        ]);
        org.set_some("name", text(name));
        resources.push(org);
    }
    for (user, name) in &staff {
        let mut practitioner = Value::object([
            ("resourceType", "Practitioner".into()),
            ("id", user.to_string().into()),
            (
                "meta",
                Value::object([(
                    "profile",
                    vec![Value::String(format!("{US_CORE}us-core-practitioner"))].into(),
                )]),
            ),
            ("identifier", identifier(&user.to_string())),
        ]);
        practitioner
            .set_some("name", text(name).map(|t| vec![Value::object([("text", t)])].into()));
        resources.push(practitioner);
    }
    resources.extend(entries);
    resources.extend(provenance);
    resources
}

/// A Bundle of `resources` of the given type (`collection` for a download,
/// `searchset` for a search), each with its full URL under `base` (the
/// FHIR endpoint, e.g. `https://portal.example/fhir/R4`), so references
/// between them resolve.
pub fn bundle(bundle_type: &str, base: &str, resources: Vec<Value>) -> Value {
    let total = resources.len() as u32;
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let url = format!(
                "{base}/{}/{}",
                resource.str_at(&["resourceType"]).unwrap_or_default(),
                resource.str_at(&["id"]).unwrap_or_default()
            );
            let mut entry = Value::object([("fullUrl", url.into()), ("resource", resource)]);
            if bundle_type == "searchset" {
                entry.set("search", Value::object([("mode", "match".into())]));
            }
            entry
        })
        .collect();
    let mut b = Value::object([("resourceType", "Bundle".into()), ("type", bundle_type.into())]);
    if bundle_type == "searchset" {
        b.set("total", total.into());
    }
    b.set("entry", entries.into());
    b
}
