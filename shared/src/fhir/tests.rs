//! Round trips of every entry type (entry to FHIR to entry), golden checks
//! of the codes, systems and statuses other systems read, and the import.

use crate::vec_map::VecMap;

use super::export::{PatientData, bundle, resources};
use super::import::{self, Entry};
use super::json::Value;
use super::{Issue, read, resource_id};
use crate::ids::{ClinicId, EntryId, PatientId, UserId};
use crate::schema::{
    Allergy, Appointment, ClinicalRecord, Demographics, DocKind, Immunization, Message,
    MessageThread, Observation, PatientRecord, Prescription, Provenance, RefillRequest, Report,
};
use crate::status::{
    AllergyStatus, AppointmentStatus, ImmunizationStatus, PrescriptionStatus, RefillStatus,
    ResultStatus, Severity, Side,
};

const BASE: &str = "https://portal.example/fhir/R4";

fn prov(clinic: ClinicId, recorder: UserId, at: &str) -> Provenance {
    Provenance {
        clinic,
        clinic_name: "Riverside Family Practice".into(),
        recorder,
        recorder_name: "Dr. Amara Okafor".into(),
        recorded: at.into(),
    }
}

struct Fixture {
    data: PatientData,
    clinic: ClinicId,
    critical: EntryId,
    voided: EntryId,
    rx: EntryId,
}

