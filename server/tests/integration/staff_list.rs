//! Issue 17 part 2: the patient list and offline set of clinic staff, and
//! the bound on what one sync connection may hold, against the real
//! server (HTTP and WebSocket), on both engines.

use std::path::PathBuf;
use std::time::Duration;

use automerge::Automerge;
use chrono::DateTime;
use serde_json::{Value, json};
use server::auth::accounts;
use server::demo;
use server::storage::Backend;
use server::sync::MAX_DOCS_PER_CONNECTION;
use shared::DocKind;
use shared::sync::SyncClient;
use testkit::clinic::{Seeded, WORK_EVERY, seed_clinic};
use testkit::{ClientError, Replica, TestDatabase, TestServer};

use crate::BACKENDS;
use crate::authenticator::SoftPasskey;
use crate::client::Browser;

/// The patient list: a POST, so names never travel in a URL.
const SEARCH: &str = "/api/patients/search";

async fn signed_in(app: &TestServer, user: shared::UserId) -> Browser {
    let (link, _) =
        accounts::issue_enrollment(&app.store, &app.base_url, user, None, app.clock.now_ms())
            .await
            .unwrap();
    let mut browser = Browser::new(&app.base_url);
    browser.enroll(&mut SoftPasskey::new(), &link).await;
    browser
}

fn names(page: &Value) -> Vec<String> {
    page.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
}

fn patients_of(docs: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        docs.as_array().unwrap().iter().map(|d| d["patient"].as_str().unwrap().into()).collect();
    out.sort();
    out.dedup();
    out
}

/// The list is a page of the patients the provider may read, by name,
/// with names from the records (the demo's, written through the hub, and
/// the bulk-loaded ones), searched by name or birth date; the offline set
/// is the clinic's work today plus the patients named, and never a
/// patient the user may not read; patients and caregivers get neither.
#[tokio::test]
async fn the_patient_list_and_offline_set_follow_the_read_policy() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let users = demo::seed(&app.store).await.unwrap();
        let user = |name: &str| users.iter().find(|u| u.name.contains(name)).unwrap().clone();
        let okafor = user("Okafor");
        let now = DateTime::from_timestamp_millis(app.clock.now_ms()).unwrap();
        let seeded: Vec<Seeded> = seed_clinic(
            &app.store,
            (okafor.clinics[0], "Riverside Family Practice"),
            (okafor.id, okafor.name),
            2 * WORK_EVERY + 10,
            now,
        )
        .await
        .unwrap();
        let mut provider = signed_in(&app, okafor.id).await;

        let (status, page) = provider.post(SEARCH, json!({})).await;
        assert_eq!(status, 200, "{backend:?}: {page}");
        let listed = names(&page);
        assert_eq!(listed.len(), server::storage::PAGE, "{backend:?}");
        assert!(
            listed.iter().all(|n| !n.is_empty()),
            "{backend:?}: every name indexed: {listed:?}"
        );
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(listed, sorted, "{backend:?}: by name");
        let (_, maria) = provider.post(SEARCH, json!({ "q": "maria SANTOS" })).await;
        assert_eq!(names(&maria), ["Maria Santos"], "{backend:?}: the demo's, through the hub");
        let one = &seeded[10];
        let (_, found) = provider.post(SEARCH, json!({ "q": one.birth_date })).await;
        assert_eq!(names(&found), std::slice::from_ref(&one.name), "{backend:?}");
        let (_, none) = provider.post(SEARCH, json!({ "q": "%" })).await;
        assert_eq!(names(&none), Vec::<String>::new(), "{backend:?}: a % is a character");
        let (_, second) = provider.post(SEARCH, json!({ "offset": 50 })).await;
        assert_ne!(names(&second).first(), listed.first(), "{backend:?}: the next page");

        let stranger = shared::PatientId::mint();
        let (status, docs) = provider
            .post("/api/documents/offline", json!({ "patients": [one.patient, stranger] }))
            .await;
        assert_eq!(status, 200, "{backend:?}: {docs}");
        let mut expected: Vec<String> = seeded
            .iter()
            .filter(|s| s.work || s.patient == one.patient)
            .map(|s| s.patient.to_string())
            .collect();
        // Today's work in the demo data set too (Maria's unread message, ...).
        let held = patients_of(&docs);
        expected.retain(|p| !held.contains(p));
        assert!(expected.is_empty(), "{backend:?}: missing {expected:?}");
        assert!(!held.contains(&stranger.to_string()), "{backend:?}");
        assert!(!held.contains(&seeded[20].patient.to_string()), "{backend:?}: not asked for");
        assert!(held.len() < 20, "{backend:?}: {} patients, not the clinic", held.len());
        for d in docs.as_array().unwrap() {
            let kind: DocKind = serde_json::from_value(d.clone()).unwrap();
            if let DocKind::MessageThread { clinic, .. } = kind {
                assert_eq!(clinic, okafor.clinics[0], "{backend:?}: own clinic's threads only");
            }
        }
        let too_many: Vec<String> =
            (0..201).map(|_| shared::PatientId::mint().to_string()).collect();
        let (status, _) =
            provider.post("/api/documents/offline", json!({ "patients": too_many })).await;
        assert_eq!(status, 400, "{backend:?}");

        let mut maria = signed_in(&app, user("Maria").id).await;
        assert_eq!(maria.post(SEARCH, json!({})).await.0, 403, "{backend:?}");
        let (status, _) = maria.post("/api/documents/offline", json!({ "patients": [] })).await;
        assert_eq!(status, 403, "{backend:?}");
        app.stop().await;
        db.drop_database().await;
    }
}

