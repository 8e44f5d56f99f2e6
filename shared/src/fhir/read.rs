//! FHIR resources back to entries: the readers of each resource's clinical
//! content (shared with the import), and a whole exported Bundle back to
//! the record it was made from ([`record`]), which the round-trip tests use.

use std::collections::HashMap;

use crate::vec_map::VecMap;
use std::str::FromStr;

use super::export::{PatientData, task_status};
use super::json::Value;
use super::{
    ALLERGY_CLINICAL, ALLERGY_VERIFICATION, CVX, INTERPRETATION, Issue, LOINC, RXNORM, UCUM, URI,
    parse_urn,
};
use crate::ids::{ClinicId, EntryId, PatientId, UserId};
use crate::schema::{
    Allergy, Appointment, CRITICAL_HIGH, CRITICAL_LOW, Demographics, Immunization, Message,
    Observation, PatientRecord, Prescription, Provenance, RefillRequest, Report,
};
use crate::status::{
    AllergyStatus, AppointmentStatus, ImmunizationStatus, PrescriptionStatus, RefillStatus,
    ResultStatus, Severity, Side,
};

/// Reads one resource, noting each problem as an issue at `base`
/// (`Bundle.entry[3].resource`) and carrying on, so one pass names every
/// problem.
pub(crate) struct Reader<'a> {
    pub(crate) issues: &'a mut Vec<Issue>,
    pub(crate) base: String,
}

impl Reader<'_> {
    pub(crate) fn problem(&mut self, code: &'static str, path: &str, what: impl Into<String>) {
        let expression =
            if path.is_empty() { self.base.clone() } else { format!("{}.{path}", self.base) };
        self.issues.push(Issue { code, expression, diagnostics: what.into() });
    }

    /// A required string (non-empty) at `path`.
    pub(crate) fn string(&mut self, r: &Value, path: &[&str]) -> Option<String> {
        match r.at(path) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                self.problem("value", &path.join("."), "must be a non-empty string");
                None
            }
            None => {
                self.problem("required", &path.join("."), "is required");
                None
            }
        }
    }

    /// An optional string at `path` (absent reads as `None`).
    pub(crate) fn optional(&mut self, r: &Value, path: &[&str]) -> Option<String> {
        match r.at(path) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problem("value", &path.join("."), "must be a string");
                None
            }
        }
    }

    /// A code of `parse`'s set at `path`.
    pub(crate) fn code<T>(
        &mut self,
        r: &Value,
        path: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let code = self.string(r, path)?;
        let parsed = parse(&code);
        if parsed.is_none() {
            self.problem(
                "not-supported",
                &path.join("."),
                format!("the code {code:?} is not supported here"),
            );
        }
        parsed
    }

    /// The code and display of the first coding of `system` in the
    /// CodeableConcept at `key`.
    pub(crate) fn coded(&mut self, r: &Value, key: &str, system: &str) -> Option<(String, String)> {
        let Some(concept) = r.get(key) else {
            self.problem("required", key, "is required");
            return None;
        };
        let coding = concept.items("coding").iter().find(|c| {
            c.str_at(&["system"]) == Some(system)
                && c.str_at(&["code"]).is_some_and(|c| !c.is_empty())
        });
        let Some(coding) = coding else {
            self.problem(
                "required",
                &format!("{key}.coding"),
                format!("needs a coding of {system}"),
            );
            return None;
        };
        let display =
            coding.str_at(&["display"]).or_else(|| concept.str_at(&["text"])).unwrap_or_default();
        Some((coding.str_at(&["code"]).unwrap_or_default().to_owned(), display.to_owned()))
    }

    /// A number at `path`, if present.
    pub(crate) fn number(&mut self, r: &Value, path: &[&str]) -> Option<f64> {
        match r.at(path) {
            None => None,
            Some(Value::Number(n)) if n.is_finite() => Some(*n),
            Some(_) => {
                self.problem("value", &path.join("."), "must be a number");
                None
            }
        }
    }

    /// A whole number from 0 to `u32::MAX` at `path`.
    pub(crate) fn count(&mut self, r: &Value, path: &[&str]) -> Option<u32> {
        let n = self.number(r, path)?;
        if n >= 0.0 && n <= f64::from(u32::MAX) && n.fract() == 0.0 {
            Some(n as u32)
        } else {
            self.problem("value", &path.join("."), "must be a whole number of at least 0");
            None
        }
    }
}

