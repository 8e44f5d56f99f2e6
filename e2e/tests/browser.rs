//! Browser flows against a real server on a free port with its own database.
//! These need neither the sync endpoint nor sign-in: they check the shell,
//! the service worker, and opening local replicas from IndexedDB offline.

use std::time::Duration;

use chromiumoxide::Page;
use e2e::{
    Browser, app_dist, choose, click, set_offline, type_into, wait_for_service_worker,
    wait_for_text,
};
use server::storage::Backend;
use shared::record::{self, Entry};
use shared::schema::{
    Allergy, Demographics, DocKind, Message, Observation, Prescription, Provenance,
};
use shared::status::{AllergyStatus, PrescriptionStatus, ResultStatus, Severity, Side};
use shared::{ClinicId, EntryId, PatientId, UserId};
use testkit::{TestDatabase, TestServer};

#[tokio::test]
async fn the_demo_app_renders_in_chromium() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, app_dist()).await;
    server::demo::seed(&app.store).await.expect("seed demo data");
    let browser = Browser::launch().await;
    let page = browser.open(&format!("{}/", app.base_url)).await;
    wait_for_text(&page, "h1", "Patient portal").await;
    wait_for_text(&page, ".sync-status", "Online").await;
    wait_for_text(&page, "button", "Sign in with a passkey").await;
    browser.close().await;
    app.stop().await;
}

/// Cuts the page off the network and stops the server, then reloads.
async fn reload_offline(page: &Page, app: TestServer) {
    set_offline(page, true).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;
    page.reload().await.expect("reload");
}

/// A fresh server and a signed-out page whose service worker has cached the
/// app shell, so the page can be reloaded offline. Keep the database alive
/// as long as the server.
async fn shell_cached() -> (TestDatabase, TestServer, Browser, Page) {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, app_dist()).await;
    let browser = Browser::launch().await;
    let page = browser.open_with_service_workers(&format!("{}/", app.base_url)).await;
    wait_for_text(&page, "button", "Sign in with a passkey").await;
    wait_for_service_worker(&page).await;
    (db, app, browser, page)
}

#[tokio::test]
async fn the_service_worker_opens_the_app_without_a_network() {
    let (_db, app, browser, page) = shell_cached().await;
    reload_offline(&page, app).await;
    wait_for_text(&page, "h1", "Patient portal").await;
    wait_for_text(&page, ".sync-status", "Offline").await;
    wait_for_text(&page, ".signin", "Signing in needs the network").await;
    browser.close().await;
}

/// Writes what an earlier sync would have left in IndexedDB: the /api/me
/// answer, the document list and each document's saved bytes.
async fn seed_device(
    page: &Page,
    me: &serde_json::Value,
    docs: &[(DocKind, automerge::Automerge)],
) {
    let list: Vec<serde_json::Value> = docs
        .iter()
        .map(|(kind, _)| {
            serde_json::json!({ "id": kind.doc_id(), "kind": kind.name(), "patient": kind.patient(), "clinic": kind.clinic() })
        })
        .collect();
    let puts: String = docs
        .iter()
        .map(|(kind, doc)| {
            let bytes: Vec<String> = doc.save().iter().map(u8::to_string).collect();
            format!(
                "tx.objectStore('docs').put(new Uint8Array([{}]), '{}');",
                bytes.join(","),
                kind.doc_id()
            )
        })
        .collect();
    let script = format!(
        "(async () => {{
            const db = await new Promise((resolve, reject) => {{
                const r = indexedDB.open('patient-portal', 1);
                r.onupgradeneeded = () => {{ for (const s of ['docs', 'kv']) if (!r.result.objectStoreNames.contains(s)) r.result.createObjectStore(s); }};
                r.onsuccess = () => resolve(r.result);
                r.onerror = () => reject(r.error);
            }});
            const tx = db.transaction(['docs', 'kv'], 'readwrite');
            tx.objectStore('kv').put({me}, 'me');
            tx.objectStore('kv').put({list}, 'documents');
            {puts}
            await new Promise((resolve, reject) => {{ tx.oncomplete = resolve; tx.onerror = reject; }});
            db.close();
            return true;
        }})()",
        me = serde_json::to_string(&me.to_string()).unwrap(),
        list = serde_json::to_string(&serde_json::Value::Array(list).to_string()).unwrap(),
    );
    let stored: bool =
        page.evaluate(script).await.expect("seed IndexedDB").into_value().expect("bool");
    assert!(stored);
}

