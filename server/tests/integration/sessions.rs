//! Sessions and identity against a real server: ending a session closes its
//! sync sockets at once (and a write sent after is not stored), sessions
//! end with the passkey that made them, granting access needs a fresh
//! passkey assertion, an enrollment link cannot silently take over an
//! account, changes to a record whose consent was withdrawn are refused by
//! name, and anonymous ceremonies are rate limited.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge, ReadDoc};
use reqwest::Method;
use serde_json::{Value, json};
use server::auth::accounts;
use server::demo::{self, DemoUser};
use server::ratelimit::{Bucket, Limits, RateLimiter};
use server::storage::Backend;
use shared::schema::{DocKind, Message};
use shared::status::Side;
use shared::sync::{SyncClient, WireMessage, encode_doc_id};
use shared::{DocId, EntryId, record};
use testkit::{ClientError, Replica};
use testkit::{TestDatabase, TestServer};

use crate::BACKENDS;
use crate::authenticator::SoftPasskey;
use crate::client::Browser;

const TIMEOUT: Duration = Duration::from_secs(30);
/// "At once": a socket of a session ended on this instance closes within this.
const AT_ONCE: Duration = Duration::from_secs(2);

struct World {
    db: TestDatabase,
    app: TestServer,
    users: Vec<DemoUser>,
}

impl World {
    async fn new(backend: Backend) -> Self {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let users = demo::seed(&app.store).await.unwrap();
        Self { db, app, users }
    }

    fn user(&self, name: &str) -> DemoUser {
        self.users.iter().find(|u| u.name.contains(name)).unwrap().clone()
    }

    /// Enrolls a demo user's first passkey on `device` through a link the
    /// operator issued; returns the signed-in browser.
    async fn enroll(&self, name: &str, device: &mut SoftPasskey) -> Browser {
        let (link, _) = accounts::issue_enrollment(
            &self.app.store,
            &self.app.base_url,
            self.user(name).id,
            None,
            self.app.clock.now_ms(),
        )
        .await
        .unwrap();
        let mut browser = Browser::new(&self.app.base_url);
        browser.enroll(device, &link).await;
        browser
    }

    /// Maria invites Ana Santos as her caregiver; Ana enrolls. Returns
    /// Ana's signed-in browser and her user id.
    async fn caregiver_of(&self, maria: &mut Browser) -> (Browser, String) {
        let (status, invitation) =
            maria.post("/api/caregivers", json!({ "display_name": "Ana Santos" })).await;
        assert_eq!(status, 201, "{invitation}");
        let mut ana = Browser::new(&self.app.base_url);
        ana.enroll(&mut SoftPasskey::new(), invitation["link"].as_str().unwrap()).await;
        (ana, invitation["user_id"].as_str().unwrap().to_owned())
    }

    async fn stop(self) {
        self.app.stop().await;
        self.db.drop_database().await;
    }
}

/// A sync socket opened with a browser's session cookie and the portal's
/// Origin, holding `docs`, fully synced, writing under a fresh actor id.
async fn socket(app: &TestServer, browser: &Browser, docs: &[DocId]) -> Replica {
    let mut client = SyncClient::new(format!("test-{}", uuid::Uuid::now_v7().simple()));
    for id in docs {
        client.insert(*id, Automerge::new());
    }
    let url = format!("{}/sync", app.base_url.replacen("http", "ws", 1));
    let headers = [
        ("cookie", format!("portal_session={}", browser.cookie.clone().unwrap())),
        ("origin", app.base_url.clone()),
    ];
    let mut replica = Replica::connect(&url, &headers, client).await.unwrap();
    replica.sync_all(TIMEOUT).await.unwrap();
    let actor = ActorId::random();
    for id in docs {
        replica.client.doc_mut(*id).unwrap().set_actor(actor.clone());
    }
    replica.take_received();
    replica
}

/// Reads from the socket until the server closes it; returns the close
/// code and reason. Panics if it is still open after `within`.
async fn closed_within(replica: &mut Replica, within: Duration) -> String {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match replica.next_message(deadline).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the socket is still open after {within:?}"),
            Err(ClientError::Closed(reason)) => {
                assert!(started.elapsed() <= within, "closed after {:?}", started.elapsed());
                return reason;
            }
            Err(other) => panic!("the socket failed instead of closing: {other}"),
        }
    }
}

fn maria_thread(w: &World) -> DocId {
    DocKind::MessageThread {
        patient: w.user("Maria").patient.unwrap(),
        clinic: w.user("Okafor").clinics[0],
    }
    .doc_id()
}