/// The first text of a CodeableConcept (or a Reference's display) list at `key`.
fn first_text(r: &Value, key: &str) -> Option<String> {
    r.items(key).first()?.str_at(&["text"]).map(str::to_owned)
}

/// What every clinical entry's reader needs but the resource does not
/// hold: who recorded it (from its Provenance on a round trip, the
/// importing system on an import).
pub(crate) struct Recorded {
    pub(crate) provenance: Provenance,
    pub(crate) status_reason: Option<String>,
    pub(crate) status_by: Option<UserId>,
    pub(crate) status_at: Option<String>,
}

pub(crate) fn observation(
    rd: &mut Reader<'_>,
    r: &Value,
    report: Option<EntryId>,
    replaces: Option<EntryId>,
    rec: Recorded,
) -> Option<Observation> {
    let status = rd.code(r, &["status"], ResultStatus::parse);
    let code = rd.coded(r, "code", LOINC);
    let effective = rd.string(r, &["effectiveDateTime"]);
    let (mut value_quantity, mut unit) = (None, None);
    if let Some(q) = r.get("valueQuantity") {
        value_quantity = rd.number(q, &["value"]);
        if value_quantity.is_none() && q.get("value").is_none() {
            rd.problem("required", "valueQuantity.value", "is required");
        }
        if let Some(system) = q.str_at(&["system"])
            && system != UCUM
        {
            rd.problem(
                "not-supported",
                "valueQuantity.system",
                format!("units must be UCUM ({UCUM})"),
            );
        }
        unit = q.str_at(&["code"]).or_else(|| q.str_at(&["unit"])).map(str::to_owned);
    }
    let value_string = rd.optional(r, &["valueString"]);
    if r.get("valueQuantity").is_none() && value_string.is_none() {
        rd.problem("required", "value[x]", "needs valueQuantity or valueString");
    }
    let range = r.items("referenceRange").first();
    let reference_low = range.and_then(|range| rd.number(range, &["low", "value"]));
    let reference_high = range.and_then(|range| rd.number(range, &["high", "value"]));
    let interpretation = r
        .items("interpretation")
        .iter()
        .flat_map(|c| c.items("coding"))
        .filter(|c| c.str_at(&["system"]) == Some(INTERPRETATION))
        .filter_map(|c| c.str_at(&["code"]))
        .find(|c| *c == CRITICAL_HIGH || *c == CRITICAL_LOW)
        .map(str::to_owned);
    let (loinc, display) = code?;
    Some(Observation {
        report,
        loinc,
        display,
        value_quantity,
        value_string,
        unit,
        reference_low,
        reference_high,
        effective: effective?,
        status: status?,
        replaces,
        provenance: rec.provenance,
        status_reason: rec.status_reason,
        status_by: rec.status_by,
        status_at: rec.status_at,
        interpretation,
    })
}

pub(crate) fn report(rd: &mut Reader<'_>, r: &Value, rec: Recorded) -> Option<Report> {
    let status = rd.code(r, &["status"], ResultStatus::parse);
    let code = rd.coded(r, "code", LOINC);
    let effective = rd.string(r, &["effectiveDateTime"]);
    let (loinc, display) = code?;
    Some(Report {
        loinc,
        display,
        effective: effective?,
        status: status?,
        provenance: rec.provenance,
        status_reason: rec.status_reason,
        status_by: rec.status_by,
        status_at: rec.status_at,
    })
}

