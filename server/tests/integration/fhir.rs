//! FHIR R4: `portal export` and `portal import` (the real binary, on both
//! engines), the import's refusals and bounds, and the read API.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use server::demo::{self, DemoUser};
use shared::api::UserRole;
use shared::schema::{ClinicalRecord, DocKind};
use shared::{ClinicId, PatientId};
use testkit::{TestDatabase, TestServer};

use crate::authenticator::SoftPasskey;
use crate::client::{Browser, invite};

use crate::BACKENDS;

pub fn portal(args: &[&str], url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portal"))
        .args(args)
        .args(["--database-url", url])
        .env("PORTAL_LOG", "warn")
        .output()
        .expect("portal runs")
}

/// A lab's transaction Bundle for `patient`: a panel with one potassium
/// result, a prescription and an allergy, by the lab's identifiers.
pub fn lab_bundle(patient: PatientId, potassium: f64) -> Value {
    let subject = json!({ "reference": format!("Patient/{patient}") });
    let entry = |url: &str, full: Option<&str>, resource: Value| {
        let mut e = json!({ "request": { "method": "POST", "url": url }, "resource": resource });
        if let Some(full) = full {
            e["fullUrl"] = json!(full);
        }
        e
    };
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry("DiagnosticReport", Some("urn:uuid:5d0c6b2a-0000-4000-8000-000000000001"), json!({
                "resourceType": "DiagnosticReport",
                "identifier": [{ "system": "urn:oid:2.16.840.1.113883.3.1", "value": "R-100" }],
                "status": "final",
                "code": { "coding": [{ "system": "http://loinc.org", "code": "51990-0", "display": "Basic metabolic panel - Blood" }] },
                "subject": subject,
                "effectiveDateTime": "2026-11-30T08:15:00-05:00",
                "result": [{ "reference": "urn:uuid:5d0c6b2a-0000-4000-8000-000000000002" }]
            })),
            entry("Observation", Some("urn:uuid:5d0c6b2a-0000-4000-8000-000000000002"), json!({
                "resourceType": "Observation",
                "identifier": [{ "system": "urn:oid:2.16.840.1.113883.3.1", "value": "O-100" }],
                "status": "final",
                "code": { "coding": [{ "system": "http://loinc.org", "code": "2823-3", "display": "Potassium [Moles/volume] in Serum or Plasma" }] },
                "subject": subject,
                "effectiveDateTime": "2026-11-30T08:15:00-05:00",
                "valueQuantity": { "value": potassium, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L" },
                "referenceRange": [{ "low": { "value": 3.5 }, "high": { "value": 5.1 } }]
            })),
            entry("MedicationRequest", None, json!({
                "resourceType": "MedicationRequest",
                "identifier": [{ "system": "urn:oid:2.16.840.1.113883.3.2", "value": "M-100" }],
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361", "display": "amlodipine 5 MG Oral Tablet" }] },
                "subject": subject,
                "authoredOn": "2026-11-30",
                "dosageInstruction": [{ "text": "1 tablet by mouth once daily" }],
                "dispenseRequest": { "numberOfRepeatsAllowed": 3, "quantity": { "value": 30 } }
            })),
            entry("AllergyIntolerance", None, json!({
                "resourceType": "AllergyIntolerance",
                "identifier": [{ "system": "urn:oid:2.16.840.1.113883.3.3", "value": "A-100" }],
                "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active" }] },
                "code": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1191", "display": "Aspirin" }] },
                "patient": subject,
                "reaction": [{ "manifestation": [{ "text": "Hives" }], "severity": "mild" }]
            })),
        ]
    })
}

pub struct Demo {
    pub users: Vec<DemoUser>,
    pub maria: PatientId,
    pub james: PatientId,
    /// Riverside: both patients consent.
    pub riverside: ClinicId,
    /// Northgate: only Maria consents.
    pub northgate: ClinicId,
}