/// Adds a message from `author` to the thread in the client's copy; returns its entry id.
fn write_message(client: &mut SyncClient, id: DocId, author: &DemoUser, body: &str) -> EntryId {
    let entry = EntryId::mint();
    let doc = client.doc_mut(id).unwrap();
    let mut tx = doc.transaction();
    let side = if author.patient.is_some() { Side::Patient } else { Side::Clinic };
    let message = Message::new(author.id, author.name, side, "2026-12-01T09:00:00Z", body);
    record::add(&mut tx, entry, &message).unwrap();
    tx.commit();
    entry
}

async fn stored_has(app: &TestServer, id: DocId, entry: EntryId) -> bool {
    let doc = app.store.load_document(id).await.unwrap().unwrap().to_automerge().unwrap();
    let (_, messages) = doc.get(automerge::ROOT, "messages").unwrap().unwrap();
    doc.get(&messages, entry.to_string()).unwrap().is_some()
}

async fn audit_actions(browser: &mut Browser) -> Vec<String> {
    let (status, audit) = browser.get("/api/audit").await;
    assert_eq!(status, 200, "{audit}");
    audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

/// Sign-out closes the session's socket at once, with code 4401 and a reason
/// in plain words; a write sent right after the sign-out answer is not stored.
#[tokio::test]
async fn sign_out_closes_the_sessions_socket_and_a_later_write_is_not_stored() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let maria = w.user("Maria");
        let thread = maria_thread(&w);
        let mut browser = w.enroll("Maria", &mut SoftPasskey::new()).await;
        let mut replica = socket(&w.app, &browser, &[thread]).await;

        // While signed in, a write is accepted and stored.
        let before = write_message(&mut replica.client, thread, &maria, "Before signing out");
        replica.flush_local().await.unwrap();
        replica.sync_all(TIMEOUT).await.unwrap();
        assert!(stored_has(&w.app, thread, before).await, "{backend:?}");

        assert_eq!(browser.post("/api/logout", json!({})).await.0, 204);
        let after = write_message(&mut replica.client, thread, &maria, "After signing out");
        // The server may have closed the socket already; sending can fail.
        let _ = replica.flush_local().await;
        let reason = closed_within(&mut replica, AT_ONCE).await;
        assert!(reason.starts_with("4401 "), "{backend:?}: {reason}");
        assert!(reason.contains("You signed out on this device."), "{reason}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !stored_has(&w.app, thread, after).await,
            "{backend:?}: a write after sign-out was stored"
        );

        // The cookie opens no new socket either.
        let url = format!("{}/sync", w.app.base_url.replacen("http", "ws", 1));
        let headers = [
            ("cookie", format!("portal_session={}", browser.cookie.clone().unwrap_or_default())),
            ("origin", w.app.base_url.clone()),
        ];
        assert!(
            Replica::connect(&url, &headers, SyncClient::new("again")).await.is_err(),
            "{backend:?}"
        );
        w.stop().await;
    }
}

/// "Sign out everywhere" closes every socket of the user; passkey removal
/// closes those of the sessions signed in with that passkey and no other.
#[tokio::test]
async fn sign_out_everywhere_and_passkey_removal_close_exactly_their_sockets() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let thread = maria_thread(&w);
        let mut phone = SoftPasskey::new();
        let mut laptop = SoftPasskey::new();
        let mut phone_browser = w.enroll("Maria", &mut phone).await;
        phone_browser.add_passkey(&mut laptop, "Laptop").await;
        let mut laptop_browser = Browser::new(&w.app.base_url);
        laptop_browser.login(&mut laptop).await;
        let (_, me) = phone_browser.get("/api/me").await;
        let phone_key = me["passkey_id"].as_str().unwrap().to_owned();
        let mut phone_socket = socket(&w.app, &phone_browser, &[thread]).await;
        let mut laptop_socket = socket(&w.app, &laptop_browser, &[thread]).await;

        // The laptop removes the phone's passkey: the phone's socket closes,
        // the laptop's stays open (and still syncs).
        let (status, _) =
            laptop_browser.call(Method::DELETE, &format!("/api/passkeys/{phone_key}"), None).await;
        assert_eq!(status, 204);
        let reason = closed_within(&mut phone_socket, AT_ONCE).await;
        assert!(
            reason.contains("4401")
                && reason.contains("passkey this device signed in with was removed"),
            "{backend:?}: {reason}"
        );
        assert_eq!(phone_browser.get("/api/me").await.0, 401, "{backend:?}");
        let entry =
            write_message(&mut laptop_socket.client, thread, &w.user("Maria"), "Still here");
        laptop_socket.flush_local().await.unwrap();
        laptop_socket.sync_all(TIMEOUT).await.unwrap();
        assert!(stored_has(&w.app, thread, entry).await, "{backend:?}");
        assert!(audit_actions(&mut laptop_browser).await.contains(&"passkey_revoked".to_owned()));

        // Sign out everywhere: every socket of hers closes, this one included.
        let mut second = Browser::new(&w.app.base_url);
        second.login(&mut laptop).await;
        let mut second_socket = socket(&w.app, &second, &[thread]).await;
        assert_eq!(laptop_browser.post("/api/logout-all", json!({})).await.0, 204);
        for replica in [&mut laptop_socket, &mut second_socket] {
            let reason = closed_within(replica, AT_ONCE).await;
            assert!(
                reason.contains("4401") && reason.contains("signed out everywhere"),
                "{backend:?}: {reason}"
            );
        }
        w.stop().await;
    }
}