pub(crate) fn prescription(rd: &mut Reader<'_>, r: &Value, rec: Recorded) -> Option<Prescription> {
    let status = rd.code(r, &["status"], PrescriptionStatus::parse);
    let code = rd.coded(r, "medicationCodeableConcept", RXNORM);
    let authored = rd.string(r, &["authoredOn"]);
    let dosage = r.items("dosageInstruction").first().and_then(|d| d.str_at(&["text"]));
    let refills = rd.count(r, &["dispenseRequest", "numberOfRepeatsAllowed"]).unwrap_or(0);
    let quantity = rd.count(r, &["dispenseRequest", "quantity", "value"]).unwrap_or(0);
    let (rxnorm, display) = code?;
    Some(Prescription {
        rxnorm,
        display,
        dosage: dosage.unwrap_or_default().to_owned(),
        quantity,
        refills_allowed: refills,
        authored: authored?,
        status: status?,
        provenance: rec.provenance,
        status_reason: rec.status_reason,
        status_by: rec.status_by,
        status_at: rec.status_at,
        override_reason: first_text(r, "note"),
    })
}

pub(crate) fn allergy(rd: &mut Reader<'_>, r: &Value, rec: Recorded) -> Option<Allergy> {
    let verification = r
        .get("verificationStatus")
        .and_then(|v| {
            v.items("coding").iter().find(|c| c.str_at(&["system"]) == Some(ALLERGY_VERIFICATION))
        })
        .and_then(|c| c.str_at(&["code"]));
    let clinical = r
        .get("clinicalStatus")
        .and_then(|v| {
            v.items("coding").iter().find(|c| c.str_at(&["system"]) == Some(ALLERGY_CLINICAL))
        })
        .and_then(|c| c.str_at(&["code"]));
    let status = match (verification, clinical) {
        (Some("entered-in-error"), _) => Some(AllergyStatus::EnteredInError),
        (_, Some("active")) => Some(AllergyStatus::Active),
        (_, Some("inactive" | "resolved")) => Some(AllergyStatus::Inactive),
        _ => {
            rd.problem(
                "required",
                "clinicalStatus",
                "needs a clinical status of active, inactive or resolved",
            );
            None
        }
    };
    let code = rd.coded(r, "code", RXNORM);
    let reaction = r.items("reaction").first();
    let text = reaction.and_then(|re| re.items("manifestation").first()).and_then(|m| {
        m.str_at(&["text"]).or_else(|| m.items("coding").first()?.str_at(&["display"]))
    });
    let severity = match reaction.and_then(|re| re.get("severity")) {
        Some(_) => rd.code(reaction.expect("present"), &["severity"], Severity::parse),
        None => {
            rd.problem("required", "reaction.severity", "is required (mild, moderate or severe)");
            None
        }
    };
    let (substance_code, substance) = code?;
    Some(Allergy {
        substance_code,
        substance,
        reaction: text.unwrap_or_default().to_owned(),
        severity: severity?,
        status: status?,
        provenance: rec.provenance,
        status_reason: rec.status_reason,
        status_by: rec.status_by,
        status_at: rec.status_at,
    })
}

fn immunization(rd: &mut Reader<'_>, r: &Value, rec: Recorded) -> Option<Immunization> {
    let status = rd.code(r, &["status"], ImmunizationStatus::parse);
    let code = rd.coded(r, "vaccineCode", CVX);
    let occurrence = rd.string(r, &["occurrenceDateTime"]);
    let (cvx, vaccine) = code?;
    Some(Immunization {
        cvx,
        vaccine,
        occurrence: occurrence?,
        status: status?,
        provenance: rec.provenance,
        status_reason: rec.status_reason,
        status_by: rec.status_by,
        status_at: rec.status_at,
    })
}

