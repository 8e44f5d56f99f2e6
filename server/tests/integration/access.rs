//! The authorization matrix: every /api route × every role × own, another
//! patient's and another clinic's resources. Allowed exactly where the rules
//! say; 404 where a resource's existence must not leak; 403 where a role may
//! never do a thing; 401 without a session.

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};
use server::storage::Backend;
use shared::api::UserRole;
use shared::{ClinicId, DocKind, PatientId};
use testkit::{TestDatabase, TestServer};

use crate::authenticator::SoftPasskey;
use crate::client::{Browser, invite};

/// Signed-in actors, in the column order of the matrix.
const ROLES: [&str; 5] = ["patient", "caregiver", "provider", "admin", "anonymous"];

struct World {
    app: TestServer,
    clinic_a: ClinicId,
    clinic_b: ClinicId,
    clinic_c: ClinicId,
    p1: PatientId,
    p2: PatientId,
    /// Signed-in browsers: P1, C1 (caregiver of P1), provider of A, admin of A, anonymous.
    browsers: Vec<Browser>,
    /// Each browser's own passkey id (None for anonymous).
    own_passkeys: Vec<Option<String>>,
    /// A passkey of P2 (another user).
    foreign_passkey: String,
    ids: std::collections::HashMap<&'static str, String>,
    /// Extra signed-in browsers: P2, provider of B, admin of B.
    p2_browser: Browser,
    provider_b: Browser,
    admin_b: Browser,
}

async fn signed_in(app: &TestServer, link: &str) -> (Browser, String) {
    let mut browser = Browser::new(&app.base_url);
    browser.enroll(&mut SoftPasskey::new(), link).await;
    let (_, list) = browser.get("/api/passkeys").await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    (browser, id)
}

async fn world(db: &TestDatabase) -> World {
    let app = TestServer::start(db, PathBuf::from("/nonexistent")).await;
    let store = app.store.clone();
    let base = app.base_url.clone();
    let (clinic_a, clinic_b, clinic_c) = (ClinicId::mint(), ClinicId::mint(), ClinicId::mint());
    store.create_clinic(clinic_a, "Clinic A", app.clock.now_ms()).await.unwrap();
    store.create_clinic(clinic_b, "Clinic B", app.clock.now_ms()).await.unwrap();
    store.create_clinic(clinic_c, "Clinic C", app.clock.now_ms()).await.unwrap();

    let admin_a = invite(&app, UserRole::Admin, "Admin A", Some(clinic_a), None).await;
    let admin_b = invite(&app, UserRole::Admin, "Admin B", Some(clinic_b), None).await;
    let provider_a = invite(&app, UserRole::Provider, "Dr. A", Some(clinic_a), None).await;
    let provider_b = invite(&app, UserRole::Provider, "Dr. B", Some(clinic_b), None).await;
    // P1 consents to A (at creation) and B; P2 to B only.
    let p1 = invite(&app, UserRole::Patient, "Patient One", Some(clinic_a), None).await;
    let p1_id = p1.user.patient.unwrap();
    server::auth::accounts::grant_consent(&store, p1_id, clinic_b, app.clock.now_ms())
        .await
        .unwrap();
    let p2 = invite(&app, UserRole::Patient, "Patient Two", Some(clinic_b), None).await;
    let p2_id = p2.user.patient.unwrap();
    let c1 = invite(&app, UserRole::Caregiver, "Carer One", None, Some(p1_id)).await;
    let c2 = invite(&app, UserRole::Caregiver, "Carer Two", None, Some(p2_id)).await;

    let (b_p1, k_p1) = signed_in(&app, &p1.link).await;
    let (b_c1, k_c1) = signed_in(&app, &c1.link).await;
    let (b_pa, k_pa) = signed_in(&app, &provider_a.link).await;
    let (b_aa, k_aa) = signed_in(&app, &admin_a.link).await;
    let (b_p2, k_p2) = signed_in(&app, &p2.link).await;
    let (b_pb, _) = signed_in(&app, &provider_b.link).await;
    let (b_ab, _) = signed_in(&app, &admin_b.link).await;
    let ids = [
        ("clinic_a", clinic_a.to_string()),
        ("clinic_b", clinic_b.to_string()),
        ("clinic_c", clinic_c.to_string()),
        ("unknown", uuid::Uuid::now_v7().to_string()),
        ("c1", c1.user.id.to_string()),
        ("c2", c2.user.id.to_string()),
        ("provider_a", provider_a.user.id.to_string()),
        ("provider_b", provider_b.user.id.to_string()),
        ("admin_b", admin_b.user.id.to_string()),
        ("p1_user", p1.user.id.to_string()),
        ("p2_user", p2.user.id.to_string()),
        ("c1_user", c1.user.id.to_string()),
    ]
    .into_iter()
    .collect();
    World {
        app,
        clinic_a,
        clinic_b,
        clinic_c,
        p1: p1_id,
        p2: p2_id,
        browsers: vec![b_p1, b_c1, b_pa, b_aa, Browser::new(&base)],
        own_passkeys: vec![Some(k_p1), Some(k_c1), Some(k_pa), Some(k_aa), None],
        foreign_passkey: k_p2,
        ids,
        p2_browser: b_p2,
        provider_b: b_pb,
        admin_b: b_ab,
    }
}