/// A record with every entry type, status changes, a correction, a
/// decided refill request and a read message.
fn fixture() -> Fixture {
    let patient = PatientId::mint();
    let clinic = ClinicId::mint();
    let doctor = UserId::mint();
    let patient_user = UserId::mint();
    let p = |at: &str| prov(clinic, doctor, at);
    let mut record = ClinicalRecord::default();
    let report_id = EntryId::mint();
    record.reports.insert(
        report_id.to_string(),
        Report {
            loinc: "51990-0".into(),
            display: "Basic metabolic panel - Blood".into(),
            effective: "2025-03-01T08:15:00Z".into(),
            status: ResultStatus::Final,
            provenance: p("2025-03-01T14:15:00Z"),
            status_reason: None,
            status_by: None,
            status_at: None,
        },
    );
    let obs = |loinc: &str, display: &str, value: f64, unit: &str, low, high| Observation {
        report: Some(report_id),
        loinc: loinc.into(),
        display: display.into(),
        value_quantity: Some(value),
        value_string: None,
        unit: Some(unit.into()),
        reference_low: low,
        reference_high: high,
        effective: "2025-03-01T08:15:00Z".into(),
        status: ResultStatus::Final,
        replaces: None,
        provenance: p("2025-03-01T14:15:00Z"),
        status_reason: None,
        status_by: None,
        status_at: None,
        interpretation: None,
    };
    let critical = EntryId::mint();
    record.observations.insert(
        critical.to_string(),
        Observation {
            interpretation: Some("HH".into()),
            ..obs(
                "2823-3",
                "Potassium [Moles/volume] in Serum or Plasma",
                6.8,
                "mmol/L",
                Some(3.5),
                Some(5.1),
            )
        },
    );
    let voided = EntryId::mint();
    record.observations.insert(
        voided.to_string(),
        Observation {
            status: ResultStatus::EnteredInError,
            status_reason: Some("wrong patient sample".into()),
            status_by: Some(doctor),
            status_at: Some("2025-03-02T09:00:00Z".into()),
            ..obs(
                "2345-7",
                "Glucose [Mass/volume] in Serum or Plasma",
                180.0,
                "mg/dL",
                Some(70.0),
                Some(99.0),
            )
        },
    );
    record.observations.insert(
        EntryId::mint().to_string(),
        Observation {
            report: None,
            status: ResultStatus::Amended,
            replaces: Some(voided),
            ..obs(
                "2345-7",
                "Glucose [Mass/volume] in Serum or Plasma",
                92.0,
                "mg/dL",
                Some(70.0),
                Some(99.0),
            )
        },
    );
    record.observations.insert(
        EntryId::mint().to_string(),
        Observation {
            report: None,
            value_quantity: None,
            unit: None,
            reference_low: None,
            reference_high: None,
            value_string: Some("negative".into()),
            ..obs("2345-7", "Glucose [Mass/volume] in Serum or Plasma", 0.0, "", None, None)
        },
    );
    let rx = EntryId::mint();
    record.prescriptions.insert(
        rx.to_string(),
        Prescription {
            rxnorm: "308191".into(),
            display: "amoxicillin 500 MG Oral Capsule".into(),
            dosage: "1 capsule by mouth three times daily for 7 days".into(),
            quantity: 21,
            refills_allowed: 2,
            authored: "2025-02-01T10:00:00Z".into(),
            status: PrescriptionStatus::Stopped,
            provenance: p("2025-02-01T10:00:00Z"),
            status_reason: Some("rash".into()),
            status_by: Some(doctor),
            status_at: Some("2025-02-03T10:00:00Z".into()),
            override_reason: Some("benefit outweighs a mild rash years ago".into()),
        },
    );
    record.allergies.insert(
        EntryId::mint().to_string(),
        Allergy {
            substance_code: "70618".into(),
            substance: "Penicillin".into(),
            reaction: "Hives".into(),
            severity: Severity::Moderate,
            status: AllergyStatus::Active,
            provenance: p("2024-01-01T10:00:00Z"),
            status_reason: None,
            status_by: None,
            status_at: None,
        },
    );
    record.allergies.insert(
        EntryId::mint().to_string(),
        Allergy {
            substance_code: "5640".into(),
            substance: "Ibuprofen".into(),
            reaction: "Wheezing".into(),
            severity: Severity::Severe,
            status: AllergyStatus::EnteredInError,
            provenance: p("2024-01-01T10:00:00Z"),
            status_reason: Some("another patient's allergy".into()),
            status_by: Some(doctor),
            status_at: Some("2024-01-02T10:00:00Z".into()),
        },
    );
    record.immunizations.insert(
        EntryId::mint().to_string(),
        Immunization {
            cvx: "140".into(),
            vaccine: "Influenza, seasonal, injectable, preservative free".into(),
            occurrence: "2024-10-01T09:00:00Z".into(),
            status: ImmunizationStatus::Completed,
            provenance: p("2024-10-01T09:05:00Z"),
            status_reason: None,
            status_by: None,
            status_at: None,
        },
    );
    record.appointments.insert(
        EntryId::mint().to_string(),
        Appointment {
            start: "2025-04-01T09:30:00Z".into(),
            reason: "Diabetes follow-up".into(),
            status: AppointmentStatus::Cancelled,
            provenance: p("2025-03-01T09:00:00Z"),
            status_reason: Some("patient asked".into()),
            status_by: Some(doctor),
            status_at: Some("2025-03-20T09:00:00Z".into()),
            preferred: Some("Mornings".into()),
        },
    );
    let mut thread = MessageThread::default();
    // A conversation about the critical result, and its answer.
    let question = EntryId::mint();
    thread.messages.insert(
        question.to_string(),
        Message {
            author: patient_user,
            author_name: "Maria Santos".into(),
            side: Side::Patient,
            sent_at: "2025-03-02T08:00:00Z".into(),
            body: "Is my potassium dangerous?".into(),
            read_at: Some("2025-03-02T09:00:00Z".into()),
            read_by: Some(doctor),
            topic: Some("My potassium result".into()),
            in_response_to: None,
            about: Some(critical),
        },
    );
    thread.messages.insert(
        EntryId::mint().to_string(),
        Message {
            author: doctor,
            author_name: "Dr. Amara Okafor".into(),
            side: Side::Clinic,
            sent_at: "2025-03-02T09:10:00Z".into(),
            body: "Please come in today.".into(),
            read_at: None,
            read_by: None,
            topic: None,
            in_response_to: Some(question),
            about: None,
        },
    );
    let mut own = PatientRecord {
        demographics: Demographics {
            family: Some("Santos".into()),
            given: Some("Maria".into()),
            birth_date: Some("1968-04-12".into()),
            phone: Some("+1 555 0100".into()),
            email: Some("maria@example.org".into()),
        },
        refill_requests: VecMap::new(),
    };
    own.refill_requests.insert(
        EntryId::mint().to_string(),
        RefillRequest {
            prescription: rx,
            clinic,
            requested_by: patient_user,
            requested_at: "2025-02-02T10:00:00Z".into(),
            note: "Running low".into(),
            status: RefillStatus::Denied,
            decided_by: Some(doctor),
            decided_at: Some("2025-02-03T10:00:00Z".into()),
            decision_note: Some("stopped: rash".into()),
        },
    );
    let data = PatientData {
        patient,
        own,
        clinical: [(clinic, record)].into(),
        threads: [(clinic, thread)].into(),
        clinic_names: [(clinic, "Riverside Family Practice".to_owned())].into(),
    };
    Fixture { data, clinic, critical, voided, rx }
}

