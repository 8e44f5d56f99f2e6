//! Issue 17 part 2: the patient list and offline set of clinic staff, and
//! the bound on what one sync connection may hold, against the real
//! server (HTTP and WebSocket), on both engines.

use std::path::PathBuf;
use std::time::Duration;

use automerge::Automerge;
use chrono::{DateTime, NaiveDate, TimeZone};
use reqwest::Method;
use serde_json::{Value, json};
use server::auth::accounts;
use server::demo;
use server::demo::fixtures::{Author, appointment};
use server::storage::{Backend, IndexRow, NewRecord, NewUser};
use server::sync::MAX_DOCS_PER_CONNECTION;
use server::sync::summary::summarize;
use shared::api::UserRole;
use shared::schema::Message;
use shared::status::Side;
use shared::sync::SyncClient;
use shared::{ClinicId, DocId, DocKind, EntryId, PatientId, UserId, record};
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

/// A patient consenting to `clinic` whose record there has one booked
/// appointment at 09:00 on `day` on the clinic's clock (`zone`), stored in
/// bulk with its work queue rows as `Hub::commit` writes them.
async fn booked(
    store: &server::storage::Store,
    clinic: ClinicId,
    zone: chrono_tz::Tz,
    provider: &NewUser,
    day: NaiveDate,
    now: i64,
) -> PatientId {
    let patient = PatientId::mint();
    let staff = Author {
        user: provider.id,
        name: provider.display_name.clone(),
        clinic: Some((clinic, "Clinic".into())),
    };
    let start = zone.from_local_datetime(&day.and_hms_opt(9, 0, 0).unwrap()).unwrap();
    let recorded = DateTime::from_timestamp_millis(now).unwrap();
    let kind = DocKind::ClinicalRecord { patient, clinic };
    let mut doc = kind.genesis();
    doc.set_actor(automerge::ActorId::random());
    let mut tx = doc.transaction();
    record::add(&mut tx, EntryId::mint(), &appointment(&staff, start, "Check-up", recorded))
        .unwrap();
    tx.commit();
    let rows: Vec<IndexRow> = summarize(kind, &doc)
        .into_iter()
        .filter(|row| !matches!(row, IndexRow::Work { value, .. } if value.is_empty()))
        .collect();
    let new = NewRecord { patient, consents: vec![clinic], documents: vec![(kind, doc.save())] };
    store.create_records(&[new], now).await.unwrap();
    store.write_index(&rows, now).await.unwrap();
    patient
}

fn staff_user(role: UserRole, name: &str, clinics: Vec<ClinicId>) -> NewUser {
    NewUser {
        id: UserId::mint(),
        display_name: name.into(),
        role,
        patient: None,
        may_message: false,
        clinics,
    }
}