fn fill(world: &World, path: &str, column: usize) -> String {
    let mut path = path.replace("{foreign_passkey}", &world.foreign_passkey);
    let own =
        world.own_passkeys[column].clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    path = path.replace("{own_passkey}", &own);
    for (name, id) in &world.ids {
        path = path.replace(&format!("{{{name}}}"), id);
    }
    path
}

async fn documents(browser: &mut Browser) -> BTreeSet<String> {
    let (status, list) = browser.get("/api/documents").await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let kind: DocKind =
                serde_json::from_value(d.clone()).expect("a document is its DocKind plus id");
            assert_eq!(d["id"], kind.doc_id().to_string());
            d["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn ids(kinds: &[DocKind]) -> BTreeSet<String> {
    kinds.iter().map(|k| k.doc_id().to_string()).collect()
}

#[tokio::test]
async fn every_route_by_every_role() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let mut w = world(&db).await;

    // What each role reads.
    let (p1, p2, a, b, c) = (w.p1, w.p2, w.clinic_a, w.clinic_b, w.clinic_c);
    let p1_all = ids(&[
        DocKind::PatientRecord { patient: p1 },
        DocKind::ClinicalRecord { patient: p1, clinic: a },
        DocKind::MessageThread { patient: p1, clinic: a },
        DocKind::ClinicalRecord { patient: p1, clinic: b },
        DocKind::MessageThread { patient: p1, clinic: b },
    ]);
    assert_eq!(documents(&mut w.browsers[0]).await, p1_all, "a patient reads all their documents");
    assert_eq!(documents(&mut w.browsers[1]).await, p1_all, "their caregiver too");
    assert_eq!(
        documents(&mut w.browsers[2]).await,
        ids(&[
            DocKind::PatientRecord { patient: p1 },
            DocKind::ClinicalRecord { patient: p1, clinic: a },
            DocKind::ClinicalRecord { patient: p1, clinic: b },
            DocKind::MessageThread { patient: p1, clinic: a },
        ]),
        "a provider reads every clinical record of a consenting patient, and only their own clinic's thread"
    );
    assert_eq!(
        documents(&mut w.browsers[3]).await,
        ids(&[DocKind::PatientRecord { patient: p1 }]),
        "an admin: demographics only"
    );
    let p2_docs = [
        DocKind::PatientRecord { patient: p2 },
        DocKind::ClinicalRecord { patient: p2, clinic: b },
        DocKind::MessageThread { patient: p2, clinic: b },
    ];
    assert_eq!(documents(&mut w.p2_browser).await, ids(&p2_docs));
    let mut provider_b = ids(&p2_docs);
    provider_b.extend(ids(&[
        DocKind::PatientRecord { patient: p1 },
        DocKind::ClinicalRecord { patient: p1, clinic: a },
        DocKind::ClinicalRecord { patient: p1, clinic: b },
        DocKind::MessageThread { patient: p1, clinic: b },
    ]));
    assert_eq!(documents(&mut w.provider_b).await, provider_b);
    assert_eq!(
        documents(&mut w.admin_b).await,
        ids(&[DocKind::PatientRecord { patient: p1 }, DocKind::PatientRecord { patient: p2 }])
    );

    // (method, path, body, expected status for patient, caregiver, provider, admin, anonymous)
    let cases: Vec<(Method, &str, Option<Value>, [u16; 5])> = vec![
        (Method::GET, "/api/me", None, [200, 200, 200, 200, 401]),
        (Method::GET, "/api/clinics", None, [200, 200, 200, 200, 401]),
        (Method::GET, "/api/documents", None, [200, 200, 200, 200, 401]),
        (Method::GET, "/api/consents", None, [200, 200, 403, 403, 401]),
        (Method::GET, "/api/caregivers", None, [200, 403, 403, 403, 401]),
        (Method::GET, "/api/audit", None, [200, 403, 403, 403, 401]),
        // Copies a clinic device removed once access ended (see sessions.rs).
        (
            Method::POST,
            "/api/documents/removed",
            Some(json!({ "docs": [] })),
            [403, 403, 204, 204, 401],
        ),
        (
            Method::POST,
            "/api/documents/removed",
            Some(json!({ "docs": ["x"] })),
            [400, 400, 400, 400, 401],
        ),
        (Method::GET, "/api/passkeys", None, [200, 200, 200, 200, 401]),
        // A device reports a download of the record made from its copy:
        // the patient's and caregivers' devices only; a time to come or a
        // body of another shape is refused.
        (
            Method::POST,
            "/api/audit/downloads",
            Some(json!({ "at": 1_764_000_000_000_i64 })),
            [204, 204, 403, 403, 401],
        ),
        (
            Method::POST,
            "/api/audit/downloads",
            Some(json!({ "at": 4_000_000_000_000_i64 })),
            [400, 400, 403, 403, 401],
        ),
        (
            Method::POST,
            "/api/audit/downloads",
            Some(json!({ "at": "yesterday" })),
            [400, 400, 400, 400, 401],
        ),
        (
            Method::POST,
            "/api/audit/downloads",
            Some(json!({ "at": 1_764_000_000_000_i64, "patient": "someone else" })),
            [400, 400, 400, 400, 401],
        ),
        // Consents: granting an existing clinic; unknown clinics and clinics
        // the patient does not consent to are "not found".
        (Method::POST, "/api/consents/{clinic_b}", None, [200, 403, 403, 403, 401]),
        (Method::POST, "/api/consents/{unknown}", None, [404, 403, 403, 403, 401]),
        (Method::POST, "/api/consents/not-a-uuid", None, [404, 403, 403, 403, 401]),
        (Method::DELETE, "/api/consents/{clinic_c}", None, [404, 403, 403, 403, 401]),
        // Caregivers: inviting; another patient's caregiver is "not found".
        (
            Method::POST,
            "/api/caregivers",
            Some(json!({ "display_name": "New carer", "may_message": true })),
            [201, 403, 403, 403, 401],
        ),
        (Method::DELETE, "/api/caregivers/{c2}", None, [404, 403, 403, 403, 401]),
        (Method::DELETE, "/api/caregivers/{provider_a}", None, [404, 403, 403, 403, 401]),
        (Method::POST, "/api/caregivers/{c1}/enrollment", None, [201, 403, 403, 403, 401]),
        (Method::POST, "/api/caregivers/{c2}/enrollment", None, [404, 403, 403, 403, 401]),
        // Unknown API paths are a JSON 404 for everyone.
        (Method::GET, "/api/no-such-thing", None, [404, 404, 404, 404, 404]),
        (Method::GET, "/api/login/start", None, [405, 405, 405, 405, 405]),
        // Passkeys: another user's are "not found", exactly like unknown ones.
        (
            Method::PATCH,
            "/api/passkeys/{foreign_passkey}",
            Some(json!({ "name": "Mine now" })),
            [404, 404, 404, 404, 401],
        ),
        (Method::DELETE, "/api/passkeys/{foreign_passkey}", None, [404, 404, 404, 404, 401]),
        (Method::DELETE, "/api/passkeys/{unknown}", None, [404, 404, 404, 404, 401]),
        (
            Method::PATCH,
            "/api/passkeys/{own_passkey}",
            Some(json!({ "name": "Renamed" })),
            [204, 204, 204, 204, 401],
        ),
        (Method::DELETE, "/api/passkeys/{own_passkey}", None, [409, 409, 409, 409, 401]),
        (
            Method::POST,
            "/api/passkeys/register/start",
            Some(json!({ "name": "Spare" })),
            [200, 200, 200, 200, 401],
        ),
        (
            Method::POST,
            "/api/passkeys/register/finish",
            Some(json!({ "ceremony": "x", "credential": {} })),
            [400, 400, 400, 400, 401],
        ),
        // Re-authentication with one's own passkeys, and one's own open enrollment links.
        (Method::POST, "/api/reauth/start", None, [200, 200, 200, 200, 401]),
        (
            Method::POST,
            "/api/reauth/finish",
            Some(json!({ "ceremony": "x", "credential": {} })),
            [400, 400, 400, 400, 401],
        ),
        (Method::GET, "/api/enrollments", None, [200, 200, 200, 200, 401]),
        // Admin: invitations and new links for users of their own clinic only.
        (
            Method::POST,
            "/api/invitations",
            Some(json!({ "role": "patient", "display_name": "New patient" })),
            [403, 403, 403, 201, 401],
        ),
        (
            Method::POST,
            "/api/invitations",
            Some(json!({ "role": "provider", "display_name": "New doctor" })),
            [403, 403, 403, 201, 401],
        ),
        (
            Method::POST,
            "/api/invitations",
            Some(json!({ "role": "admin", "display_name": "Sneaky" })),
            [403, 403, 403, 400, 401],
        ),
        (Method::POST, "/api/users/{provider_a}/enrollment", None, [403, 403, 403, 201, 401]),
        (Method::POST, "/api/users/{p1_user}/enrollment", None, [403, 403, 403, 201, 401]),
        (Method::POST, "/api/users/{provider_b}/enrollment", None, [403, 403, 403, 404, 401]),
        (Method::POST, "/api/users/{admin_b}/enrollment", None, [403, 403, 403, 404, 401]),
        (Method::POST, "/api/users/{p2_user}/enrollment", None, [403, 403, 403, 404, 401]),
        (Method::POST, "/api/users/{c1_user}/enrollment", None, [403, 403, 403, 404, 401]),
        (Method::POST, "/api/users/{unknown}/enrollment", None, [403, 403, 403, 404, 401]),
        (Method::DELETE, "/api/enrollments", None, [204, 204, 204, 204, 401]),
        // Admin: their own clinic's page and details, checked.
        (Method::GET, "/api/clinic", None, [403, 403, 403, 200, 401]),
        (
            Method::PUT,
            "/api/clinic/details",
            Some(json!({ "phone": "+1 555 0100", "reply_days": 3 })),
            [403, 403, 403, 204, 401],
        ),
        (
            Method::PUT,
            "/api/clinic/details",
            Some(json!({ "phone": "call me <b>now</b>", "reply_days": 3 })),
            [403, 403, 403, 400, 401],
        ),
        (
            Method::PUT,
            "/api/clinic/details",
            Some(json!({ "phone": "", "reply_days": 400 })),
            [403, 403, 403, 400, 401],
        ),
    ];
    let mut failures = Vec::new();
    for (method, template, body, expected) in &cases {
        for column in 0..ROLES.len() {
            let path = fill(&w, template, column);
            let (status, response) =
                w.browsers[column].call(method.clone(), &path, body.clone()).await;
            if status != expected[column] {
                failures.push(format!(
                    "{method} {template} as {}: {status}, expected {} ({response})",
                    ROLES[column], expected[column]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    // The login and enrollment routes are anonymous by design; anything
    // state-changing without the Origin is refused for every role.
    let clinic_b_path = format!("/api/consents/{}", w.clinic_b);
    for (browser, role) in w.browsers.iter_mut().zip(ROLES) {
        let origin = browser.origin.take();
        let (status, body) = browser.post(&clinic_b_path, json!({})).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("origin_mismatch")), "{role}");
        browser.origin = origin;
    }

    // Revoking B's consent removes P1 from B's view at once; granting C creates C's documents.
    let path = format!("/api/consents/{b}");
    let (status, consents) = w.browsers[0].call(Method::DELETE, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(consents, json!([{ "clinic_id": a.to_string(), "clinic_name": "Clinic A" }]));
    assert_eq!(documents(&mut w.provider_b).await, ids(&p2_docs));
    assert_eq!(documents(&mut w.admin_b).await, ids(&[DocKind::PatientRecord { patient: p2 }]));
    assert_eq!(
        w.browsers[0].call(Method::DELETE, &path, None).await.0,
        404,
        "revoking twice: no such consent"
    );
    let (status, _) = w.browsers[0].post(&format!("/api/consents/{c}"), json!({})).await;
    assert_eq!(status, 200);
    assert!(
        documents(&mut w.browsers[0])
            .await
            .contains(&DocKind::ClinicalRecord { patient: p1, clinic: c }.doc_id().to_string())
    );
    let (_, consents) = w.browsers[1].get("/api/consents").await;
    assert_eq!(consents.as_array().unwrap().len(), 2, "the caregiver sees the patient's consents");

    // A patient created by a clinic's admin consents to that clinic and has
    // their documents there.
    let (_, created) = w.browsers[3]
        .post("/api/invitations", json!({ "role": "patient", "display_name": "Walk-in" }))
        .await;
    let new_patient: PatientId = created["patient_id"].as_str().unwrap().parse().unwrap();
    assert!(created["link"].as_str().unwrap().starts_with(&format!("{}/enroll#", w.app.base_url)));
    assert!(
        documents(&mut w.browsers[2])
            .await
            .contains(&DocKind::PatientRecord { patient: new_patient }.doc_id().to_string())
    );
    assert!(documents(&mut w.browsers[2]).await.contains(
        &DocKind::MessageThread { patient: new_patient, clinic: a }.doc_id().to_string()
    ));

    // The admin's clinic page: the details as set above, and its people
    // (the walk-in not enrolled yet; never a caregiver).
    let (status, clinic) = w.browsers[3].get("/api/clinic").await;
    assert_eq!(status, 200, "{clinic}");
    assert_eq!(clinic["contact"]["phone"], "+1 555 0100");
    let people = clinic["people"].as_array().unwrap();
    let walk_in = people.iter().find(|p| p["display_name"] == "Walk-in").unwrap();
    assert_eq!(walk_in["role"], "patient");
    assert_eq!(walk_in["enrolled"], false);
    assert!(people.iter().all(|p| p["role"] != "caregiver"), "{clinic}");
    // The patient's device gets them with her clinics, for the notice
    // above each conversation.
    let (_, me) = w.browsers[0].get("/api/me").await;
    let care = me["care"].as_array().unwrap();
    assert!(care.iter().any(|c| c["id"] == a.to_string() && c["reply_days"] == 3), "{me}");

    // Caregivers: the patient lists them, revokes one, and its session ends.
    let (_, carers) = w.browsers[0].get("/api/caregivers").await;
    let names: Vec<&str> =
        carers.as_array().unwrap().iter().map(|c| c["display_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Carer One", "New carer"]);
    assert_eq!(carers[1]["may_message"], true);
    let (_, me) = w.browsers[1].get("/api/me").await;
    assert_eq!(me["caregiver"], json!({ "may_read": true, "may_message": false }));
    assert_eq!(me["patient_id"], p1.to_string());
    let c1 = w.ids["c1"].clone();
    assert_eq!(
        w.browsers[0].call(Method::DELETE, &format!("/api/caregivers/{c1}"), None).await.0,
        204
    );
    assert_eq!(w.browsers[1].get("/api/me").await.0, 401, "a revoked caregiver's session ends");
    assert_eq!(
        w.browsers[0].call(Method::DELETE, &format!("/api/caregivers/{c1}"), None).await.0,
        404
    );

    // The patient's audit trail names who did what, and holds only their events.
    let (_, audit) = w.browsers[0].get("/api/audit").await;
    let actions: BTreeSet<&str> =
        audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in [
        "enrollment",
        "passkey_added",
        "consent_granted",
        "consent_revoked",
        "caregiver_invited",
        "caregiver_revoked",
        "passkey_renamed",
    ] {
        assert!(actions.contains(action), "{action}: {actions:?}");
    }
    let (_, p2_audit) = w.p2_browser.get("/api/audit").await;
    assert!(
        p2_audit
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_name"] != "Patient One" && e["user_name"] != "Carer One")
    );
    w.app.stop().await;
    db.drop_database().await;
}
