//! Passkey ceremonies against a real server, with a software authenticator:
//! enrollment, usernameless sign-in, sessions, and the ways they must fail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use server::auth::{self, AuthConfig};
use server::storage::Backend;
use shared::ClinicId;
use shared::api::UserRole;
use testkit::{TestDatabase, TestServer};

use crate::BACKENDS;
use crate::authenticator::SoftPasskey;
use crate::client::{Browser, invite};

const EVIL: &str = "http://evil.example";

async fn start(backend: Backend) -> (TestDatabase, TestServer) {
    let db = TestDatabase::new(backend).await;
    let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
    (db, app)
}

async fn clinic(app: &TestServer, name: &str) -> ClinicId {
    let id = ClinicId::mint();
    app.store.create_clinic(id, name, app.clock.now_ms()).await.unwrap();
    id
}

#[tokio::test]
async fn enroll_then_sign_in_then_me() {
    for backend in BACKENDS {
        let (db, app) = start(backend).await;
        let riverside = clinic(&app, "Riverside").await;
        let invitation =
            invite(&app, UserRole::Patient, "Maria Santos", Some(riverside), None).await;
        assert!(
            invitation.link.starts_with(&format!("{}/enroll#", app.base_url)),
            "{}",
            invitation.link
        );

        // The link's page reads whom it is for before a passkey is made.
        let mut browser = Browser::new(&app.base_url);
        let token = invitation.link.split_once('#').unwrap().1;
        let (status, about) =
            browser.post("/api/enroll/invitation", json!({ "token": token })).await;
        assert_eq!(status, 200, "{backend:?}: {about}");
        assert_eq!(about["display_name"], "Maria Santos");
        assert_eq!(about["role"], "patient");
        assert!(about["invited_by"].is_null(), "issued from the command line: {about}");
        assert!(about["patient_name"].is_null(), "{about}");

        // Enrollment registers a passkey and signs in.
        let mut phone = SoftPasskey::new();
        let me = browser.enroll(&mut phone, &invitation.link).await;
        // A used link, or a made-up one, tells nothing about anyone.
        for token in [token, "made-up"] {
            let (status, body) =
                browser.post("/api/enroll/invitation", json!({ "token": token })).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (410, Some("enrollment_link_invalid")),
                "{backend:?}: {body}"
            );
        }
        assert_eq!(me["role"], "patient", "{backend:?}");
        assert_eq!(me["display_name"], "Maria Santos");
        assert_eq!(me["patient_id"], invitation.user.patient.unwrap().to_string());
        let set_cookie = browser.last_set_cookie.clone().unwrap();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set_cookie.contains(attribute), "{set_cookie}");
        }
        assert!(!set_cookie.contains("Secure"), "plain-http localhost: {set_cookie}");
        let enrolled_actor = me["actor_id"].as_str().unwrap().to_owned();
        assert_eq!(enrolled_actor.len(), 32);

        // A fresh browser signs in without a username.
        let mut other = Browser::new(&app.base_url);
        assert_eq!(other.get("/api/me").await.0, 401);
        let me = other.login(&mut phone).await;
        assert_eq!(me["user_id"], invitation.user.id.to_string(), "{backend:?}");
        let (status, me) = other.get("/api/me").await;
        assert_eq!(status, 200);
        let actor = me["actor_id"].as_str().unwrap();
        assert_ne!(actor, enrolled_actor, "every session has its own actor id");
        assert_eq!(
            app.store.actor_owner(actor).await.unwrap(),
            Some(invitation.user.id),
            "the actor id is bound to the user"
        );
        assert!(me["caregiver"].is_null());

        // The counter moved on, and a second sign-in (counter 2) still works.
        other.login(&mut phone).await;
        let (_, passkeys) = other.get("/api/passkeys").await;
        assert_eq!(passkeys.as_array().unwrap().len(), 1);
        assert_eq!(passkeys[0]["name"], "Test device");
        assert!(passkeys[0]["last_used_at"].is_i64());

        // Signing out ends this session only.
        assert_eq!(other.post("/api/logout", json!({})).await.0, 204);
        let (status, body) = other.get("/api/me").await;
        assert_eq!((status, body["error"].as_str()), (401, Some("session_expired")), "{backend:?}");
        assert_eq!(browser.get("/api/me").await.0, 200);

        // The audit trail shows the enrollment and sign-ins.
        let (_, audit) = browser.get("/api/audit").await;
        let actions: Vec<&str> =
            audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        for action in ["enrollment", "passkey_added", "sign_in", "sign_out"] {
            assert!(actions.contains(&action), "{backend:?}: {actions:?}");
        }
        assert_eq!(audit[0]["user_name"], "Maria Santos");
        app.stop().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn sign_in_failures() {
    let (db, app) = start(Backend::Sqlite).await;
    let c = clinic(&app, "Riverside").await;
    let invitation = invite(&app, UserRole::Provider, "Dr. Okafor", Some(c), None).await;
    let mut device = SoftPasskey::new();
    let mut browser = Browser::new(&app.base_url);
    browser.enroll(&mut device, &invitation.link).await;

    // A replayed assertion: the same ceremony twice, and an old assertion
    // against a new ceremony.
    let mut b = Browser::new(&app.base_url);
    let (_, started) = b.post("/api/login/start", json!({})).await;
    let assertion = device.assert(&started["options"], &app.base_url);
    let finish = json!({ "ceremony": started["ceremony"], "credential": assertion });
    assert_eq!(b.post("/api/login/finish", finish.clone()).await.0, 200);
    let (status, body) = b.post("/api/login/finish", finish).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ceremony_expired")),
        "a ceremony is single-use"
    );
    let (_, fresh) = b.post("/api/login/start", json!({})).await;
    let (status, body) = b
        .post(
            "/api/login/finish",
            json!({ "ceremony": fresh["ceremony"], "credential": assertion }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("passkey_rejected")),
        "an old assertion does not answer a new challenge"
    );

    // clientDataJSON from another origin.
    let mut b = Browser::new(&app.base_url);
    let (status, body) = b.try_login(&mut device, None, EVIL).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("passkey_rejected")));
    assert!(b.cookie.is_none());
    // The Origin header from another site, or none: refused before anything else.
    let mut evil = Browser::new(&app.base_url);
    evil.origin = Some(EVIL.into());
    let (status, body) = evil.post("/api/login/start", json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("origin_mismatch")));
    evil.origin = None;
    assert_eq!(evil.post("/api/login/start", json!({})).await.0, 403);

    // An unknown ceremony id.
    let (status, _) =
        b.post("/api/login/finish", json!({ "ceremony": "nope", "credential": assertion })).await;
    assert_eq!(status, 400);

    // An unknown credential: a passkey this server never registered.
    let mut stranger = SoftPasskey::new();
    let mut b = Browser::new(&app.base_url);
    let (_, started) = b.post("/api/login/start", json!({})).await;
    let fake_options = json!({ "publicKey": {
        "challenge": started["options"]["publicKey"]["challenge"],
        "rp": { "id": "localhost", "name": "x" },
        "user": { "id": "AAAAAAAAAAAAAAAAAAAAAA", "name": "x", "displayName": "x" },
        "authenticatorSelection": { "residentKey": "required", "requireResidentKey": true },
    }});
    stranger.register(&fake_options, &app.base_url);
    let (status, body) = b.try_login(&mut stranger, None, &app.base_url).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("passkey_rejected")));

    // A second passkey; revoking the first one locks it out; the last cannot go.
    let mut laptop = SoftPasskey::new();
    let added = browser.add_passkey(&mut laptop, "Laptop").await;
    assert_eq!(added["name"], "Laptop");
    let (_, list) = browser.get("/api/passkeys").await;
    let first = list[0]["id"].as_str().unwrap().to_owned();
    let second = list[1]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        browser
            .call(
                Method::PATCH,
                &format!("/api/passkeys/{second}"),
                Some(json!({ "name": "Work laptop" }))
            )
            .await
            .0,
        204
    );
    assert_eq!(browser.call(Method::DELETE, &format!("/api/passkeys/{first}"), None).await.0, 204);
    let (status, body) = browser.get("/api/me").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("session_expired")),
        "removing a passkey ends its sessions"
    );
    let (status, body) =
        Browser::new(&app.base_url).try_login(&mut device, None, &app.base_url).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("passkey_rejected")),
        "a revoked passkey no longer signs in"
    );
    let mut laptop_browser = Browser::new(&app.base_url);
    laptop_browser.login(&mut laptop).await;
    let (status, body) =
        laptop_browser.call(Method::DELETE, &format!("/api/passkeys/{second}"), None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "the last passkey stays");
    let (_, list) = laptop_browser.get("/api/passkeys").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "Work laptop");

    // A registration whose clientDataJSON names another origin.
    let mut browser = Browser::new(&app.base_url);
    browser.login(&mut laptop).await;
    let (_, started) =
        browser.post("/api/passkeys/register/start", json!({ "name": "Evil" })).await;
    let credential = SoftPasskey::new().register(&started["options"], EVIL);
    let (status, body) = browser
        .post(
            "/api/passkeys/register/finish",
            json!({ "ceremony": started["ceremony"], "credential": credential }),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("passkey_rejected")));

    // An expired ceremony: finished once its time is up.
    let mut b = Browser::new(&app.base_url);
    let (_, started) = b.post("/api/login/start", json!({})).await;
    app.clock.advance(auth::CEREMONY_TTL);
    let assertion = laptop.assert(&started["options"], &app.base_url);
    let (status, body) = b
        .post(
            "/api/login/finish",
            json!({ "ceremony": started["ceremony"], "credential": assertion }),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("ceremony_expired")));

    // Idle expiry: 11 hours pass, the laptop is used (the browser is not),
    // 2 more hours pass: the browser's session has been idle for 13 hours.
    assert_eq!(browser.get("/api/me").await.0, 200);
    app.clock.advance(Duration::from_secs(11 * 3600));
    let (status, laptop_me) = laptop_browser.get("/api/me").await;
    assert_eq!(status, 200, "11 hours idle is not 12");
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(browser.get("/api/me").await.0, 401, "12 hours idle ends a session");

    // Ended sessions are purged; live ones stay.
    let idle = i64::try_from(server::auth::SESSION_IDLE.as_millis()).unwrap();
    let now = app.clock.now_ms();
    assert!(app.store.purge_ended(idle, now).await.unwrap() >= 1, "the idle session is deleted");
    assert_eq!(
        laptop_browser.get("/api/me").await.1["session_id"],
        laptop_me["session_id"],
        "a live session stays"
    );
    assert_eq!(app.store.purge_ended(idle, now).await.unwrap(), 0);
    app.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn enrollment_links_are_single_use_and_expire() {
    let (db, app) = start(Backend::Sqlite).await;
    let c = clinic(&app, "Riverside").await;
    let invalid =
        "This enrollment link has expired or was already used. Ask your clinic for a new one.";

    // Used: a second start fails, and of two started ceremonies only one finishes.
    let invitation = invite(&app, UserRole::Patient, "Pat", Some(c), None).await;
    let token = invitation.link.split_once('#').unwrap().1.to_owned();
    let mut first = Browser::new(&app.base_url);
    let mut second = Browser::new(&app.base_url);
    let (_, started_a) = first.post("/api/enroll/start", json!({ "token": token })).await;
    let (_, started_b) = second.post("/api/enroll/start", json!({ "token": token })).await;
    assert_eq!(started_a["display_name"], "Pat");
    let mut device = SoftPasskey::new();
    let a = device.register(&started_a["options"], &app.base_url);
    let b = SoftPasskey::new().register(&started_b["options"], &app.base_url);
    assert_eq!(
        first
            .post(
                "/api/enroll/finish",
                json!({ "ceremony": started_a["ceremony"], "credential": a })
            )
            .await
            .0,
        200
    );
    let (status, body) = second
        .post("/api/enroll/finish", json!({ "ceremony": started_b["ceremony"], "credential": b }))
        .await;
    assert_eq!(status, 410);
    assert_eq!(body, json!({ "error": "enrollment_link_invalid", "message": invalid }));
    let (status, body) = second.post("/api/enroll/start", json!({ "token": token })).await;
    assert_eq!((status, body["message"].as_str()), (410, Some(invalid)));

    // Expired: used once its 72 hours are up.
    let invitation = invite(&app, UserRole::Patient, "Late", Some(c), None).await;
    let token = invitation.link.split_once('#').unwrap().1.to_owned();
    app.clock.advance(auth::ENROLLMENT_TTL);
    let (status, body) =
        Browser::new(&app.base_url).post("/api/enroll/start", json!({ "token": token })).await;
    assert_eq!((status, body["error"].as_str()), (410, Some("enrollment_link_invalid")));

    // Unknown.
    let (status, body) = Browser::new(&app.base_url)
        .post("/api/enroll/start", json!({ "token": "not-a-token" }))
        .await;
    assert_eq!((status, body["error"].as_str()), (410, Some("enrollment_link_invalid")));

    // Expired between start and finish (started a minute before its
    // expiry, finished two minutes later, within the ceremony's five):
    // the passkey is not added.
    let invitation = invite(&app, UserRole::Patient, "Slow", Some(c), None).await;
    let token = invitation.link.split_once('#').unwrap().1.to_owned();
    app.clock.advance(auth::ENROLLMENT_TTL - Duration::from_secs(60));
    let mut b = Browser::new(&app.base_url);
    let (status, started) = b.post("/api/enroll/start", json!({ "token": token })).await;
    assert_eq!(status, 200, "a minute before its expiry the link still works: {started}");
    app.clock.advance(Duration::from_secs(120));
    let credential = SoftPasskey::new().register(&started["options"], &app.base_url);
    let (status, _) = b
        .post(
            "/api/enroll/finish",
            json!({ "ceremony": started["ceremony"], "credential": credential }),
        )
        .await;
    assert_eq!(status, 410);
    assert!(app.store.passkeys(invitation.user.id).await.unwrap().is_empty());

    // Malformed JSON gets the same error format.
    let response = reqwest::Client::new()
        .post(format!("{}/api/enroll/start", app.base_url))
        .header("origin", &app.base_url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");
    app.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn state_changes_need_the_portals_origin_and_websockets_use_authenticate() {
    let (db, app) = start(Backend::Sqlite).await;
    let c = clinic(&app, "Riverside").await;
    let invitation = invite(&app, UserRole::Admin, "Ada", Some(c), None).await;
    let mut browser = Browser::new(&app.base_url);
    let me = browser.enroll(&mut SoftPasskey::new(), &invitation.link).await;
    assert_eq!(me["clinics"], json!([{ "id": c.to_string(), "name": "Riverside" }]));

    // CSRF: a signed-in cookie without the portal's Origin changes nothing.
    for origin in [None, Some(EVIL.to_owned()), Some("http://localhost".to_owned())] {
        browser.origin = origin.clone();
        let (status, body) = browser
            .post("/api/invitations", json!({ "role": "patient", "display_name": "X" }))
            .await;
        assert_eq!((status, body["error"].as_str()), (403, Some("origin_mismatch")), "{origin:?}");
        assert_eq!(browser.post("/api/logout-all", json!({})).await.0, 403, "{origin:?}");
    }
    // Reads need no Origin.
    browser.origin = None;
    assert_eq!(browser.get("/api/me").await.0, 200);

    // `authenticate` (the sync WebSocket's check) wants the cookie AND the Origin.
    let state = server::AppState {
        store: app.store.clone(),
        hub: Arc::new(server::sync::Hub::new(
            app.store.clone(),
            app.clock.clone(),
            server::config::DEFAULT_DOC_CACHE_MB << 20,
        )),
        test_identities: false,
        static_dir: Arc::new(PathBuf::from("/nonexistent")),
        public_url: app.base_url.clone().into(),
        auth: Arc::new(AuthConfig::new(&app.base_url).unwrap()),
        limits: Arc::new(server::ratelimit::RateLimiter::new(Default::default(), false)),
        clock: app.clock.clone(),
    };
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "cookie",
        format!("portal_session={}", browser.cookie.clone().unwrap()).parse().unwrap(),
    );
    assert!(matches!(
        auth::authenticate(&state, &headers).await,
        Err(server::Error::OriginMismatch)
    ));
    headers.insert("origin", EVIL.parse().unwrap());
    assert!(matches!(
        auth::authenticate(&state, &headers).await,
        Err(server::Error::OriginMismatch)
    ));
    headers.insert("origin", app.base_url.parse().unwrap());
    let user = auth::authenticate(&state, &headers).await.unwrap();
    assert_eq!(user.user.id, invitation.user.id);
    assert_eq!(user.actor_id, me["actor_id"].as_str().unwrap());
    let mut anonymous = axum::http::HeaderMap::new();
    anonymous.insert("origin", app.base_url.parse().unwrap());
    assert!(matches!(
        auth::authenticate(&state, &anonymous).await,
        Err(server::Error::Unauthorized)
    ));

    // Sign out everywhere ends every session.
    let mut phone = Browser::new(&app.base_url);
    let mut device = SoftPasskey::new();
    browser.origin = Some(app.base_url.clone());
    browser.add_passkey(&mut device, "Phone").await;
    phone.login(&mut device).await;
    assert_eq!(phone.post("/api/logout-all", json!({})).await.0, 204);
    assert_eq!(phone.get("/api/me").await.0, 401);
    assert_eq!(browser.get("/api/me").await.0, 401);
    assert!(auth::authenticate(&state, &headers).await.is_err());
    app.stop().await;
    db.drop_database().await;
}

#[test]
fn cookies_are_secure_on_https() {
    let config = AuthConfig::new("https://portal.example.org").unwrap();
    assert!(config.secure_cookies);
    assert_eq!(config.origin, "https://portal.example.org");
    assert!(auth::set_cookie("x", true, 10).to_str().unwrap().contains("; Secure"));
    assert!(!AuthConfig::new("http://localhost:8080").unwrap().secure_cookies);
}