/// Taking a caregiver's access away closes their sockets at once.
#[tokio::test]
async fn removing_a_caregiver_closes_their_sockets() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let thread = maria_thread(&w);
        let mut maria = w.enroll("Maria", &mut SoftPasskey::new()).await;
        let (ana, user) = w.caregiver_of(&mut maria).await;
        let mut ana_socket = socket(&w.app, &ana, &[thread]).await;

        assert_eq!(
            maria.call(Method::DELETE, &format!("/api/caregivers/{user}"), None).await.0,
            204
        );
        let reason = closed_within(&mut ana_socket, AT_ONCE).await;
        assert!(
            reason.contains("4401") && reason.contains("access to this record was taken away"),
            "{backend:?}: {reason}"
        );
        w.stop().await;
    }
}

/// A session ended where this instance was not told (another instance, or a
/// lost notification) still closes its socket, within the recheck period.
#[tokio::test]
async fn a_session_ended_elsewhere_closes_its_socket_within_the_recheck_period() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let thread = maria_thread(&w);
        let mut browser = w.enroll("Maria", &mut SoftPasskey::new()).await;
        let mut replica = socket(&w.app, &browser, &[thread]).await;
        let (_, me) = browser.get("/api/me").await;
        // Straight in storage: nothing is broadcast on this instance.
        w.app
            .store
            .revoke_session(me["session_id"].as_str().unwrap(), w.app.clock.now_ms())
            .await
            .unwrap();
        let reason =
            closed_within(&mut replica, server::sync::SESSION_RECHECK + Duration::from_secs(2))
                .await;
        assert!(
            reason.contains("4401") && reason.contains("Your session has ended"),
            "{backend:?}: {reason}"
        );
        w.stop().await;
    }
}

/// An access change this instance was not told about (made by another
/// instance whose notification was lost; here straight in storage) applies
/// to open sockets within the recheck period: the access version moved.
#[tokio::test]
async fn an_access_change_nobody_announced_applies_within_the_recheck_period() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let thread = maria_thread(&w);
        let okafor = w.user("Okafor");
        let browser = w.enroll("Okafor", &mut SoftPasskey::new()).await;
        let mut replica = socket(&w.app, &browser, &[thread]).await;
        let version = w.app.store.access_version().await.unwrap();
        w.app
            .store
            .revoke_consent(
                w.user("Maria").patient.unwrap(),
                okafor.clinics[0],
                w.app.clock.now_ms(),
            )
            .await
            .unwrap();
        assert!(w.app.store.access_version().await.unwrap() > version, "{backend:?}");
        tokio::time::sleep(server::sync::SESSION_RECHECK + Duration::from_millis(1500)).await;
        let entry = write_message(&mut replica.client, thread, &okafor, "After the consent ended");
        replica.flush_local().await.unwrap();
        let WireMessage::ChangeRejected { rule, .. } = next_rejection(&mut replica).await else {
            unreachable!()
        };
        assert_eq!(rule, "consent", "{backend:?}");
        assert!(!stored_has(&w.app, thread, entry).await, "{backend:?}");
        w.stop().await;
    }
}

/// Two instances on one PostgreSQL database: signing out on one closes the
/// socket held by the other within the recheck period.
#[tokio::test]
async fn signing_out_on_one_instance_closes_the_socket_on_another() {
    let w = World::new(Backend::Postgres).await;
    let other = TestServer::start(&w.db, PathBuf::from("/nonexistent")).await;
    let thread = maria_thread(&w);
    let mut browser = w.enroll("Maria", &mut SoftPasskey::new()).await;
    let mut on_other = socket(&other, &browser, &[thread]).await;
    assert_eq!(browser.post("/api/logout", json!({})).await.0, 204);
    let reason =
        closed_within(&mut on_other, server::sync::SESSION_RECHECK + Duration::from_secs(2)).await;
    assert!(reason.contains("4401"), "{reason}");
    other.stop().await;
    w.stop().await;
}