fn provenance(clinic: ClinicId, recorder: UserId, at: &str) -> Provenance {
    Provenance {
        clinic,
        clinic_name: "Riverside Family Practice".into(),
        recorder,
        recorder_name: "Dr. Amara Okafor".into(),
        recorded: at.into(),
    }
}

/// Offline work: a refill request and a message are kept on the device,
/// shown as waiting to be sent, and survive a reload without a network.
#[tokio::test]
async fn requests_and_messages_written_offline_are_kept() {
    let (_db, app, browser, page) = shell_cached().await;

    let (patient, clinic, doctor, me_id) =
        (PatientId::mint(), ClinicId::mint(), UserId::mint(), UserId::mint());
    let clinical = DocKind::ClinicalRecord { patient, clinic };
    let mut clinical_doc = clinical.genesis();
    let mut tx = clinical_doc.transaction();
    let rx = Prescription {
        rxnorm: "861007".into(),
        display: "metformin hydrochloride 500 MG Oral Tablet".into(),
        dosage: "1 tablet by mouth twice daily with meals".into(),
        quantity: 60,
        refills_allowed: 2,
        authored: "2025-03-01T10:00:00Z".into(),
        status: PrescriptionStatus::Active,
        provenance: provenance(clinic, doctor, "2025-03-01T10:00:00Z"),
        status_reason: None,
        status_by: None,
        status_at: None,
        override_reason: None,
    };
    record::add(&mut tx, EntryId::mint(), &rx).expect("prescription");
    tx.commit();
    let patient_kind = DocKind::PatientRecord { patient };
    let patient_doc = patient_kind.genesis();
    let thread = DocKind::MessageThread { patient, clinic };
    let mut thread_doc = thread.genesis();
    let mut tx = thread_doc.transaction();
    let hello = Message::new(
        doctor,
        "Dr. Amara Okafor",
        Side::Clinic,
        "2025-03-02T08:00:00Z",
        "Your results are in; all looks stable.",
    );
    record::add(&mut tx, EntryId::mint(), &hello).expect("message");
    tx.commit();
    let me = serde_json::json!({
        "user_id": me_id, "display_name": "Maria Santos", "role": "patient",
        "patient_id": patient, "clinics": [], "actor_id": "0123456789abcdef0123456789abcdef",
    });
    seed_device(
        &page,
        &me,
        &[(clinical, clinical_doc), (patient_kind, patient_doc), (thread, thread_doc)],
    )
    .await;

    reload_offline(&page, app).await;
    wait_for_text(&page, ".sync-status", "Offline").await;
    click(&page, "nav button", "Medications").await;
    wait_for_text(&page, "article.med", "2 of 2").await;
    click(&page, "article.med button", "Request a refill").await;
    wait_for_text(&page, "article.med", "requested, waiting to be sent").await;
    wait_for_text(&page, ".sync-status", "1 change waiting to be sent").await;

    click(&page, "nav button", "Messages").await;
    wait_for_text(&page, ".thread", "all looks stable").await;
    type_into(&page, "textarea", "Thank you! Should I keep the same dose?").await;
    click(&page, ".compose button", "Send").await;
    wait_for_text(&page, ".msg.mine", "Sent, waiting for the network").await;

    // Everything survives a reload without a network.
    page.reload().await.expect("reload");
    wait_for_text(&page, ".sync-status", "Offline").await;
    click(&page, "nav button", "Messages").await;
    wait_for_text(&page, ".msg.mine", "Should I keep the same dose?").await;
    click(&page, "nav button", "Medications").await;
    wait_for_text(&page, "article.med", "requested, waiting to be sent").await;
    browser.close().await;
}