pub async fn seed(store: &server::storage::Store) -> Demo {
    let users = demo::seed(store).await.unwrap();
    let patients: Vec<PatientId> =
        users.iter().filter(|u| u.role == UserRole::Patient).filter_map(|u| u.patient).collect();
    let providers: Vec<ClinicId> =
        users.iter().filter(|u| u.role == UserRole::Provider).map(|u| u.clinics[0]).collect();
    Demo {
        maria: patients[0],
        james: patients[1],
        riverside: providers[0],
        northgate: providers[1],
        users,
    }
}

/// The clinic's record of the patient, hydrated, with its stored sequence number.
async fn clinical(
    store: &server::storage::Store,
    patient: PatientId,
    clinic: ClinicId,
) -> (ClinicalRecord, i64) {
    let id = DocKind::ClinicalRecord { patient, clinic }.doc_id();
    let stored = store.load_document(id).await.unwrap().unwrap();
    (autosurgeon::hydrate(&stored.to_automerge().unwrap()).unwrap(), stored.seq)
}

fn write(dir: &Path, name: &str, bundle: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(bundle).unwrap()).unwrap();
    path
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn issues(outcome: &Value) -> Vec<String> {
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {} {}",
                i["code"].as_str().unwrap(),
                i["expression"][0].as_str().unwrap_or(""),
                i["diagnostics"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn export_prints_the_whole_record_as_a_bundle() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let demo = seed(&store).await;
        let out = portal(&["export", "--patient", &demo.maria.to_string()], &db.url);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let bundle = stdout_json(&out);
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "collection");
        let resources: Vec<&Value> =
            bundle["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).collect();
        let of = |kind: &str| resources.iter().filter(|r| r["resourceType"] == kind).count();
        let (riverside, _) = clinical(&store, demo.maria, demo.riverside).await;
        let (northgate, _) = clinical(&store, demo.maria, demo.northgate).await;
        assert_eq!(of("Patient"), 1);
        assert_eq!(of("Observation"), riverside.observations.len() + northgate.observations.len());
        assert_eq!(of("DiagnosticReport"), riverside.reports.len() + northgate.reports.len());
        assert_eq!(
            of("MedicationRequest"),
            riverside.prescriptions.len() + northgate.prescriptions.len()
        );
        assert_eq!(of("Organization"), 2, "{backend:?}: both clinics");
        assert!(of("Communication") > 0 && of("AllergyIntolerance") > 0 && of("Immunization") > 0);
        assert!(of("Provenance") >= of("Observation") + of("MedicationRequest"));
        let patient = resources.iter().find(|r| r["resourceType"] == "Patient").unwrap();
        assert_eq!(patient["id"], demo.maria.to_string());
        for r in &resources {
            let kind = r["resourceType"].as_str().unwrap();
            if kind == "Observation" {
                assert_eq!(r["code"]["coding"][0]["system"], "http://loinc.org");
                assert_eq!(r["valueQuantity"]["system"], "http://unitsofmeasure.org", "{r}");
                assert!(r["meta"]["source"].as_str().unwrap().starts_with("urn:uuid:"));
            }
        }
        // The same ids on every export.
        let again =
            stdout_json(&portal(&["export", "--patient", &demo.maria.to_string()], &db.url));
        assert_eq!(again, bundle, "{backend:?}: exports are stable");
        // The export is in the patient's access log.
        let log = store.patient_audit(demo.maria, 10).await.unwrap();
        assert!(log.iter().any(|e| e.action == shared::api::AuditAction::RecordExported));
        // An unknown patient is an error, not an empty Bundle.
        let out = portal(&["export", "--patient", &PatientId::mint().to_string()], &db.url);
        assert!(!out.status.success());
        store.close().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn import_is_idempotent_atomic_and_as_safe_as_a_provider() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let demo = seed(&store).await;
        let dir = tempfile::tempdir().unwrap();
        let clinic = demo.riverside.to_string();
        let (before, _) = clinical(&store, demo.james, demo.riverside).await;

        let good = write(dir.path(), "good.json", &lab_bundle(demo.james, 4.2));
        let out = portal(&["import", "--clinic", &clinic, good.to_str().unwrap()], &db.url);
        assert!(
            out.status.success(),
            "{backend:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("imported 4 new entries"));
        let (after, seq) = clinical(&store, demo.james, demo.riverside).await;
        assert_eq!(after.observations.len(), before.observations.len() + 1);
        assert_eq!(after.reports.len(), before.reports.len() + 1);
        assert_eq!(after.prescriptions.len(), before.prescriptions.len() + 1);
        assert_eq!(after.allergies.len(), before.allergies.len() + 1);
        let new = after
            .observations
            .values()
            .find(|o| !before.observations.values().any(|b| b == *o))
            .unwrap();
        assert!(new.provenance.recorder_name.ends_with("(FHIR import)"), "{:?}", new.provenance);
        assert_eq!(new.effective, "2026-11-30T13:15:00Z");
        assert!(new.report.is_some());

        // Again: nothing new, nothing stored.
        let out = portal(&["import", "--clinic", &clinic, good.to_str().unwrap()], &db.url);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("imported 0 new entries (4 already"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(clinical(&store, demo.james, demo.riverside).await.1, seq);

        // Invalid: every problem named, nothing stored.
        let mut invalid = lab_bundle(demo.james, 4.4);
        invalid["entry"][0]["resource"]["identifier"][0]["value"] = json!("R-101");
        invalid["entry"][1]["resource"]["identifier"][0]["value"] = json!("O-101");
        invalid["entry"][1]["resource"]["code"] = json!({ "text": "potassium" });
        invalid["entry"][2]["resource"]["status"] = json!("on-hold");
        invalid["entry"][3]["resource"]["identifier"] = json!([]);
        let path = write(dir.path(), "invalid.json", &invalid);
        let out = portal(&["import", "--clinic", &clinic, path.to_str().unwrap()], &db.url);
        assert!(!out.status.success());
        let found = issues(&stdout_json(&out));
        for expected in [
            "Bundle.entry[1].resource.code.coding",
            "Bundle.entry[2].resource.status",
            "Bundle.entry[3].resource.identifier",
        ] {
            assert!(
                found.iter().any(|i| i.contains(expected)),
                "{backend:?}: {expected} in {found:?}"
            );
        }
        assert_eq!(
            clinical(&store, demo.james, demo.riverside).await.1,
            seq,
            "nothing half-applied"
        );

        // Safety: an impossible potassium is refused like a provider's, the
        // valid rest of the Bundle with it.
        let mut impossible = lab_bundle(demo.james, 25.0);
        for (i, value) in ["R-102", "O-102", "M-102", "A-102"].iter().enumerate() {
            impossible["entry"][i]["resource"]["identifier"][0]["value"] = json!(value);
        }
        let path = write(dir.path(), "impossible.json", &impossible);
        let out = portal(&["import", "--clinic", &clinic, path.to_str().unwrap()], &db.url);
        assert!(!out.status.success());
        let found = issues(&stdout_json(&out));
        assert!(
            found
                .iter()
                .any(|i| i.contains("implausible") && i.contains("Bundle.entry[1].resource")),
            "{found:?}"
        );
        // A critical value must come marked critical.
        impossible["entry"][1]["resource"]["valueQuantity"]["value"] = json!(6.9);
        let path = write(dir.path(), "critical.json", &impossible);
        let out = portal(&["import", "--clinic", &clinic, path.to_str().unwrap()], &db.url);
        let found = issues(&stdout_json(&out));
        assert!(found.iter().any(|i| i.contains("critical-mark")), "{found:?}");
        assert_eq!(clinical(&store, demo.james, demo.riverside).await.1, seq, "nothing stored");

        // A clinic the patient does not consent to gets nothing in.
        let path = write(dir.path(), "northgate.json", &lab_bundle(demo.james, 4.2));
        let out = portal(
            &["import", "--clinic", &demo.northgate.to_string(), path.to_str().unwrap()],
            &db.url,
        );
        assert!(!out.status.success());
        assert!(issues(&stdout_json(&out))[0].starts_with("not-found"));
        assert!(
            store
                .load_document(
                    DocKind::ClinicalRecord { patient: demo.james, clinic: demo.northgate }
                        .doc_id()
                )
                .await
                .unwrap()
                .is_none()
        );

        // The import is audited as a change by the clinic's import account.
        let log = store.patient_audit(demo.james, 20).await.unwrap();
        assert!(log.iter().any(|e| e.action == shared::api::AuditAction::ChangeAccepted
            && e.detail == "fhir import"
            && e.user_name.as_deref().is_some_and(|n| n.ends_with("(FHIR import)"))));
        store.close().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn hostile_bundles_are_bounded_before_parsing_and_change_nothing() {
    let db = TestDatabase::new(server::storage::Backend::Sqlite).await;
    let store = db.store().await;
    let demo = seed(&store).await;
    let (_, seq) = clinical(&store, demo.james, demo.riverside).await;
    let dir = tempfile::tempdir().unwrap();
    let clinic = demo.riverside.to_string();
    let run =
        |path: &Path| portal(&["import", "--clinic", &clinic, path.to_str().unwrap()], &db.url);

    // Oversized: refused before parsing.
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; server::fhir::MAX_BUNDLE_BYTES + 1]).unwrap();
    let found = issues(&stdout_json(&run(&big)));
    assert!(found[0].contains("larger than"), "{found:?}");
    // Deeply nested: the parser's recursion limit, no stack overflow.
    let deep = dir.path().join("deep.json");
    std::fs::write(&deep, format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))).unwrap();
    let found = issues(&stdout_json(&run(&deep)));
    assert!(found[0].contains("not JSON"), "{found:?}");
    // Too many resources for one change.
    let mut many = lab_bundle(demo.james, 4.2);
    let one = many["entry"][2].clone();
    many["entry"] = json!(
        (0..shared::fhir::import::MAX_RESOURCES + 1)
            .map(|i| {
                let mut e = one.clone();
                e["resource"]["identifier"][0]["value"] = json!(format!("M-{i}"));
                e
            })
            .collect::<Vec<_>>()
    );
    let found = issues(&stdout_json(&run(&write(dir.path(), "many.json", &many))));
    assert!(found[0].starts_with("too-costly"), "{found:?}");
    // Not a Bundle; a resource of another patient smuggled in; a field
    // over its limit (checked by the write policy).
    let found = issues(&stdout_json(&run(&write(
        dir.path(),
        "patient.json",
        &json!({ "resourceType": "Patient" }),
    ))));
    assert!(found[0].contains("not a Bundle"), "{found:?}");
    let mut smuggled = lab_bundle(demo.james, 4.2);
    smuggled["entry"][3]["resource"]["patient"]["reference"] =
        json!(format!("Patient/{}", demo.maria));
    let found = issues(&stdout_json(&run(&write(dir.path(), "smuggled.json", &smuggled))));
    assert!(found.iter().any(|i| i.starts_with("business-rule")), "{found:?}");
    let mut long = lab_bundle(demo.james, 4.2);
    long["entry"][2]["resource"]["dosageInstruction"][0]["text"] = json!("x".repeat(5_000));
    let found = issues(&stdout_json(&run(&write(dir.path(), "long.json", &long))));
    assert!(
        found.iter().any(|i| i.contains("rule limit") && i.contains("Bundle.entry[2]")),
        "{found:?}"
    );
    assert_eq!(clinical(&store, demo.james, demo.riverside).await.1, seq, "nothing stored");
    store.close().await;
    db.drop_database().await;
}