/// serde_json's value as ours (what the server does at its edge).
fn from_serde(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap()),
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => Value::Array(a.into_iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, from_serde(v))).collect())
        }
    }
}

fn find<'a>(resources: &'a [Value], kind: &str, doc: DocKind, entry: EntryId) -> &'a Value {
    let id = resource_id(doc.doc_id(), &entry.to_string());
    resources
        .iter()
        .find(|r| r.str_at(&["resourceType"]) == Some(kind) && r.str_at(&["id"]) == Some(&id))
        .unwrap_or_else(|| panic!("{kind} {entry} exported"))
}

#[test]
fn every_entry_type_round_trips_through_fhir_json() {
    let f = fixture();
    let text = bundle("collection", BASE, resources(&f.data)).to_json_string();
    // The writer's text is JSON any parser reads.
    let parsed = from_serde(serde_json::from_str(&text).expect("valid JSON"));
    let back = read::record(&parsed).expect("reads back");
    assert_eq!(back.own, f.data.own);
    assert_eq!(back.threads, f.data.threads);
    assert_eq!(back.clinic_names, f.data.clinic_names);
    assert_eq!(back.clinical, f.data.clinical);
    assert_eq!(back, f.data);
}

#[test]
fn ids_are_stable_across_exports_and_unique() {
    let f = fixture();
    let once = resources(&f.data);
    assert_eq!(once, resources(&f.data));
    let mut ids: Vec<(&str, &str)> = once
        .iter()
        .map(|r| (r.str_at(&["resourceType"]).unwrap(), r.str_at(&["id"]).unwrap()))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no two resources share an id");
}