fn appointment(rd: &mut Reader<'_>, r: &Value, rec: Recorded) -> Option<Appointment> {
    let status = rd.code(r, &["status"], AppointmentStatus::parse);
    // A request has no time yet (FHIR app-3 allows none while proposed or cancelled).
    let start = match status {
        Some(AppointmentStatus::Proposed | AppointmentStatus::Cancelled)
            if r.get("start").is_none() =>
        {
            Some(String::new())
        }
        _ => rd.string(r, &["start"]),
    };
    Some(Appointment {
        start: start?,
        preferred: r.str_at(&["comment"]).map(str::to_owned),
        reason: r.str_at(&["description"]).unwrap_or_default().to_owned(),
        status: status?,
        provenance: rec.provenance,
        status_reason: rec.status_reason,
        status_by: rec.status_by,
        status_at: rec.status_at,
    })
}

/// The portal id a reference names: `Type/<uuid>`, or a logical reference
/// by `urn:uuid:` identifier.
fn referenced<T: FromStr>(reference: Option<&Value>) -> Option<T> {
    let reference = reference?;
    if let Some(literal) = reference.str_at(&["reference"]) {
        return literal.rsplit('/').next()?.parse().ok();
    }
    if reference.str_at(&["identifier", "system"]) == Some(URI) {
        return parse_urn(reference.str_at(&["identifier", "value"])?);
    }
    None
}

/// The portal's entry id of a resource: its `urn:uuid:` identifier.
pub(crate) fn entry_id(r: &Value) -> Option<EntryId> {
    r.items("identifier")
        .iter()
        .filter(|i| i.str_at(&["system"]) == Some(URI))
        .find_map(|i| parse_urn(i.str_at(&["value"])?))
}