/// Signs a demo user in with a new passkey, as the person would.
pub async fn sign_in(app: &TestServer, user: shared::UserId) -> Browser {
    let (link, _) = server::auth::accounts::issue_enrollment(
        &app.store,
        &app.base_url,
        user,
        None,
        app.clock.now_ms(),
    )
    .await
    .unwrap();
    let mut browser = Browser::new(&app.base_url);
    browser.enroll(&mut SoftPasskey::new(), &link).await;
    browser
}

/// A FHIR GET with the browser's session; the status and body, after
/// checking the content type.
async fn fhir(browser: Option<&Browser>, base: &str, path: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(cookie) = browser.and_then(|b| b.cookie.as_ref()) {
        request = request.header("cookie", format!("portal_session={cookie}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/fhir+json", "{path}");
    (status, response.json().await.unwrap())
}

fn resources(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect()
}

fn count(bundle: &Value, kind: &str) -> usize {
    resources(bundle).iter().filter(|r| r["resourceType"] == kind).count()
}

#[tokio::test]
async fn the_read_api_follows_the_read_rules_of_sync_and_is_audited() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let demo = seed(&app.store).await;
        let base = app.base_url.clone();
        let user = |role: UserRole, n: usize| {
            demo.users.iter().filter(|u| u.role == role).nth(n).unwrap().id
        };
        let maria = sign_in(&app, user(UserRole::Patient, 0)).await;
        let brandt = sign_in(&app, user(UserRole::Provider, 1)).await;
        let admin = sign_in(&app, user(UserRole::Admin, 0)).await;
        let carer_invite =
            invite(&app, UserRole::Caregiver, "Ana Santos", None, Some(demo.maria)).await;
        let mut carer = Browser::new(&base);
        carer.enroll(&mut SoftPasskey::new(), &carer_invite.link).await;

        // The capability statement is public.
        let (status, cs) = fhir(None, &base, "/fhir/R4/metadata").await;
        assert_eq!((status, cs["resourceType"].as_str()), (200, Some("CapabilityStatement")));
        assert_eq!(cs["fhirVersion"], "4.0.1");
        // Everything else needs a session.
        let path = format!("/fhir/R4/Patient/{}/$everything", demo.maria);
        let (status, outcome) = fhir(None, &base, &path).await;
        assert_eq!((status, outcome["resourceType"].as_str()), (401, Some("OperationOutcome")));

        // The patient reads their whole record; the caregiver the same.
        let (status, everything) = fhir(Some(&maria), &base, &path).await;
        assert_eq!(status, 200, "{everything}");
        assert_eq!(everything["type"], "searchset");
        let (riverside, _) = clinical(&app.store, demo.maria, demo.riverside).await;
        let (northgate, _) = clinical(&app.store, demo.maria, demo.northgate).await;
        assert_eq!(
            count(&everything, "Observation"),
            riverside.observations.len() + northgate.observations.len()
        );
        let (status, as_carer) = fhir(Some(&carer), &base, &path).await;
        assert_eq!(status, 200);
        assert_eq!(resources(&as_carer).len(), resources(&everything).len(), "{backend:?}");

        // A provider of one consenting clinic sees what they sync: both
        // clinical records, but only their own clinic's messages.
        let (status, as_brandt) = fhir(Some(&brandt), &base, &path).await;
        assert_eq!(status, 200);
        assert_eq!(count(&as_brandt, "Observation"), count(&everything, "Observation"));
        let messages = |bundle: &Value, clinic: ClinicId| {
            resources(bundle)
                .iter()
                .filter(|r| {
                    r["resourceType"] == "Communication"
                        && r["meta"]["source"] == format!("urn:uuid:{clinic}")
                })
                .count()
        };
        assert!(messages(&everything, demo.riverside) > 0);
        assert_eq!(
            messages(&as_brandt, demo.riverside),
            0,
            "{backend:?}: not another clinic's thread"
        );
        assert_eq!(messages(&as_brandt, demo.northgate), messages(&everything, demo.northgate));
        // A clinic admin syncs demographics only.
        let (status, as_admin) = fhir(Some(&admin), &base, &path).await;
        assert_eq!(status, 200);
        assert_eq!(count(&as_admin, "Patient"), 1);
        assert_eq!(count(&as_admin, "Observation") + count(&as_admin, "Communication"), 0);

        // A provider of a clinic the patient does not consent to gets 404,
        // as for a patient that does not exist.
        for path in [
            format!("/fhir/R4/Patient/{}/$everything", demo.james),
            format!("/fhir/R4/Patient/{}", demo.james),
            format!("/fhir/R4/Observation?patient={}", demo.james),
            format!("/fhir/R4/Patient/{}/$everything", PatientId::mint()),
        ] {
            let (status, outcome) = fhir(Some(&brandt), &base, &path).await;
            assert_eq!(
                (status, outcome["resourceType"].as_str()),
                (404, Some("OperationOutcome")),
                "{path}"
            );
        }
        let (status, _) =
            fhir(Some(&maria), &base, &format!("/fhir/R4/Patient/{}/$everything", demo.james))
                .await;
        assert_eq!(status, 404, "another patient's record");

        // Searches.
        let (status, potassium) =
            fhir(Some(&maria), &base, "/fhir/R4/Observation?code=http://loinc.org|2823-3").await;
        assert_eq!(status, 200);
        let expected = riverside
            .observations
            .values()
            .chain(northgate.observations.values())
            .filter(|o| o.loinc == "2823-3")
            .count();
        assert!(expected > 0);
        assert_eq!(count(&potassium, "Observation"), expected);
        assert_eq!(potassium["total"], expected);
        let year =
            riverside.observations.values().map(|o| o.effective[..4].to_owned()).max().unwrap();
        let (_, recent) = fhir(
            Some(&maria),
            &base,
            &format!(
                "/fhir/R4/Observation?patient=Patient/{}&category=laboratory&date=ge{year}",
                demo.maria
            ),
        )
        .await;
        let expected = riverside
            .observations
            .values()
            .chain(northgate.observations.values())
            .filter(|o| o.effective[..4] >= *year)
            .count();
        assert_eq!(count(&recent, "Observation"), expected);
        let (_, none) =
            fhir(Some(&maria), &base, "/fhir/R4/Observation?category=vital-signs").await;
        assert_eq!(count(&none, "Observation"), 0);
        for kind in ["MedicationRequest", "AllergyIntolerance", "Immunization", "Appointment"] {
            let (status, found) = fhir(Some(&maria), &base, &format!("/fhir/R4/{kind}")).await;
            assert_eq!(status, 200);
            assert_eq!(count(&found, kind), count(&everything, kind), "{kind}");
            assert_eq!(resources(&found).len(), count(&found, kind), "{kind} only");
        }
        let (status, _) = fhir(Some(&maria), &base, "/fhir/R4/Observation?date=last-week").await;
        assert_eq!(status, 400);
        let (status, _) = fhir(Some(&brandt), &base, "/fhir/R4/Observation").await;
        assert_eq!(status, 400, "staff name the patient");
        let (status, _) = fhir(Some(&maria), &base, "/fhir/R4/Condition").await;
        assert_eq!(status, 404);

        // Every read is in the patient's access log, by who read.
        let log = app.store.patient_audit(demo.maria, 100).await.unwrap();
        let reads: Vec<_> =
            log.iter().filter(|e| e.action == shared::api::AuditAction::RecordRead).collect();
        assert!(
            reads
                .iter()
                .any(|e| e.user == Some(user(UserRole::Provider, 1))
                    && e.detail == "FHIR $everything")
        );
        assert!(reads.iter().any(|e| e.user == Some(carer_invite.user.id)));
        assert!(reads.iter().any(|e| e.detail == "FHIR Observation search"));
        assert!(
            !app.store
                .patient_audit(demo.james, 100)
                .await
                .unwrap()
                .iter()
                .any(|e| e.action == shared::api::AuditAction::RecordRead),
            "refused reads read nothing"
        );
        app.stop().await;
        db.drop_database().await;
    }
}