/// Issue 19's lost phone: a session left open on it may not add a passkey,
/// invite a caregiver or issue a link without a fresh passkey assertion;
/// after one it may. Removing the phone's passkey ends the phone's session;
/// a passkey it added is listed as added with the phone's passkey.
#[tokio::test]
async fn granting_access_needs_a_fresh_passkey_assertion() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let mut phone = SoftPasskey::new();
        let mut browser = w.enroll("Maria", &mut phone).await;
        let (_, me) = browser.get("/api/me").await;
        let phone_key = me["passkey_id"].as_str().unwrap().to_owned();

        // Just signed in: fresh. A passkey added now records which passkey's session added it.
        let mut tablet = SoftPasskey::new();
        let added = browser.add_passkey(&mut tablet, "Tablet").await;
        assert_eq!(added["added_with"].as_str(), Some(phone_key.as_str()), "{backend:?}");

        // An hour later, the same session (the phone left somewhere).
        w.app.clock.advance(Duration::from_secs(3600));
        let (status, body) =
            browser.post("/api/passkeys/register/start", json!({ "name": "Thief" })).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("reauth_required")),
            "{backend:?}: {body}"
        );
        let (status, body) =
            browser.post("/api/caregivers", json!({ "display_name": "Stranger" })).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("reauth_required")), "{backend:?}");
        assert!(body["message"].as_str().unwrap().contains("use your passkey again"), "{body}");
        let (_, list) = browser.get("/api/caregivers").await;
        assert_eq!(list.as_array().unwrap().len(), 0, "{backend:?}: no caregiver was created");

        // Another user's passkey, or another user's ceremony, does not verify this session.
        let mut okafor_device = SoftPasskey::new();
        let mut okafor = w.enroll("Okafor", &mut okafor_device).await;
        let (_, started) = browser.post("/api/reauth/start", json!({})).await;
        let wrong = okafor_device.assert(&started["options"], &w.app.base_url);
        let (status, _) = browser
            .post(
                "/api/reauth/finish",
                json!({ "ceremony": started["ceremony"], "credential": wrong }),
            )
            .await;
        assert_eq!(status, 401, "{backend:?}: another user's passkey");
        let (_, theirs) = okafor.post("/api/reauth/start", json!({})).await;
        let mine = phone.assert(&theirs["options"], &w.app.base_url);
        let (status, _) = browser
            .post(
                "/api/reauth/finish",
                json!({ "ceremony": theirs["ceremony"], "credential": mine }),
            )
            .await;
        assert_eq!(status, 400, "{backend:?}: a ceremony started by another user");
        assert_eq!(
            browser.post("/api/caregivers", json!({ "display_name": "Stranger" })).await.0,
            403
        );

        // Her own passkey: verified again, and the invitation goes through.
        let (status, started) = browser.post("/api/reauth/start", json!({})).await;
        assert_eq!(status, 200, "{started}");
        assert!(
            started["options"]["publicKey"]["allowCredentials"].as_array().unwrap().len() == 2,
            "only her passkeys: {started}"
        );
        let assertion = phone.assert(&started["options"], &w.app.base_url);
        let (status, body) = browser
            .post(
                "/api/reauth/finish",
                json!({ "ceremony": started["ceremony"], "credential": assertion }),
            )
            .await;
        assert_eq!(status, 204, "{backend:?}: {body}");
        let (status, invitation) =
            browser.post("/api/caregivers", json!({ "display_name": "Ana Santos" })).await;
        assert_eq!(status, 201, "{backend:?}: {invitation}");
        let caregiver = invitation["user_id"].as_str().unwrap().to_owned();
        assert!(
            audit_actions(&mut browser).await.contains(&"reauthenticated".to_owned()),
            "{backend:?}"
        );

        // A new link for the caregiver, an hour later again: refused, then allowed.
        w.app.clock.advance(Duration::from_secs(3600));
        let link = format!("/api/caregivers/{caregiver}/enrollment");
        assert_eq!(browser.post(&link, json!({})).await.1["error"], "reauth_required");
        let (_, started) = browser.post("/api/reauth/start", json!({})).await;
        let assertion = phone.assert(&started["options"], &w.app.base_url);
        browser
            .post(
                "/api/reauth/finish",
                json!({ "ceremony": started["ceremony"], "credential": assertion }),
            )
            .await;
        assert_eq!(browser.post(&link, json!({})).await.0, 201, "{backend:?}");

        // The tablet's owner removes the phone's passkey: the phone's session is over.
        let mut tablet_browser = Browser::new(&w.app.base_url);
        tablet_browser.login(&mut tablet).await;
        assert_eq!(
            tablet_browser
                .call(Method::DELETE, &format!("/api/passkeys/{phone_key}"), None)
                .await
                .0,
            204
        );
        assert_eq!(browser.get("/api/me").await.0, 401, "{backend:?}");
        let (_, keys) = tablet_browser.get("/api/passkeys").await;
        assert_eq!(keys.as_array().unwrap().len(), 1);
        w.stop().await;
    }
}