#[test]
fn golden_fields_of_results_prescriptions_and_corrections() {
    let f = fixture();
    let all = resources(&f.data);
    let doc = DocKind::ClinicalRecord { patient: f.data.patient, clinic: f.clinic };
    let k = find(&all, "Observation", doc, f.critical);
    assert_eq!(k.str_at(&["status"]), Some("final"));
    assert_eq!(k.str_at(&["meta", "source"]), Some(format!("urn:uuid:{}", f.clinic).as_str()));
    let coding = &k.at(&["code"]).unwrap().items("coding")[0];
    assert_eq!(coding.str_at(&["system"]), Some("http://loinc.org"));
    assert_eq!(coding.str_at(&["code"]), Some("2823-3"));
    assert_eq!(k.at(&["valueQuantity", "value"]), Some(&Value::Number(6.8)));
    assert_eq!(k.str_at(&["valueQuantity", "system"]), Some("http://unitsofmeasure.org"));
    assert_eq!(k.str_at(&["valueQuantity", "code"]), Some("mmol/L"));
    assert_eq!(k.items("referenceRange")[0].at(&["high", "value"]), Some(&Value::Number(5.1)));
    let interpretation = &k.items("interpretation")[0].items("coding")[0];
    assert_eq!(interpretation.str_at(&["code"]), Some("HH"));
    assert_eq!(
        interpretation.str_at(&["system"]),
        Some("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation")
    );
    assert_eq!(k.items("category")[0].items("coding")[0].str_at(&["code"]), Some("laboratory"));
    assert_eq!(
        k.items("performer")[0].str_at(&["reference"]),
        Some(format!("Organization/{}", f.clinic).as_str())
    );

    // Entered in error: the status, and a NULLIFY Provenance with the reason.
    let voided = find(&all, "Observation", doc, f.voided);
    assert_eq!(voided.str_at(&["status"]), Some("entered-in-error"));
    let target = format!("Observation/{}", voided.str_at(&["id"]).unwrap());
    let nullify = all
        .iter()
        .find(|r| {
            r.str_at(&["resourceType"]) == Some("Provenance")
                && r.items("target")[0].str_at(&["reference"]) == Some(&target)
                && r.items("activity").is_empty()
                && r.at(&["activity"]).unwrap().items("coding")[0].str_at(&["code"])
                    == Some("NULLIFY")
        })
        .expect("a NULLIFY provenance");
    assert_eq!(nullify.items("reason")[0].str_at(&["text"]), Some("wrong patient sample"));
    assert_eq!(nullify.str_at(&["recorded"]), Some("2025-03-02T09:00:00Z"));

    let rx = find(&all, "MedicationRequest", doc, f.rx);
    let med = &rx.at(&["medicationCodeableConcept"]).unwrap().items("coding")[0];
    assert_eq!(med.str_at(&["system"]), Some("http://www.nlm.nih.gov/research/umls/rxnorm"));
    assert_eq!(med.str_at(&["code"]), Some("308191"));
    assert_eq!(rx.str_at(&["status"]), Some("stopped"));
    assert_eq!(rx.str_at(&["intent"]), Some("order"));
    assert_eq!(rx.at(&["dispenseRequest", "numberOfRepeatsAllowed"]), Some(&Value::Number(2.0)));
    assert_eq!(
        rx.items("dosageInstruction")[0].str_at(&["text"]),
        Some("1 capsule by mouth three times daily for 7 days")
    );
    assert!(rx.str_at(&["requester", "reference"]).unwrap().starts_with("Practitioner/"));

    // The refill request's Task points at that MedicationRequest.
    let task = all.iter().find(|r| r.str_at(&["resourceType"]) == Some("Task")).unwrap();
    assert_eq!(
        task.str_at(&["focus", "reference"]),
        Some(format!("MedicationRequest/{}", rx.str_at(&["id"]).unwrap()).as_str())
    );
    assert_eq!(task.str_at(&["status"]), Some("rejected"));

    let immunization =
        all.iter().find(|r| r.str_at(&["resourceType"]) == Some("Immunization")).unwrap();
    assert_eq!(
        immunization.at(&["vaccineCode"]).unwrap().items("coding")[0].str_at(&["system"]),
        Some("http://hl7.org/fhir/sid/cvx")
    );
    let voided_allergy = all
        .iter()
        .find(|r| {
            r.str_at(&["resourceType"]) == Some("AllergyIntolerance")
                && r.get("clinicalStatus").is_none()
        })
        .expect("an entered-in-error allergy has no clinical status");
    assert_eq!(
        voided_allergy.at(&["verificationStatus"]).unwrap().items("coding")[0].str_at(&["code"]),
        Some("entered-in-error")
    );
    // An appointment's end is unknown, not a made-up time; gender likewise.
    let appointment =
        all.iter().find(|r| r.str_at(&["resourceType"]) == Some("Appointment")).unwrap();
    assert_eq!(appointment.str_at(&["start"]), Some("2025-04-01T09:30:00Z"));
    assert_eq!(appointment.get("end"), None);
    let absent = &appointment.at(&["_end"]).unwrap().items("extension")[0];
    assert_eq!(
        absent.str_at(&["url"]),
        Some("http://hl7.org/fhir/StructureDefinition/data-absent-reason")
    );
    assert_eq!(absent.str_at(&["valueCode"]), Some("unknown"));
    let patient = all.iter().find(|r| r.str_at(&["resourceType"]) == Some("Patient")).unwrap();
    assert_eq!(patient.str_at(&["gender"]), Some("unknown"));
    // Every resource names its source.
    for r in &all {
        let kind = r.str_at(&["resourceType"]).unwrap();
        if !matches!(kind, "Organization" | "Practitioner") {
            assert!(
                r.str_at(&["meta", "source"]).is_some_and(|s| s.starts_with("urn:uuid:")),
                "{kind}"
            );
        }
    }
}