/// A record synced earlier (here written straight into IndexedDB) opens with
/// the network off: results with units, ranges and flags, and the trend chart.
#[tokio::test]
async fn records_stored_on_the_device_open_offline() {
    let (_db, app, browser, page) = shell_cached().await;

    let (patient, clinic, user) = (PatientId::mint(), ClinicId::mint(), UserId::mint());
    let kind = DocKind::ClinicalRecord { patient, clinic };
    let mut doc = kind.genesis();
    let mut tx = doc.transaction();
    let mut ids = Vec::new();
    for (effective, value) in [
        ("2024-12-01T09:00:00Z", 5.0),
        ("2025-01-10T09:00:00Z", 6.1),
        ("2025-06-10T09:00:00Z", 7.2),
    ] {
        let observation = Observation {
            report: None,
            loinc: "4548-4".into(),
            display: "Hemoglobin A1c/Hemoglobin.total in Blood".into(),
            value_quantity: Some(value),
            value_string: None,
            unit: Some("%".into()),
            reference_low: Some(4.0),
            reference_high: Some(5.6),
            effective: effective.into(),
            status: ResultStatus::Final,
            replaces: None,
            provenance: Provenance {
                clinic,
                clinic_name: "Riverside Family Practice".into(),
                recorder: user,
                recorder_name: "Dr. Amara Okafor".into(),
                recorded: effective.into(),
            },
            status_reason: None,
            status_by: None,
            status_at: None,
            interpretation: None,
        };
        let id = EntryId::mint();
        record::add(&mut tx, id, &observation).expect("add result");
        ids.push(id);
    }
    tx.commit();
    // Two devices of the clinic change the first result's status at the same
    // time: both values are shown for review.
    {
        let id = ids[0];
        let mut one = doc.fork().with_actor(automerge::ActorId::random());
        let mut two = doc.fork().with_actor(automerge::ActorId::random());
        let mut tx = one.transaction();
        record::change_status(
            &mut tx,
            Observation::COLLECTION,
            id,
            "entered-in-error",
            "wrong patient",
            user,
            "2025-07-01T09:00:00Z",
        )
        .unwrap();
        tx.commit();
        let mut tx = two.transaction();
        record::change_status(
            &mut tx,
            Observation::COLLECTION,
            id,
            "amended",
            "recalibrated",
            user,
            "2025-07-01T09:01:00Z",
        )
        .unwrap();
        tx.commit();
        doc.merge(&mut one).unwrap();
        doc.merge(&mut two).unwrap();
    }
    let me = serde_json::json!({
        "user_id": UserId::mint(), "display_name": "Maria Santos", "role": "patient",
        "patient_id": patient, "clinics": [], "actor_id": "0123456789abcdef0123456789abcdef",
    });
    seed_device(&page, &me, &[(kind, doc)]).await;

    reload_offline(&page, app).await;
    wait_for_text(&page, ".sync-status", "Offline").await;
    wait_for_text(&page, "main", "Hemoglobin A1c/Hemoglobin.total in Blood").await;
    let results = wait_for_text(&page, "main table", "7.2 %").await;
    assert!(results.contains("High"), "the out-of-range value is flagged: {results}");
    assert!(results.contains("4–5.6"), "the reference range is shown: {results}");
    // The conflicted result may or may not count (its status is in review);
    // the chart runs to the newest either way.
    click(&page, "main button", "View trend").await;
    // Dates as the browser writes them in the page's language (en).
    wait_for_text(&page, ".trend figcaption", "Jun 10, 2025").await;
    wait_for_text(&page, "main .latest", "Latest 7.2 % on Jun 10, 2025, up from 6.1").await;
    // What the test measures, from the catalog on the device (issue 15).
    click(&page, "main details.about summary", "About this test").await;
    wait_for_text(&page, "main details.about", "average blood sugar over the past 2 to 3 months")
        .await;
    // The view has its own address; Back goes to Results.
    let path: String = page.evaluate("location.pathname").await.unwrap().into_value().unwrap();
    assert_eq!(path, "/results/trend/4548-4");
    page.evaluate("history.back()").await.unwrap();
    wait_for_text(&page, "#history-h", "All results").await;
    let conflict = wait_for_text(&page, ".conflict", "both values are kept for review").await;
    assert!(conflict.contains("entered-in-error") && conflict.contains("amended"), "{conflict}");
    browser.close().await;
}