/// The attack: a provider's device asks to sync more documents than one
/// connection may (documents of a 3,343-patient clinic, all readable to
/// them). The server syncs `MAX_DOCS_PER_CONNECTION` of them; one more and
/// it closes the connection saying why; the provider's next connection
/// works.
#[tokio::test]
async fn one_connection_syncs_a_bounded_number_of_documents() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
    let users = demo::seed(&app.store).await.unwrap();
    let okafor = users.iter().find(|u| u.name.contains("Okafor")).unwrap().clone();
    let now = DateTime::from_timestamp_millis(app.clock.now_ms()).unwrap();
    let patients = MAX_DOCS_PER_CONNECTION / 3 + 10;
    let seeded = seed_clinic(
        &app.store,
        (okafor.clinics[0], "Riverside Family Practice"),
        (okafor.id, okafor.name),
        patients,
        now,
    )
    .await
    .unwrap();
    let provider = signed_in(&app, okafor.id).await;
    let url = format!("{}/sync", app.base_url.replacen("http", "ws", 1));
    let headers = [
        ("cookie", format!("portal_session={}", provider.cookie.clone().unwrap())),
        ("origin", app.base_url.clone()),
    ];
    let clinic = okafor.clinics[0];
    let kinds = seeded.iter().flat_map(|s| {
        [
            DocKind::PatientRecord { patient: s.patient },
            DocKind::ClinicalRecord { patient: s.patient, clinic },
            DocKind::MessageThread { patient: s.patient, clinic },
        ]
    });
    let ids: Vec<shared::DocId> = kinds.map(|k| k.doc_id()).collect();
    assert!(ids.len() > MAX_DOCS_PER_CONNECTION);
    // Up to the bound, a connection syncs as usual.
    let mut client = SyncClient::new("greedy");
    for id in &ids[..MAX_DOCS_PER_CONNECTION] {
        client.insert(*id, Automerge::new());
    }
    let mut replica = Replica::connect(&url, &headers, client).await.unwrap();
    replica.sync_all(Duration::from_secs(300)).await.unwrap();
    assert_eq!(replica.client.synced_count(), MAX_DOCS_PER_CONNECTION);
    // One more: told why, and disconnected.
    replica.client.insert(ids[MAX_DOCS_PER_CONNECTION], Automerge::new());
    replica.flush_local().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut said = String::new();
    let reason = loop {
        match replica.next_message(deadline).await {
            Ok(Some((_, shared::sync::WireMessage::Error { message }))) => said = message,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the connection stays open"),
            Err(ClientError::Closed(reason)) => break reason,
            Err(other) => panic!("closed without a reason: {other}"),
        }
    };
    assert!(reason.starts_with("1008"), "{reason}");
    let bound = format!("at most {MAX_DOCS_PER_CONNECTION} records");
    assert!(reason.contains(&bound) && said.contains(&bound), "{reason} / {said}");

    // The same device asking for what it may hold syncs as usual.
    let mut client = SyncClient::new("modest");
    for s in seeded.iter().take(100) {
        client.insert(DocKind::PatientRecord { patient: s.patient }.doc_id(), Automerge::new());
    }
    let mut replica = Replica::connect(&url, &headers, client).await.unwrap();
    replica.sync_all(Duration::from_secs(60)).await.unwrap();
    assert_eq!(replica.client.synced_count(), 100);
    app.stop().await;
}

/// A database from before the index (or one an operator asks to reindex,
/// `portal reindex`) gets its rows at the next start, in the background:
/// staff find patients by name again without anyone writing to them.
#[tokio::test]
async fn a_database_without_the_index_gets_it_at_the_next_start() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let users = demo::seed(&app.store).await.unwrap();
        let okafor = users.iter().find(|u| u.name.contains("Okafor")).unwrap().id;
        app.stop().await;
        // As a database made before migration 0008 is: documents, no rows.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        for table in ["patient_index", "patient_work"] {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&pool).await.unwrap();
        }
        pool.close().await;
        db.store().await.set_index_backfill(Some("")).await.unwrap();

        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let mut provider = signed_in(&app, okafor).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, found) = provider.post(SEARCH, json!({ "q": "maria santos" })).await;
            assert_eq!(status, 200, "{backend:?}: {found}");
            if names(&found) == ["Maria Santos"] {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{backend:?}: no index after 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        while app.store.index_backfill().await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "{backend:?}: backfill never ends");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        app.stop().await;
        db.drop_database().await;
    }
}