/// A whole exported Bundle back to the record it was made from: the
/// inverse of `export::resources`. Fails naming the first problems.
pub fn record(bundle: &Value) -> Result<PatientData, Vec<Issue>> {
    let mut issues = Vec::new();
    let resources: Vec<&Value> =
        bundle.items("entry").iter().filter_map(|e| e.get("resource")).collect();
    let by_type = |t: &'static str| {
        resources.iter().copied().filter(move |r| r.str_at(&["resourceType"]) == Some(t))
    };
    let reference_of = |r: &Value| {
        format!(
            "{}/{}",
            r.str_at(&["resourceType"]).unwrap_or_default(),
            r.str_at(&["id"]).unwrap_or_default()
        )
    };
    // Provenance resources by the reference of their target, and the
    // report each observation is a result of.
    let mut provenance: HashMap<String, Vec<&Value>> = HashMap::new();
    for p in by_type("Provenance") {
        for target in p.items("target") {
            if let Some(t) = target.str_at(&["reference"]) {
                provenance.entry(t.to_owned()).or_default().push(p);
            }
        }
    }
    let mut entry_by_reference: HashMap<String, EntryId> = HashMap::new();
    for r in &resources {
        if let Some(id) = entry_id(r) {
            entry_by_reference.insert(reference_of(r), id);
        }
    }
    // The entry a reference names, where the bundle holds it.
    let entry_at = |references: &[Value]| {
        let reference = references.first()?.str_at(&["reference"])?;
        entry_by_reference.get(reference).copied()
    };
    let mut report_of: HashMap<String, EntryId> = HashMap::new();
    for r in by_type("DiagnosticReport") {
        let Some(id) = entry_id(r) else { continue };
        for result in r.items("result") {
            if let Some(o) = result.str_at(&["reference"]) {
                report_of.insert(o.to_owned(), id);
            }
        }
    }
    let Some(patient_resource) = by_type("Patient").next() else {
        return Err(vec![Issue::new("required", "Bundle.entry", "no Patient")]);
    };
    let Some(patient) =
        patient_resource.str_at(&["id"]).and_then(|id| id.parse::<PatientId>().ok())
    else {
        return Err(vec![Issue::new("value", "Patient.id", "not a portal patient id")]);
    };
    let name = patient_resource.items("name").first();
    let telecom = |system: &str| {
        patient_resource
            .items("telecom")
            .iter()
            .find(|t| t.str_at(&["system"]) == Some(system))
            .and_then(|t| t.str_at(&["value"]))
            .map(str::to_owned)
    };
    let demographics = Demographics {
        family: name.and_then(|n| n.str_at(&["family"])).map(str::to_owned),
        given: name.and_then(|n| n.items("given").first()?.as_str()).map(str::to_owned),
        birth_date: patient_resource.str_at(&["birthDate"]).map(str::to_owned),
        phone: telecom("phone"),
        email: telecom("email"),
    };
    let mut data = PatientData {
        patient,
        own: PatientRecord { demographics, refill_requests: VecMap::new() },
        clinical: VecMap::new(),
        threads: VecMap::new(),
        clinic_names: VecMap::new(),
    };
    for org in by_type("Organization") {
        if let Some(clinic) = org.str_at(&["id"]).and_then(|id| id.parse().ok()) {
            data.clinic_names.insert(clinic, org.str_at(&["name"]).unwrap_or_default().to_owned());
        }
    }

    for (i, r) in resources.iter().enumerate() {
        let kind = r.str_at(&["resourceType"]).unwrap_or_default();
        if matches!(kind, "Patient" | "Organization" | "Practitioner" | "Provenance") {
            continue;
        }
        let mut rd = Reader { issues: &mut issues, base: format!("Bundle.entry[{i}].resource") };
        let Some(id) = entry_id(r) else {
            rd.problem("required", "identifier", "no portal entry id");
            continue;
        };
        let key = id.to_string();
        let reference = reference_of(r);
        let provs = provenance.get(&reference).map(Vec::as_slice).unwrap_or_default();
        let is_create = |p: &&&Value| {
            p.get("activity").is_some_and(|a| {
                a.items("coding").iter().any(|c| c.str_at(&["code"]) == Some("CREATE"))
            })
        };
        let created = provs.iter().find(is_create);
        let changed = provs.iter().find(|p| !is_create(p));
        let source: Option<ClinicId> = r.str_at(&["meta", "source"]).and_then(parse_urn);
        match kind {
            "Communication" => {
                let Some(clinic) = source else { continue };
                let sender = r.get("sender");
                let side = if sender.and_then(|s| s.str_at(&["reference"])).is_some() {
                    Side::Clinic
                } else {
                    Side::Patient
                };
                let (Some(author), Some(sent_at)) = (referenced(sender), r.str_at(&["sent"]))
                else {
                    rd.problem("required", "sender", "a sender and the time sent");
                    continue;
                };
                let message = Message {
                    author,
                    author_name: sender
                        .and_then(|s| s.str_at(&["display"]))
                        .unwrap_or_default()
                        .to_owned(),
                    side,
                    sent_at: sent_at.to_owned(),
                    body: r
                        .items("payload")
                        .first()
                        .and_then(|p| p.str_at(&["contentString"]))
                        .unwrap_or_default()
                        .to_owned(),
                    read_at: r.str_at(&["received"]).map(str::to_owned),
                    read_by: changed.and_then(|p| referenced(p.items("agent").first()?.get("who"))),
                    topic: r.str_at(&["topic", "text"]).map(str::to_owned),
                    in_response_to: entry_at(r.items("inResponseTo")),
                    about: entry_at(r.items("about")),
                };
                data.threads
                    .get_or_insert_with(clinic, Default::default)
                    .messages
                    .insert(key, message);
            }
            "Task" => {
                let status = r.str_at(&["status"]).and_then(|s| {
                    RefillStatus::ALL.iter().copied().find(|st| task_status(*st) == s)
                });
                let prescription = r
                    .str_at(&["focus", "reference"])
                    .and_then(|f| entry_by_reference.get(f))
                    .copied();
                let clinic = referenced::<ClinicId>(r.get("owner"));
                let (Some(status), Some(prescription), Some(clinic)) =
                    (status, prescription, clinic)
                else {
                    rd.problem("invalid", "", "a refill request needs a status, focus and owner");
                    continue;
                };
                let request = RefillRequest {
                    prescription,
                    clinic,
                    requested_by: referenced(r.get("requester"))
                        .unwrap_or(UserId::from_uuid(uuid::Uuid::nil())),
                    requested_at: r.str_at(&["authoredOn"]).unwrap_or_default().to_owned(),
                    note: first_text(r, "note").unwrap_or_default(),
                    status,
                    decided_by: changed
                        .and_then(|p| referenced(p.items("agent").first()?.get("who"))),
                    decided_at: r.str_at(&["lastModified"]).map(str::to_owned),
                    decision_note: r.str_at(&["statusReason", "text"]).map(str::to_owned),
                };
                data.own.refill_requests.insert(key, request);
            }
            _ => {
                let Some(clinic) = source else {
                    rd.problem("required", "meta.source", "no source clinic");
                    continue;
                };
                let Some(created) = created else {
                    rd.problem("required", "", "no Provenance of its recording");
                    continue;
                };
                let agent = created.items("agent").first();
                let on_behalf = agent.and_then(|a| a.get("onBehalfOf"));
                let who = agent.and_then(|a| a.get("who"));
                let (Some(recorder), Some(recorded)) =
                    (referenced(who), created.str_at(&["recorded"]))
                else {
                    rd.problem("required", "", "its Provenance names no recorder");
                    continue;
                };
                let rec = Recorded {
                    provenance: Provenance {
                        clinic,
                        clinic_name: on_behalf
                            .and_then(|o| o.str_at(&["display"]))
                            .unwrap_or_default()
                            .to_owned(),
                        recorder,
                        recorder_name: who
                            .and_then(|w| w.str_at(&["display"]))
                            .unwrap_or_default()
                            .to_owned(),
                        recorded: recorded.to_owned(),
                    },
                    status_reason: changed.and_then(|p| first_text(p, "reason")),
                    status_by: changed
                        .and_then(|p| referenced(p.items("agent").first()?.get("who"))),
                    status_at: changed.and_then(|p| p.str_at(&["recorded"])).map(str::to_owned),
                };
                let record = data.clinical.get_or_insert_with(clinic, Default::default);
                match kind {
                    "Observation" => {
                        let replaces = created
                            .items("entity")
                            .iter()
                            .find(|e| e.str_at(&["role"]) == Some("revision"))
                            .and_then(|e| e.str_at(&["what", "reference"]))
                            .and_then(|w| entry_by_reference.get(w))
                            .copied();
                        let report = report_of.get(&reference).copied();
                        if let Some(o) = observation(&mut rd, r, report, replaces, rec) {
                            record.observations.insert(key, o);
                        }
                    }
                    "DiagnosticReport" => {
                        if let Some(e) = report(&mut rd, r, rec) {
                            record.reports.insert(key, e);
                        }
                    }
                    "MedicationRequest" => {
                        if let Some(e) = prescription(&mut rd, r, rec) {
                            record.prescriptions.insert(key, e);
                        }
                    }
                    "AllergyIntolerance" => {
                        if let Some(e) = allergy(&mut rd, r, rec) {
                            record.allergies.insert(key, e);
                        }
                    }
                    "Immunization" => {
                        if let Some(e) = immunization(&mut rd, r, rec) {
                            record.immunizations.insert(key, e);
                        }
                    }
                    "Appointment" => {
                        if let Some(e) = appointment(&mut rd, r, rec) {
                            record.appointments.insert(key, e);
                        }
                    }
                    other => rd.problem(
                        "not-supported",
                        "resourceType",
                        format!("{other} is not part of a record"),
                    ),
                }
            }
        }
    }
    if issues.is_empty() { Ok(data) } else { Err(issues) }
}