/// An admin's links (new users, and new links for existing ones) need a fresh assertion too.
#[tokio::test]
async fn admin_links_need_a_fresh_passkey_assertion() {
    let w = World::new(Backend::Sqlite).await;
    let mut device = SoftPasskey::new();
    let mut admin = w.enroll("Jordan", &mut device).await;
    // Ten minutes after signing in.
    w.app.clock.advance(Duration::from_secs(10 * 60));
    let okafor = w.user("Okafor").id;
    let (status, body) = admin
        .post("/api/invitations", json!({ "role": "patient", "display_name": "New Patient" }))
        .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("reauth_required")));
    let (status, body) = admin.post(&format!("/api/users/{okafor}/enrollment"), json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("reauth_required")));
    // A role that may never do this still hears "forbidden", not "re-authenticate".
    let mut maria = w.enroll("Maria", &mut SoftPasskey::new()).await;
    w.app.clock.advance(Duration::from_secs(10 * 60));
    assert_eq!(
        maria.post("/api/invitations", json!({ "role": "patient", "display_name": "X" })).await.1["error"],
        "forbidden"
    );

    let (_, started) = admin.post("/api/reauth/start", json!({})).await;
    let assertion = device.assert(&started["options"], &w.app.base_url);
    assert_eq!(
        admin
            .post(
                "/api/reauth/finish",
                json!({ "ceremony": started["ceremony"], "credential": assertion })
            )
            .await
            .0,
        204
    );
    assert_eq!(
        admin
            .post("/api/invitations", json!({ "role": "patient", "display_name": "New Patient" }))
            .await
            .0,
        201
    );
    assert_eq!(admin.post(&format!("/api/users/{okafor}/enrollment"), json!({})).await.0, 201);
    w.stop().await;
}

/// Issue 12: an admin re-issues a link for a provider and a patient who
/// already have passkeys. The re-issue is audited as a recovery and the
/// person sees the open link and can cancel it; if it is used anyway, their
/// passkeys are replaced, their sockets close saying why, a sign-in with an
/// old passkey says it was replaced, and the audit trail records it. The
/// admin never holds a second, silent way into their account.
#[tokio::test]
async fn a_reissued_link_cannot_silently_take_over_an_account() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let mut admin_device = SoftPasskey::new();
        let mut admin = w.enroll("Jordan", &mut admin_device).await;
        let mut okafor_device = SoftPasskey::new();
        let mut okafor = w.enroll("Okafor", &mut okafor_device).await;
        let mut maria_device = SoftPasskey::new();
        let mut maria = w.enroll("Maria", &mut maria_device).await;
        let thread = maria_thread(&w);
        let mut okafor_socket = socket(&w.app, &okafor, &[thread]).await;
        let okafor_id = w.user("Okafor").id;

        // The re-issue says it is a recovery; the provider sees the open link and cancels it.
        let (status, issued) =
            admin.post(&format!("/api/users/{okafor_id}/enrollment"), json!({})).await;
        assert_eq!(status, 201, "{issued}");
        assert_eq!(issued["replaces_passkeys"], 1, "{backend:?}");
        let (_, open) = okafor.get("/api/enrollments").await;
        assert_eq!(open.as_array().unwrap().len(), 1, "{backend:?}: {open}");
        assert_eq!(open[0]["issued_by"], "Jordan Lee");
        assert_eq!(okafor.call(Method::DELETE, "/api/enrollments", None).await.0, 204);
        let token = issued["link"].as_str().unwrap().split_once('#').unwrap().1;
        let (status, _) = Browser::new(&w.app.base_url)
            .post("/api/enroll/start", json!({ "token": token }))
            .await;
        assert_eq!(status, 410, "{backend:?}: a cancelled link is dead");

        // Issued again and used by the admin on their own device.
        let (_, issued) =
            admin.post(&format!("/api/users/{okafor_id}/enrollment"), json!({})).await;
        let mut impostor = Browser::new(&w.app.base_url);
        let token = issued["link"].as_str().unwrap().split_once('#').unwrap().1;
        let (_, started) = impostor.post("/api/enroll/start", json!({ "token": token })).await;
        assert_eq!(started["replaces_passkeys"], 1, "the person using the link is told: {started}");
        impostor.enroll(&mut admin_device, issued["link"].as_str().unwrap()).await;

        // The provider's socket closes now, saying why; their sign-in says what happened.
        let reason = closed_within(&mut okafor_socket, AT_ONCE).await;
        assert!(
            reason.contains("4401") && reason.contains("passkeys were replaced"),
            "{backend:?}: {reason}"
        );
        assert_eq!(okafor.get("/api/me").await.0, 401);
        let (status, body) = Browser::new(&w.app.base_url)
            .try_login(&mut okafor_device, None, &w.app.base_url)
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("passkey_replaced")),
            "{backend:?}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("If that was not you, contact your clinic"),
            "{body}"
        );
        let (_, passkeys) = impostor.get("/api/passkeys").await;
        assert_eq!(
            passkeys.as_array().unwrap().len(),
            1,
            "{backend:?}: only the new passkey; no second way in"
        );

        // For a patient the audit trail she reads shows the re-issue and the replacement.
        let maria_id = w.user("Maria").id;
        let (_, issued) = admin.post(&format!("/api/users/{maria_id}/enrollment"), json!({})).await;
        assert_eq!(issued["replaces_passkeys"], 1);
        let actions = audit_actions(&mut maria).await;
        assert!(actions.contains(&"enrollment_link_issued".to_owned()), "{backend:?}: {actions:?}");
        let (_, audit) = maria.get("/api/audit").await;
        let issued_row = audit
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "enrollment_link_issued")
            .unwrap();
        assert!(issued_row["detail"].as_str().unwrap().contains("recovery"), "{issued_row}");
        assert_eq!(issued_row["user_name"], "Jordan Lee");
        let mut new_device = SoftPasskey::new();
        let mut recovered = Browser::new(&w.app.base_url);
        recovered.enroll(&mut new_device, issued["link"].as_str().unwrap()).await;
        assert_eq!(maria.get("/api/me").await.0, 401, "{backend:?}: her old session ended");
        let actions = audit_actions(&mut recovered).await;
        assert!(actions.contains(&"passkeys_replaced".to_owned()), "{backend:?}: {actions:?}");
        w.stop().await;
    }
}