/// A transaction Bundle from a lab: a panel with one result, a
/// prescription and an allergy, by the lab's own identifiers.
pub(crate) fn lab_bundle(patient: PatientId, potassium: f64) -> Value {
    let text = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[
 {{"fullUrl":"urn:uuid:0b1d3c1e-0000-4000-8000-000000000001","request":{{"method":"POST","url":"DiagnosticReport"}},
  "resource":{{"resourceType":"DiagnosticReport","identifier":[{{"system":"urn:oid:1.2.3.4","value":"R-1"}}],"status":"final",
   "code":{{"coding":[{{"system":"http://loinc.org","code":"51990-0","display":"Basic metabolic panel - Blood"}}]}},
   "subject":{{"reference":"Patient/{patient}"}},"effectiveDateTime":"2025-05-01T10:15:00+02:00",
   "result":[{{"reference":"urn:uuid:0b1d3c1e-0000-4000-8000-000000000002"}}]}}}},
 {{"fullUrl":"urn:uuid:0b1d3c1e-0000-4000-8000-000000000002","request":{{"method":"POST","url":"Observation"}},
  "resource":{{"resourceType":"Observation","identifier":[{{"system":"urn:oid:1.2.3.4","value":"O-1"}}],"status":"final",
   "code":{{"coding":[{{"system":"http://loinc.org","code":"2823-3","display":"Potassium"}}]}},
   "subject":{{"reference":"Patient/{patient}"}},"effectiveDateTime":"2025-05-01T10:15:00+02:00",
   "valueQuantity":{{"value":{potassium},"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}},
   "referenceRange":[{{"low":{{"value":3.5}},"high":{{"value":5.1}}}}]}}}},
 {{"request":{{"method":"POST","url":"MedicationRequest"}},
  "resource":{{"resourceType":"MedicationRequest","identifier":[{{"system":"urn:oid:1.2.3.5","value":"M-1"}}],"status":"active","intent":"order",
   "medicationCodeableConcept":{{"coding":[{{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"617310","display":"atorvastatin 20 MG Oral Tablet"}}]}},
   "subject":{{"reference":"Patient/{patient}"}},"authoredOn":"2025-05-01",
   "dosageInstruction":[{{"text":"1 tablet daily"}}],"dispenseRequest":{{"numberOfRepeatsAllowed":3,"quantity":{{"value":30}}}}}}}},
 {{"request":{{"method":"POST","url":"AllergyIntolerance"}},
  "resource":{{"resourceType":"AllergyIntolerance","identifier":[{{"system":"urn:oid:1.2.3.6","value":"A-1"}}],
   "clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}}]}},
   "code":{{"coding":[{{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"1191","display":"Aspirin"}}]}},
   "patient":{{"reference":"Patient/{patient}"}},"reaction":[{{"manifestation":[{{"text":"Hives"}}],"severity":"mild"}}]}}}}
]}}"#
    );
    from_serde(serde_json::from_str(&text).unwrap())
}