/// Issue 17 part 2: "today" is each clinic's own day, in its time zone,
/// set by its admin through the API (a name that is not an IANA zone is
/// refused with a 400 saying so). A provider at a clinic in Auckland
/// (UTC+13 in December) and one in Honolulu (UTC-10) gets each clinic's
/// booked appointments of that clinic's today in the offline set, at two
/// moments when one of the clinics' dates differs from the UTC date:
/// yesterday's (and tomorrow's) are left out, even when they fall on the
/// UTC date or on the other clinic's today. The Honolulu admin's
/// appointment list keeps today's too.
#[tokio::test]
async fn today_is_each_clinic_s_own_day() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let store = &app.store;
        // 05:00 UTC next: 19:00 the day before in Honolulu.
        let start = DateTime::from_timestamp_millis(app.clock.now_ms()).unwrap();
        let mut t2 = start.date_naive().and_hms_opt(5, 0, 0).unwrap().and_utc();
        if t2 <= start + chrono::Duration::minutes(1) {
            t2 += chrono::Duration::days(1);
        }
        let d = t2.date_naive();
        let (auckland, honolulu) = (ClinicId::mint(), ClinicId::mint());
        let now = start.timestamp_millis();
        store.create_clinic(auckland, "Harbour Clinic", now).await.unwrap();
        store.create_clinic(honolulu, "Island Clinic", now).await.unwrap();
        let provider = staff_user(UserRole::Provider, "Dr. Two Zones", vec![auckland, honolulu]);
        let admin_a = staff_user(UserRole::Admin, "Admin Harbour", vec![auckland]);
        let admin_h = staff_user(UserRole::Admin, "Admin Island", vec![honolulu]);
        for user in [&provider, &admin_a, &admin_h] {
            store.create_user(user, now).await.unwrap();
        }
        let (akl, hnl) = (chrono_tz::Pacific::Auckland, chrono_tz::Pacific::Honolulu);
        let day = |n: i64| d + chrono::Duration::days(n);
        let a_yesterday = booked(store, auckland, akl, &provider, day(-1), now).await;
        let a_today = booked(store, auckland, akl, &provider, day(0), now).await;
        let a_tomorrow = booked(store, auckland, akl, &provider, day(1), now).await;
        let h_yesterday = booked(store, honolulu, hnl, &provider, day(-1), now).await;
        let h_today = booked(store, honolulu, hnl, &provider, day(0), now).await;

        // Admins set the zones; a name that is no IANA zone is refused.
        for (admin, zone) in [(&admin_a, "Pacific/Auckland"), (&admin_h, "Pacific/Honolulu")] {
            let mut browser = signed_in(&app, admin.id).await;
            let details = |zone: &str| json!({ "phone": "", "reply_days": 2, "time_zone": zone });
            for bad in ["Mars/Olympus_Mons", "pacific/auckland", "+13:00", ""] {
                let (status, body) =
                    browser.call(Method::PUT, "/api/clinic/details", Some(details(bad))).await;
                assert_eq!(status, 400, "{backend:?}: {bad:?}: {body}");
                assert!(body.to_string().contains("IANA time zone"), "{backend:?}: {body}");
            }
            let (status, body) =
                browser.call(Method::PUT, "/api/clinic/details", Some(details(zone))).await;
            assert_eq!(status, 204, "{backend:?}: {body}");
        }
        let zones = store.clinic_time_zones(&[auckland, honolulu]).await.unwrap();
        assert!(zones.contains(&(auckland, "Pacific/Auckland".into())), "{backend:?}: {zones:?}");
        assert!(zones.contains(&(honolulu, "Pacific/Honolulu".into())), "{backend:?}: {zones:?}");

        let check = |held: &[String], yes: &[PatientId], no: &[PatientId], when: &str| {
            for p in yes {
                assert!(held.contains(&p.to_string()), "{backend:?} {when}: {p} missing");
            }
            for p in no {
                assert!(!held.contains(&p.to_string()), "{backend:?} {when}: {p} held");
            }
        };

        // 05:00 UTC on d: the 18th hour of d in Auckland, the 19th of d-1
        // in Honolulu.
        app.clock.advance((t2 - start).to_std().unwrap());
        assert_eq!(
            server::zone::today(app.clock.now_ms(), "Pacific/Honolulu"),
            day(-1).to_string()
        );
        assert_eq!(server::zone::today(app.clock.now_ms(), "UTC"), d.to_string());
        let mut browser = signed_in(&app, provider.id).await;
        let held = offline(&mut browser).await;
        check(&held, &[a_today, h_yesterday], &[a_yesterday, a_tomorrow, h_today], "05:00Z");
        // Honolulu's admin lists its today's appointment (the UTC date is
        // already the next day).
        let mut admin = signed_in(&app, admin_h.id).await;
        let (status, list) = admin.get("/api/clinic/appointments").await;
        assert_eq!(status, 200, "{backend:?}: {list}");
        let mut expected = vec![h_today.to_string(), h_yesterday.to_string()];
        expected.sort();
        assert_eq!(patients_of(&list), expected, "{backend:?}");

        // 12:00 UTC on d: d+1 in Auckland (00:00 or 01:00), d in Honolulu.
        app.clock.advance(Duration::from_secs(7 * 3600));
        assert_eq!(server::zone::today(app.clock.now_ms(), "Pacific/Auckland"), day(1).to_string());
        let held = offline(&mut browser).await;
        check(&held, &[a_tomorrow, h_today], &[a_yesterday, a_today, h_yesterday], "12:00Z");
        app.stop().await;
        db.drop_database().await;
    }
}