/// Issue 12: a provider whose clinic lost consent reconnects with a change
/// made offline. The server answers `change-rejected` naming consent (not a
/// bare `doc-unavailable`), audits it, and stores nothing; a provider who
/// never had access still gets `doc-unavailable`.
#[tokio::test]
async fn an_offline_change_to_a_record_whose_consent_was_withdrawn_is_refused_by_name() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let okafor = w.user("Okafor");
        let riverside = okafor.clinics[0];
        let thread = maria_thread(&w);
        let mut maria_browser = w.enroll("Maria", &mut SoftPasskey::new()).await;
        let okafor_browser = w.enroll("Okafor", &mut SoftPasskey::new()).await;
        // One of his devices stays connected through the withdrawal.
        let mut live = socket(&w.app, &okafor_browser, &[thread]).await;

        // Offline: a reply written; meanwhile Maria withdraws Riverside's access.
        let mut client = SyncClient::new("okafor-offline");
        // The copy his device holds, as it was when he last synced.
        let stored =
            w.app.store.load_document(thread).await.unwrap().unwrap().to_automerge().unwrap();
        client.insert(thread, stored);
        client.doc_mut(thread).unwrap().set_actor(ActorId::random());
        let entry = write_message(&mut client, thread, &okafor, "Your results are fine.");
        let (status, _) =
            maria_browser.call(Method::DELETE, &format!("/api/consents/{riverside}"), None).await;
        assert_eq!(status, 200);

        // Back online: the change is refused by name.
        let url = format!("{}/sync", w.app.base_url.replacen("http", "ws", 1));
        let headers = [
            ("cookie", format!("portal_session={}", okafor_browser.cookie.clone().unwrap())),
            ("origin", w.app.base_url.clone()),
        ];
        let mut back = Replica::connect(&url, &headers, client).await.unwrap();
        let rejected = next_rejection(&mut back).await;
        let WireMessage::ChangeRejected { document_id, rule, message, .. } = rejected else {
            unreachable!()
        };
        assert_eq!(
            (document_id.as_str(), rule.as_str()),
            (encode_doc_id(thread).as_str(), "consent"),
            "{backend:?}"
        );
        assert!(message.contains("withdrawn your clinic's access"), "{message}");
        assert!(!stored_has(&w.app, thread, entry).await, "{backend:?}");
        let actions = audit_actions(&mut maria_browser).await;
        assert!(actions.contains(&"change_refused".to_owned()), "{backend:?}: {actions:?}");
        back.close().await;

        // The connected device's next change carries the change itself: refused the same way.
        let live_entry = write_message(&mut live.client, thread, &okafor, "Sent while connected");
        live.flush_local().await.unwrap();
        let WireMessage::ChangeRejected { rule, .. } = next_rejection(&mut live).await else {
            unreachable!()
        };
        assert_eq!(rule, "consent", "{backend:?}");
        assert!(!stored_has(&w.app, thread, live_entry).await, "{backend:?}");
        live.close().await;

        // A provider of a clinic that never had access learns nothing.
        let mut brandt_device = SoftPasskey::new();
        let brandt = w.enroll("Brandt", &mut brandt_device).await;
        let mut client = SyncClient::new("brandt");
        let mut doc =
            w.app.store.load_document(thread).await.unwrap().unwrap().to_automerge().unwrap();
        doc.set_actor(ActorId::random());
        client.insert(thread, doc);
        let headers = [
            ("cookie", format!("portal_session={}", brandt.cookie.clone().unwrap())),
            ("origin", w.app.base_url.clone()),
        ];
        let mut stranger = Replica::connect(&url, &headers, client).await.unwrap();
        let entry = write_message(&mut stranger.client, thread, &w.user("Brandt"), "Hello");
        stranger.flush_local().await.unwrap();
        stranger
            .sync_until(TIMEOUT, |_, r| !r.unavailable.is_empty() || !r.rejected.is_empty())
            .await
            .unwrap();
        let received = stranger.take_received();
        assert_eq!(
            (received.unavailable.len(), received.rejected.len()),
            (1, 0),
            "{backend:?}: {received:?}"
        );
        assert!(!stored_has(&w.app, thread, entry).await);
        stranger.close().await;
        w.stop().await;
    }
}