/// A POST with the browser's session and the portal's Origin.
pub async fn post(
    browser: Option<&Browser>,
    base: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("origin", base)
        .header("content-type", "application/fhir+json")
        .body(body);
    if let Some(cookie) = browser.and_then(|b| b.cookie.as_ref()) {
        request = request.header("cookie", format!("portal_session={cookie}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn a_posted_transaction_reaches_the_patient_live_once() {
    use automerge::Automerge;
    use shared::sync::SyncClient;
    use std::time::Duration;
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let demo = seed(&app.store).await;
        let base = app.base_url.clone();
        let user = |role: UserRole, n: usize| {
            demo.users.iter().filter(|u| u.role == role).nth(n).unwrap().id
        };
        // James's device syncs his Riverside record.
        let doc = DocKind::ClinicalRecord { patient: demo.james, clinic: demo.riverside }.doc_id();
        let mut client = SyncClient::new(format!("test-{}", uuid::Uuid::now_v7().simple()));
        client.insert(doc, Automerge::new());
        let url = format!("{}/sync", base.replacen("http", "ws", 1));
        let headers = [("x-portal-test-user", user(UserRole::Patient, 1).to_string())];
        let mut james = testkit::Replica::connect(&url, &headers, client).await.unwrap();
        james.sync_all(Duration::from_secs(30)).await.unwrap();
        james.take_received();
        let (before, _) = clinical(&app.store, demo.james, demo.riverside).await;

        let okafor = sign_in(&app, user(UserRole::Provider, 0)).await;
        let body = serde_json::to_vec(&lab_bundle(demo.james, 4.2)).unwrap();
        let (status, response) = post(Some(&okafor), &base, "/fhir/R4", body.clone()).await;
        assert_eq!(status, 200, "{backend:?}: {response}");
        assert_eq!(response["type"], "transaction-response");
        let statuses: Vec<&str> = response["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["response"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["201 Created"; 4]);
        // Live on the patient's device, without asking.
        james
            .sync_until(Duration::from_secs(30), |c, _| {
                c.doc(doc).is_some_and(|d| {
                    autosurgeon::hydrate::<_, ClinicalRecord>(d).unwrap().observations.len()
                        == before.observations.len() + 1
                })
            })
            .await
            .unwrap();
        let (_, seq) = clinical(&app.store, demo.james, demo.riverside).await;

        // Sent again: nothing new.
        let (status, response) = post(Some(&okafor), &base, "/fhir/R4", body.clone()).await;
        assert_eq!(status, 200);
        assert!(
            response["entry"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["response"]["status"] == "200 OK")
        );
        assert_eq!(clinical(&app.store, demo.james, demo.riverside).await.1, seq);
        // Who posted it is in the access log.
        let log = app.store.patient_audit(demo.james, 20).await.unwrap();
        assert!(
            log.iter()
                .any(|e| e.detail == "fhir import" && e.user == Some(user(UserRole::Provider, 0)))
        );

        // Refusals, each storing nothing.
        let impossible = serde_json::to_vec(&{
            let mut b = lab_bundle(demo.james, 25.0);
            b["entry"][1]["resource"]["identifier"][0]["value"] = json!("O-999");
            b
        })
        .unwrap();
        let (status, outcome) = post(Some(&okafor), &base, "/fhir/R4", impossible).await;
        assert_eq!(status, 422, "{outcome}");
        assert!(issues(&outcome).iter().any(|i| i.contains("implausible")));
        let brandt = sign_in(&app, user(UserRole::Provider, 1)).await;
        let (status, outcome) = post(Some(&brandt), &base, "/fhir/R4", body.clone()).await;
        assert_eq!(
            (status, outcome["resourceType"].as_str()),
            (404, Some("OperationOutcome")),
            "no consent to Northgate"
        );
        let maria = sign_in(&app, user(UserRole::Patient, 0)).await;
        let (status, _) = post(Some(&maria), &base, "/fhir/R4", body.clone()).await;
        assert_eq!(status, 403, "patients do not import");
        let (status, _) = post(None, &base, "/fhir/R4", body.clone()).await;
        assert_eq!(status, 401);
        let (status, outcome) =
            post(Some(&okafor), &base, "/fhir/R4", b"{\"resourceType\":".to_vec()).await;
        assert_eq!(status, 400, "{outcome}");
        let (status, _) =
            post(Some(&okafor), &base, "/fhir/R4", vec![b' '; server::fhir::MAX_BUNDLE_BYTES + 1])
                .await;
        assert_eq!(status, 413, "the body limit holds before parsing");
        let (status, _) = post(
            Some(&okafor),
            &base,
            &format!("/fhir/R4?clinic={}", demo.northgate),
            body.clone(),
        )
        .await;
        assert_eq!(status, 403, "not their clinic");
        let forged = reqwest::Client::new()
            .post(format!("{base}/fhir/R4"))
            .header("origin", "https://evil.example")
            .header("cookie", format!("portal_session={}", okafor.cookie.as_ref().unwrap()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status().as_u16(), 403, "cross-site posts are refused");
        assert_eq!(
            clinical(&app.store, demo.james, demo.riverside).await.1,
            seq,
            "{backend:?}: nothing stored"
        );
        james.close().await;
        app.stop().await;
        db.drop_database().await;
    }
}