/// Clinic staff, offline: find a patient, get the allergy warning from
/// another clinic's record when prescribing (which then needs a reason), and record a lab result with
/// its unit and range filled in from the catalog.
#[tokio::test]
async fn staff_prescribe_with_an_allergy_warning_and_record_results_offline() {
    let (_db, app, browser, page) = shell_cached().await;

    let (patient, ours, theirs, doctor, other) =
        (PatientId::mint(), ClinicId::mint(), ClinicId::mint(), UserId::mint(), UserId::mint());
    let own_record = DocKind::ClinicalRecord { patient, clinic: ours };
    let own_doc = own_record.genesis();
    let other_record = DocKind::ClinicalRecord { patient, clinic: theirs };
    let mut other_doc = other_record.genesis();
    let mut tx = other_doc.transaction();
    let allergy = Allergy {
        substance_code: "70618".into(),
        substance: "Penicillin".into(),
        reaction: "hives".into(),
        severity: Severity::Moderate,
        status: AllergyStatus::Active,
        provenance: Provenance {
            clinic_name: "Northgate Clinic".into(),
            ..provenance(theirs, other, "2024-05-01T10:00:00Z")
        },
        status_reason: None,
        status_by: None,
        status_at: None,
    };
    record::add(&mut tx, EntryId::mint(), &allergy).expect("allergy");
    tx.commit();
    let patient_kind = DocKind::PatientRecord { patient };
    let mut patient_doc = patient_kind.genesis();
    let mut tx = patient_doc.transaction();
    let demographics = Demographics {
        family: Some("Santos".into()),
        given: Some("Maria".into()),
        birth_date: Some("1980-04-02".into()),
        phone: None,
        email: None,
    };
    record::set_demographics(&mut tx, &demographics).expect("demographics");
    tx.commit();
    let me = serde_json::json!({
        "user_id": doctor, "display_name": "Dr. Amara Okafor", "role": "provider", "patient_id": null,
        "clinics": [{ "id": ours, "name": "Riverside Family Practice" }], "actor_id": "fedcba9876543210fedcba9876543210",
    });
    seed_device(
        &page,
        &me,
        &[(own_record, own_doc), (other_record, other_doc), (patient_kind, patient_doc)],
    )
    .await;

    reload_offline(&page, app).await;
    wait_for_text(&page, ".sync-status", "Offline").await;
    type_into(&page, "#patient-search", "santos 1980").await;
    click(&page, "button.patient", "Maria Santos").await;
    click(&page, "nav button", "Record & prescribe").await;

    choose(&page, "#rx-med", "308191").await;
    wait_for_text(
        &page,
        ".allergy-warning",
        "Penicillin (hives, moderate) recorded by Northgate Clinic",
    )
    .await;
    click(&page, "button", "Prescribe").await;
    wait_for_text(&page, ".error", "Give the reason for prescribing despite the warning").await;
    type_into(&page, "#rx-reason", "Tolerated amoxicillin since").await;
    click(&page, "form button", "Prescribe").await;
    wait_for_text(&page, ".ok", "Prescribed amoxicillin 500 MG Oral Capsule").await;

    choose(&page, "#lab-test", "4548-4").await;
    let unit: String = page
        .evaluate("document.querySelector('#lab-unit').value")
        .await
        .unwrap()
        .into_value()
        .unwrap();
    assert_eq!(unit, "%");
    type_into(&page, "#lab-value", "seven").await;
    click(&page, "button", "Save result").await;
    wait_for_text(&page, ".error", "must be a number").await;
    type_into(&page, "#lab-value", "7.9").await;
    click(&page, "button", "Save result").await;
    wait_for_text(&page, ".ok", "Saved").await;

    click(&page, "nav button", "Results").await;
    let results = wait_for_text(&page, "main table", "7.9 %").await;
    assert!(results.contains("High"), "{results}");
    click(&page, "nav button", "Medications").await;
    wait_for_text(&page, "article.med", "Tolerated amoxicillin since").await;
    wait_for_text(&page, ".sync-status", "2 changes waiting to be sent").await;
    browser.close().await;
}