/// Reads until a `change-rejected` arrives.
async fn next_rejection(replica: &mut Replica) -> WireMessage {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let (_, message) =
            replica.next_message(deadline).await.unwrap().expect("a change-rejected in time");
        if matches!(message, WireMessage::ChangeRejected { .. }) {
            return message;
        }
        let received = replica.client.receive(message).unwrap();
        replica.send(received.outgoing).await.unwrap();
    }
}

/// `POST /api/login/start` without a session is bounded per client and in
/// total: 429 with a JSON error and `Retry-After`, other clients unaffected
/// until the global bucket is empty.
#[tokio::test]
async fn anonymous_ceremonies_are_rate_limited_per_client_and_globally() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app =
        TestServer::start_with(&db, db.store().await, PathBuf::from("/nonexistent"), |state| {
            let limits = Limits {
                per_client: Bucket { burst: 3.0, per_second: 0.2 },
                global: Bucket { burst: 5.0, per_second: 0.2 },
                max_clients: 100,
            };
            state.limits = std::sync::Arc::new(RateLimiter::new(limits, true));
        })
        .await;
    let http = reqwest::Client::new();
    let start = |client: &'static str| {
        http.post(format!("{}/api/login/start", app.base_url))
            .header("origin", &app.base_url)
            .header("x-forwarded-for", format!("203.0.113.9, {client}"))
            .json(&json!({}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(start("198.51.100.1").await.unwrap().status(), 200);
    }
    let refused = start("198.51.100.1").await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("Try again in"), "{body}");
    // Another client is served; then the global bucket runs out for everyone.
    assert_eq!(start("198.51.100.2").await.unwrap().status(), 200);
    assert_eq!(start("198.51.100.3").await.unwrap().status(), 200);
    assert_eq!(start("198.51.100.4").await.unwrap().status(), 429, "global bound");
    // Enrollment is anonymous ceremony work too.
    let enroll = http
        .post(format!("{}/api/enroll/start", app.base_url))
        .header("origin", &app.base_url)
        .header("x-forwarded-for", "198.51.100.5")
        .json(&json!({ "token": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(enroll.status(), 429);
    app.stop().await;
    db.drop_database().await;
}

/// Issue 18, removed when access ends: when a patient takes a clinic's
/// access away, the clinic's connected devices are told at once
/// (`doc-unavailable` for each of her documents they sync, nothing about
/// anyone else's); once a device reports it deleted its copies, her access
/// log says so and by whom. Reports of documents the user still reads, or
/// never read, write nothing into anyone's log; an oversized report is
/// refused whole.
#[tokio::test]
async fn a_withdrawn_consent_is_told_to_the_clinics_devices_and_their_removal_is_logged() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let (maria, okafor) = (w.user("Maria"), w.user("Okafor"));
        let (patient, riverside) = (maria.patient.unwrap(), okafor.clinics[0]);
        let mut maria_browser = w.enroll("Maria", &mut SoftPasskey::new()).await;
        let mut okafor_browser = w.enroll("Okafor", &mut SoftPasskey::new()).await;
        let (_, listed) = okafor_browser.get("/api/documents").await;
        let kinds: Vec<DocKind> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|d| serde_json::from_value(d.clone()).unwrap())
            .collect();
        let hers: Vec<DocId> =
            kinds.iter().filter(|k| k.patient() == patient).map(DocKind::doc_id).collect();
        let others: Vec<DocId> =
            kinds.iter().filter(|k| k.patient() != patient).map(DocKind::doc_id).collect();
        assert!(!hers.is_empty() && !others.is_empty(), "{backend:?}: {kinds:?}");
        let mut syncing = hers.clone();
        syncing.extend(&others);
        let mut live = socket(&w.app, &okafor_browser, &syncing).await;

        let (status, _) =
            maria_browser.call(Method::DELETE, &format!("/api/consents/{riverside}"), None).await;
        assert_eq!(status, 200);
        let count = hers.len();
        live.sync_until(AT_ONCE, |_, r| r.unavailable.len() >= count)
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: not told at once: {e}"));
        let mut told = live.take_received().unavailable;
        told.sort();
        let mut expected = hers.clone();
        expected.sort();
        assert_eq!(told, expected, "{backend:?}: exactly her documents");
        live.close().await;

        // His device deleted its copies and says so; with them, a document
        // he still reads and one of a patient he never read.
        let stranger = DocKind::PatientRecord { patient: shared::PatientId::mint() }.doc_id();
        let mut report: Vec<String> = hers.iter().map(DocId::to_string).collect();
        report.push(others[0].to_string());
        report.push(stranger.to_string());
        let (status, body) =
            okafor_browser.post("/api/documents/removed", json!({ "docs": report })).await;
        assert_eq!(status, 204, "{backend:?}: {body}");
        let (_, audit) = maria_browser.get("/api/audit").await;
        let removed: Vec<&Value> =
            audit.as_array().unwrap().iter().filter(|e| e["action"] == "copy_removed").collect();
        assert_eq!(removed.len(), count, "{backend:?}: {audit}");
        for entry in &removed {
            assert_eq!(entry["user_name"], okafor.name, "{backend:?}");
            let doc: DocId = entry["doc_id"].as_str().unwrap().parse().unwrap();
            assert!(hers.contains(&doc), "{backend:?}");
        }
        let everyone =
            w.app.store.patient_audit(others_patient(&kinds, patient), 100).await.unwrap();
        assert!(
            everyone.iter().all(|e| e.action != shared::api::AuditAction::CopyRemoved),
            "{backend:?}: a document he still reads is not logged as removed"
        );

        // Bounded: more ids than a report may carry is refused whole.
        let too_many: Vec<String> =
            (0..=shared::api::RemovedCopies::MAX_DOCS).map(|_| DocId::mint().to_string()).collect();
        let (status, body) =
            okafor_browser.post("/api/documents/removed", json!({ "docs": too_many })).await;
        assert_eq!(status, 400, "{backend:?}: {body}");
        w.stop().await;
    }
}