#[test]
fn a_transaction_bundle_plans_entries_with_ids_from_identifiers() {
    let patient = PatientId::mint();
    let clinic = ClinicId::mint();
    let system = prov(clinic, UserId::mint(), "2025-05-02T00:00:00Z");
    let plan = import::plan(&lab_bundle(patient, 4.2), clinic, &system).expect("valid");
    assert_eq!(plan.patient, patient);
    assert_eq!(plan.entries.len(), 4);
    let Entry::Report(report) = &plan.entries[0].entry else { panic!("a report first") };
    assert_eq!(report.effective, "2025-05-01T08:15:00Z", "times are stored in UTC");
    let Entry::Observation(obs) = &plan.entries[1].entry else { panic!("then the result") };
    assert_eq!(obs.report, Some(plan.entries[0].id));
    assert_eq!(obs.unit.as_deref(), Some("mmol/L"));
    assert_eq!(obs.provenance, system);
    let Entry::Prescription(rx) = &plan.entries[2].entry else { panic!() };
    assert_eq!((rx.refills_allowed, rx.quantity, rx.authored.as_str()), (3, 30, "2025-05-01"));
    let Entry::Allergy(allergy) = &plan.entries[3].entry else { panic!() };
    assert_eq!((allergy.status, allergy.severity), (AllergyStatus::Active, Severity::Mild));
    // The same Bundle names the same entries; another clinic's, others.
    let again = import::plan(&lab_bundle(patient, 4.2), clinic, &system).unwrap();
    assert_eq!(again, plan);
    let elsewhere = import::plan(&lab_bundle(patient, 4.2), ClinicId::mint(), &system).unwrap();
    assert_ne!(elsewhere.entries[0].id, plan.entries[0].id);
    // A portal identifier keeps its entry id.
    let id = EntryId::mint();
    assert_eq!(import::entry_id(clinic, super::URI, &format!("urn:uuid:{id}")), id);
}

#[test]
fn every_problem_of_an_invalid_bundle_is_named() {
    let patient = PatientId::mint();
    let clinic = ClinicId::mint();
    let system = prov(clinic, UserId::mint(), "2025-05-02T00:00:00Z");
    let mut bundle = lab_bundle(patient, 4.2);
    let Value::Object(members) = &mut bundle else { unreachable!() };
    let entries = &mut members.iter_mut().find(|(k, _)| k == "entry").unwrap().1;
    let Value::Array(entries) = entries else { unreachable!() };
    // No LOINC coding, a unit outside UCUM, no identifier on the allergy,
    // a time without a zone.
    let obs = entries[1].get("resource").unwrap().clone();
    let mut obs = obs;
    obs.set("code", Value::object([("text", "Potassium".into())]));
    obs.set(
        "valueQuantity",
        Value::object([("value", 4.2.into()), ("system", "http://example.org/units".into())]),
    );
    entries[1].set("resource", obs);
    let mut allergy = entries[3].get("resource").unwrap().clone();
    allergy.set("identifier", Value::Array(Vec::new()));
    entries[3].set("resource", allergy);
    let mut rx = entries[2].get("resource").unwrap().clone();
    rx.set("authoredOn", "2025-05-01T10:00:00".into());
    entries[2].set("resource", rx);
    let issues = import::plan(&bundle, clinic, &system).unwrap_err();
    let at = |expression: &str| issues.iter().any(|i: &Issue| i.expression == expression);
    assert!(at("Bundle.entry[1].resource.code.coding"), "{issues:?}");
    assert!(at("Bundle.entry[1].resource.valueQuantity.system"), "{issues:?}");
    assert!(at("Bundle.entry[3].resource.identifier"), "{issues:?}");
    assert!(at("Bundle.entry[2].resource.authoredOn"), "{issues:?}");
    let outcome = super::operation_outcome(&issues);
    assert_eq!(outcome.str_at(&["resourceType"]), Some("OperationOutcome"));
    assert_eq!(outcome.items("issue").len(), issues.len());

    // Not a transaction, another patient in the middle, too many resources.
    let mut other = lab_bundle(PatientId::mint(), 4.2);
    other.set("type", "collection".into());
    let mut mixed = lab_bundle(patient, 4.2);
    let second = lab_bundle(PatientId::mint(), 4.2);
    let mut all = mixed.items("entry").to_vec();
    all.push(second.items("entry")[2].clone());
    mixed.set("entry", all.into());
    let issues = import::plan(&mixed, clinic, &system).unwrap_err();
    assert!(issues.iter().any(|i| i.code == "business-rule"), "{issues:?}");
    let issues = import::plan(&other, clinic, &system).unwrap_err();
    assert!(issues.iter().any(|i| i.expression == "Bundle.type"), "{issues:?}");
    let mut huge = lab_bundle(patient, 4.2);
    huge.set("entry", vec![huge.items("entry")[2].clone(); import::MAX_RESOURCES + 1].into());
    let issues = import::plan(&huge, clinic, &system).unwrap_err();
    assert!(issues.iter().any(|i| i.code == "too-costly"), "{issues:?}");
}