/// A replica of `docs` for the user `id` (the test server's identity
/// header), synced.
async fn replica_of(app: &TestServer, id: UserId, docs: &[DocId]) -> Replica {
    let mut client = SyncClient::new(format!("test-{}", uuid::Uuid::now_v7().simple()));
    for doc in docs {
        client.insert(*doc, Automerge::new());
    }
    let url = format!("{}/sync", app.base_url.replacen("http", "ws", 1));
    let mut replica =
        Replica::connect(&url, &[("x-portal-test-user", id.to_string())], client).await.unwrap();
    replica.sync_all(Duration::from_secs(30)).await.unwrap();
    replica.take_received();
    replica
}

/// Issue 17 part 2, at the protocol level: a patient outside a provider's
/// offline set (no work at the clinic, not opened on the device) writes to
/// the clinic. Each connected device of that clinic's staff that holds
/// none of the patient's documents is told to list again (`list-changed`,
/// naming nobody), and the list then has the patient; a device that holds
/// the patient gets the message as before, without being told; staff of
/// another clinic and other patients hear nothing.
#[tokio::test]
async fn new_work_from_a_patient_outside_the_offline_set_reaches_the_clinic_s_staff_live() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let users = demo::seed(&app.store).await.unwrap();
        let user = |name: &str| users.iter().find(|u| u.name.contains(name)).unwrap().clone();
        let (okafor, brandt, maria) = (user("Okafor"), user("Brandt"), user("Maria"));
        let riverside = okafor.clinics[0];
        let now = app.clock.now_ms();
        // Nia: consents to Riverside, nothing open there.
        let nia = PatientId::mint();
        let thread = DocKind::MessageThread { patient: nia, clinic: riverside };
        let record = DocKind::PatientRecord { patient: nia };
        let new = NewRecord {
            patient: nia,
            consents: vec![riverside],
            documents: vec![(record, record.genesis().save()), (thread, thread.genesis().save())],
        };
        app.store.create_records(&[new], now).await.unwrap();
        let nia_user = NewUser {
            id: UserId::mint(),
            display_name: "Nia Adeyemi".into(),
            role: UserRole::Patient,
            patient: Some(nia),
            may_message: false,
            clinics: Vec::new(),
        };
        app.store.create_user(&nia_user, now).await.unwrap();
        let mut browser = signed_in(&app, okafor.id).await;
        let (_, before) = browser.post("/api/documents/offline", json!({ "patients": [] })).await;
        assert!(!patients_of(&before).contains(&nia.to_string()), "{backend:?}");

        let maria_thread =
            DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: riverside };
        let northgate =
            DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: brandt.clinics[0] };
        let mut without = replica_of(&app, okafor.id, &[maria_thread.doc_id()]).await;
        let mut holding = replica_of(&app, okafor.id, &[thread.doc_id()]).await;
        let mut other_clinic = replica_of(&app, brandt.id, &[northgate.doc_id()]).await;
        let mut other_patient = replica_of(&app, maria.id, &[maria_thread.doc_id()]).await;
        let mut patient = replica_of(&app, nia_user.id, &[thread.doc_id()]).await;

        let doc = patient.client.doc_mut(thread.doc_id()).unwrap();
        doc.set_actor(automerge::ActorId::random());
        let mut tx = doc.transaction();
        let message = Message::new(
            nia_user.id,
            nia_user.display_name.clone(),
            Side::Patient,
            "2026-12-04T10:00:00Z",
            "My knee is worse since Monday.",
        );
        record::add(&mut tx, EntryId::mint(), &message).unwrap();
        tx.commit();
        patient.flush_local().await.unwrap();
        patient.sync_all(Duration::from_secs(30)).await.unwrap();

        let wait = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + wait;
        while !without.told_to_relist {
            let step = without.step(deadline).await.unwrap();
            assert!(step.is_some(), "{backend:?}: the device without the patient was not told");
        }
        let id = thread.doc_id();
        holding.sync_until(wait, |_, r| r.changed.contains(&id)).await.unwrap();
        // The others: a moment for anything in flight, then nothing.
        let quiet = tokio::time::Instant::now() + Duration::from_millis(500);
        for (who, replica) in [
            ("holding", &mut holding),
            ("Brandt", &mut other_clinic),
            ("Maria", &mut other_patient),
        ] {
            while replica.step(quiet).await.unwrap().is_some() {}
            assert!(!replica.told_to_relist, "{backend:?}: {who} was told");
        }
        // Listing again, the device gets the patient.
        let (_, after) = browser.post("/api/documents/offline", json!({ "patients": [] })).await;
        assert!(patients_of(&after).contains(&nia.to_string()), "{backend:?}: {after}");
        for r in [without, holding, other_clinic, other_patient, patient] {
            r.close().await;
        }
        app.stop().await;
        db.drop_database().await;
    }
}