fn others_patient(kinds: &[DocKind], not: shared::PatientId) -> shared::PatientId {
    kinds.iter().map(DocKind::patient).find(|p| *p != not).unwrap()
}

/// Issue 18: a caregiver removed while their device was offline is told,
/// when it comes back (even days later, after the ended sessions were
/// purged), that access was taken away (401 `access_removed`, so the app
/// deletes its copies), not merely that the session expired; a session
/// ended by signing out still reads as expired.
#[tokio::test]
async fn a_removed_caregivers_device_is_told_access_was_removed() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let mut maria = w.enroll("Maria", &mut SoftPasskey::new()).await;
        let (mut ana, user) = w.caregiver_of(&mut maria).await;
        assert_eq!(ana.get("/api/me").await.0, 200);

        assert_eq!(
            maria.call(Method::DELETE, &format!("/api/caregivers/{user}"), None).await.0,
            204
        );
        let idle = i64::try_from(server::auth::SESSION_IDLE.as_millis()).unwrap();
        let later = w.app.clock.now_ms() + 3 * idle;
        w.app.store.purge_ended(idle, later).await.unwrap();
        for path in ["/api/me", "/api/documents"] {
            let (status, body) = ana.get(path).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("access_removed")),
                "{backend:?} {path}: {body}"
            );
            assert!(body["message"].as_str().unwrap().contains("taken away"), "{body}");
        }

        maria.post("/api/logout", json!({})).await;
        let (status, body) = maria.get("/api/me").await;
        assert_eq!((status, body["error"].as_str()), (401, Some("session_expired")), "{backend:?}");
        w.stop().await;
    }
}