#[test]
fn times_convert_to_utc() {
    use super::import::to_utc;
    assert_eq!(to_utc("2025-01-01T00:30:00+02:00").as_deref(), Some("2024-12-31T22:30:00Z"));
    assert_eq!(to_utc("2024-02-28T23:00:00.123-05:00").as_deref(), Some("2024-02-29T04:00:00Z"));
    assert_eq!(to_utc("2025-03-01").as_deref(), Some("2025-03-01"));
    assert_eq!(to_utc("2025-03-01T10:00:00Z").as_deref(), Some("2025-03-01T10:00:00Z"));
    for bad in [
        "2025-03-01T10:00:00",
        "2025-13-01",
        "yesterday",
        "2025-03-01T10:00Z",
        "2025-03-01T10:00:00+2",
    ] {
        assert_eq!(to_utc(bad), None, "{bad}");
    }
}

#[test]
fn an_exported_record_imports_elsewhere_as_the_same_entries() {
    let f = fixture();
    let exported = resources(&f.data);
    let imported_types =
        ["Observation", "DiagnosticReport", "MedicationRequest", "AllergyIntolerance"];
    let entries: Vec<Value> = exported
        .iter()
        .filter(|r| imported_types.contains(&r.str_at(&["resourceType"]).unwrap()))
        .map(|r| {
            let kind = r.str_at(&["resourceType"]).unwrap();
            Value::object([
                ("request", Value::object([("method", "POST".into()), ("url", kind.into())])),
                ("resource", r.clone()),
            ])
        })
        .collect();
    let transaction = Value::object([
        ("resourceType", "Bundle".into()),
        ("type", "transaction".into()),
        ("entry", entries.into()),
    ]);
    let elsewhere = ClinicId::mint();
    let system = prov(elsewhere, UserId::mint(), "2026-01-01T00:00:00Z");
    let plan = import::plan(&transaction, elsewhere, &system).expect("an export imports");
    assert_eq!(plan.patient, f.data.patient);
    let original = &f.data.clinical[&f.clinic];
    let n = original.observations.len()
        + original.reports.len()
        + original.prescriptions.len()
        + original.allergies.len();
    assert_eq!(plan.entries.len(), n);
    for imported in &plan.entries {
        let key = imported.id.to_string();
        // The same entry ids, the same clinical content; the recording is
        // the importer's.
        match &imported.entry {
            Entry::Observation(o) => {
                let before = &original.observations[&key];
                assert_eq!(
                    Observation {
                        provenance: before.provenance.clone(),
                        replaces: before.replaces,
                        status_reason: before.status_reason.clone(),
                        status_by: before.status_by,
                        status_at: before.status_at.clone(),
                        ..o.clone()
                    },
                    *before
                );
                assert_eq!(o.provenance, system);
            }
            Entry::Report(r) => assert_eq!(
                (&r.loinc, &r.effective, r.status),
                (
                    &original.reports[&key].loinc,
                    &original.reports[&key].effective,
                    original.reports[&key].status
                )
            ),
            Entry::Prescription(p) => {
                let before = &original.prescriptions[&key];
                assert_eq!(
                    (
                        &p.rxnorm,
                        &p.dosage,
                        p.quantity,
                        p.refills_allowed,
                        p.status,
                        &p.override_reason
                    ),
                    (
                        &before.rxnorm,
                        &before.dosage,
                        before.quantity,
                        before.refills_allowed,
                        before.status,
                        &before.override_reason
                    )
                );
            }
            Entry::Allergy(a) => {
                let before = &original.allergies[&key];
                assert_eq!(
                    (&a.substance_code, &a.reaction, a.severity, a.status),
                    (&before.substance_code, &before.reaction, before.severity, before.status)
                );
            }
        }
    }
}