/// The patients of the signed-in staff member's offline set (nothing pinned).
async fn offline(browser: &mut Browser) -> Vec<String> {
    let (status, docs) = browser.post("/api/documents/offline", json!({ "patients": [] })).await;
    assert_eq!(status, 200, "{docs}");
    patients_of(&docs)
}

/// Issue 17 part 2: a device's offline set holds at most `MAX_WORK`
/// patients with open work; with more waiting, those whose work was
/// written last come first, so a patient who just wrote is always in it
/// (the device told `list-changed` finds them), whatever their id.
#[tokio::test]
async fn with_more_open_work_than_a_device_holds_the_newest_comes_first() {
    use server::storage::{MAX_WORK, WorkSource};
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let store = &app.store;
        let now = app.clock.now_ms();
        let clinic = ClinicId::mint();
        store.create_clinic(clinic, "Busy Clinic", now).await.unwrap();
        let provider = staff_user(UserRole::Provider, "Dr. Busy", vec![clinic]);
        store.create_user(&provider, now).await.unwrap();
        // One more patient with an unread message than a device holds,
        // each written a second after the one before.
        let records: Vec<NewRecord> = (0..=MAX_WORK)
            .map(|_| NewRecord {
                patient: PatientId::mint(),
                consents: vec![clinic],
                documents: vec![],
            })
            .collect();
        store.create_records(&records, now).await.unwrap();
        let work = |patient: PatientId| IndexRow::Work {
            clinic,
            patient,
            source: WorkSource::Messages,
            value: "1".into(),
        };
        for (i, r) in records.iter().enumerate() {
            store.write_index(&[work(r.patient)], now + 1000 * i as i64).await.unwrap();
        }
        let user = store.user(provider.id).await.unwrap().unwrap();
        let held = store.work_patients(&user, &[]).await.unwrap();
        let (oldest, newest) = (records[0].patient, records[MAX_WORK].patient);
        assert_eq!(held.len(), MAX_WORK, "{backend:?}");
        assert!(held.contains(&newest) && !held.contains(&oldest), "{backend:?}");
        // The oldest writes again: now it is the newest, and the one
        // written second is left out.
        store.write_index(&[work(oldest)], now + 1000 * (MAX_WORK as i64 + 1)).await.unwrap();
        let held = store.work_patients(&user, &[]).await.unwrap();
        assert!(held.contains(&oldest) && !held.contains(&records[1].patient), "{backend:?}");
        app.stop().await;
        db.drop_database().await;
    }
}
