//! Several server instances on one PostgreSQL database: what one accepts
//! reaches replicas connected to another, consent changes apply everywhere,
//! and a listener that lost its connection catches up on what it missed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge};
use server::demo::{self, DemoUser};
use server::storage::{Backend, Store};
use server::sync::DEAF_AFTER;
use shared::schema::{DocKind, Message, MessageThread};
use shared::status::Side;
use shared::sync::SyncClient;
use shared::{DocId, EntryId, record};
use testkit::Replica;
use testkit::{Relay, TestDatabase, TestServer};

const TIMEOUT: Duration = Duration::from_secs(30);

struct TwoInstances {
    db: TestDatabase,
    a: TestServer,
    b: TestServer,
    users: Vec<DemoUser>,
}

/// The relays between instance B and the database: one for its pool, one
/// for its listening connection, so either can go silent alone.
struct Relays {
    pool: Relay,
    listen: Relay,
}

impl TwoInstances {
    async fn new() -> Self {
        let db = TestDatabase::new(Backend::Postgres).await;
        let a = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let users = demo::seed(&a.store).await.unwrap();
        let b = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        for app in [&a, &b] {
            wait_listening(app, 1).await;
        }
        Self { db, a, b, users }
    }

    /// Like `new`, but B reaches the database only through `Relays`.
    async fn with_b_behind_relays() -> (Self, Relays) {
        let db = TestDatabase::new(Backend::Postgres).await;
        let a = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let users = demo::seed(&a.store).await.unwrap();
        let relays =
            Relays { pool: Relay::start(&db.url).await, listen: Relay::start(&db.url).await };
        let store = Store::connect(&relays.pool.url(&db.url))
            .await
            .unwrap()
            .listen_through(&relays.listen.url(&db.url))
            .unwrap();
        let b = TestServer::start_with_store(&db, store, PathBuf::from("/nonexistent")).await;
        for app in [&a, &b] {
            wait_listening(app, 1).await;
        }
        (Self { db, a, b, users }, relays)
    }

    fn user(&self, name: &str) -> DemoUser {
        self.users.iter().find(|u| u.name.contains(name)).unwrap().clone()
    }

    async fn stop(self) {
        self.a.stop().await;
        self.b.stop().await;
        self.db.drop_database().await;
    }
}

/// Waits until `app` listens to the other instances and has connected at least `connections` times.
async fn wait_listening(app: &TestServer, connections: u64) {
    let mut status = app.hub.cluster_status().expect("PostgreSQL instances listen to each other");
    tokio::time::timeout(TIMEOUT, status.wait_for(|s| s.listening && s.connections >= connections))
        .await
        .expect("listener connects in time")
        .unwrap();
}

/// A replica of `docs` on `app` for `user`, fully synced, writing under a fresh actor id.
async fn replica(app: &TestServer, user: &DemoUser, docs: &[DocId]) -> Replica {
    let mut client = SyncClient::new(format!("test-{}", uuid::Uuid::now_v7().simple()));
    for id in docs {
        client.insert(*id, Automerge::new());
    }
    let url = format!("{}/sync", app.base_url.replacen("http", "ws", 1));
    let mut replica =
        Replica::connect(&url, &[("x-portal-test-user", user.id.to_string())], client)
            .await
            .unwrap();
    replica.sync_all(TIMEOUT).await.unwrap();
    let actor = ActorId::random();
    for id in docs {
        replica.client.doc_mut(*id).unwrap().set_actor(actor.clone());
    }
    replica.take_received();
    replica
}

fn heads(doc: &Automerge) -> Vec<automerge::ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort();
    heads
}

async fn write_result(
    replica: &mut Replica,
    id: DocId,
    author: &DemoUser,
    value: f64,
) -> Vec<automerge::ChangeHash> {
    let doc = replica.client.doc_mut(id).unwrap();
    let mut tx = doc.transaction();
    record::add(
        &mut tx,
        EntryId::mint(),
        &testkit::fixtures::glucose_result(
            (author.clinics[0], demo::clinic_name(author.clinics[0])),
            author.id,
            author.name,
            value,
        ),
    )
    .unwrap();
    tx.commit();
    replica.flush_local().await.unwrap();
    replica.sync_all(TIMEOUT).await.unwrap();
    heads(replica.client.doc(id).unwrap())
}

async fn write_message(
    replica: &mut Replica,
    id: DocId,
    author: &DemoUser,
    side: Side,
    n: usize,
) -> EntryId {
    let entry = add_message(replica, id, author, side, n);
    replica.flush_local().await.unwrap();
    replica.sync_all(TIMEOUT).await.unwrap();
    entry
}

/// Adds a message to the local replica only.
fn add_message(
    replica: &mut Replica,
    id: DocId,
    author: &DemoUser,
    side: Side,
    n: usize,
) -> EntryId {
    let entry = EntryId::mint();
    let doc = replica.client.doc_mut(id).unwrap();
    let mut tx = doc.transaction();
    let message = Message::new(
        author.id,
        author.name,
        side,
        format!("2026-11-25T10:{:02}:{:02}Z", n / 60, n % 60),
        format!(
            "message {n}: {}",
            "a fairly long line of text to make the chunks add up ".repeat(4)
        ),
    );
    record::add(&mut tx, entry, &message).unwrap();
    tx.commit();
    entry
}

fn message_count(client: &SyncClient, id: DocId) -> usize {
    let thread: MessageThread = autosurgeon::hydrate(client.doc(id).unwrap()).unwrap();
    thread.messages.len()
}

/// Kills the listening connections of both instances and keeps `app`'s
/// from reconnecting until `hold_cluster_reconnect(false)`.
async fn cut_listener(c: &TwoInstances, app: &TestServer) {
    app.hub.hold_cluster_reconnect(true);
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&c.db.url).await.unwrap();
    let terminated: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(server::storage::LISTENER_APPLICATION_NAME)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated.len(), 2, "both instances' listeners were found");
    let mut status = app.hub.cluster_status().unwrap();
    tokio::time::timeout(TIMEOUT, status.wait_for(|s| !s.listening)).await.unwrap().unwrap();
}

/// `/healthz` of `app`: status code and body.
async fn health(app: &TestServer) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{}/healthz", app.base_url)).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Longest a revoked clinic may keep reading or writing a record through
/// an instance that was not told (or could not hear) of the revocation.
const ACCESS_BOUND: Duration = Duration::from_secs(10);

/// Maria takes `clinic`'s access away through `app`, as the consent
/// handler does: the row, then the announcement.
async fn revoke(app: &TestServer, maria: &DemoUser, clinic: shared::ClinicId) {
    app.store.revoke_consent(maria.patient.unwrap(), clinic, app.clock.now_ms()).await.unwrap();
    app.hub.access_changed();
}

#[derive(Debug, PartialEq)]
enum Attempt {
    /// The server acknowledged the write: it is stored.
    Stored,
    /// The server refused it (`doc-unavailable` or `change-rejected`) or
    /// closed the connection.
    Refused,
    /// No answer yet.
    Pending,
}

/// `provider` (on the clinic side) sends a message on `thread` through
/// `replica` and waits a moment for the server's verdict.
async fn attempt_message(
    replica: &mut Replica,
    thread: DocId,
    provider: &DemoUser,
    n: usize,
) -> (Attempt, EntryId) {
    replica.take_received();
    let entry = add_message(replica, thread, provider, Side::Clinic, n);
    if replica.flush_local().await.is_err() {
        return (Attempt::Refused, entry);
    }
    let refused = |r: &shared::sync::Received| {
        r.unavailable.contains(&thread) || r.rejected.iter().any(|(id, _)| *id == thread)
    };
    let outcome = replica
        .sync_until(Duration::from_millis(300), |cl, r| refused(r) || cl.is_synced(thread))
        .await;
    let closed =
        matches!(outcome, Err(ref error) if !matches!(error, testkit::ClientError::Timeout));
    let attempt = if closed || refused(&replica.received) {
        Attempt::Refused
    } else if replica.client.is_synced(thread) {
        Attempt::Stored
    } else {
        Attempt::Pending
    };
    (attempt, entry)
}

/// Once access to `thread` was taken away from `provider` (at
/// `revoked_at`), his writes through `replica` are refused within
/// `ACCESS_BOUND`, and the refused one is not stored. (Writes before the
/// refusal may be stored.) Returns how long after the revocation the first
/// refusal came. A `change-rejected` resets the replica's copy, so no
/// write follows a refusal.
async fn assert_writes_refused(
    app: &TestServer,
    replica: &mut Replica,
    thread: DocId,
    provider: &DemoUser,
    revoked_at: Instant,
) -> Duration {
    let mut n = 1000;
    let refused = loop {
        n += 1;
        let (attempt, entry) = attempt_message(replica, thread, provider, n).await;
        if attempt == Attempt::Refused {
            break entry;
        }
        assert!(
            revoked_at.elapsed() < ACCESS_BOUND,
            "a revoked clinic could still write after {:?}",
            revoked_at.elapsed()
        );
    };
    let refused_after = revoked_at.elapsed();
    let stored: MessageThread = autosurgeon::hydrate(
        &app.store.load_document(thread).await.unwrap().unwrap().to_automerge().unwrap(),
    )
    .unwrap();
    assert!(!stored.messages.contains_key(&refused.to_string()), "a refused write was stored");
    refused_after
}

/// Once `ACCESS_BOUND` has passed since `revoked_at`, Maria writes to
/// `thread` through A, then through B, so that B holds her first message
/// (and pushes it to her replica on B); the revoked provider's replicas
/// receive neither.
async fn assert_messages_stay_private(
    c: &TwoInstances,
    maria_on_a: &mut Replica,
    maria_on_b: &mut Replica,
    providers: &mut [&mut Replica],
    thread: DocId,
    revoked_at: Instant,
) {
    // Within the bound the clinic may still receive what it was sent: its
    // replicas take that in first, so that only what follows is judged.
    tokio::time::sleep_until((revoked_at + ACCESS_BOUND).into()).await;
    for provider in providers.iter_mut() {
        let _ = provider.sync_until(Duration::from_millis(200), |_, _| false).await;
        provider.take_received();
    }
    let maria = c.user("Maria");
    let private = write_message(maria_on_a, thread, &maria, Side::Patient, 2000).await;
    write_message(maria_on_b, thread, &maria, Side::Patient, 2001).await;
    let has_private = |cl: &SyncClient| {
        // A copy reset by `change-rejected` is empty until reloaded.
        let doc = cl.doc(thread).unwrap();
        !doc.get_heads().is_empty()
            && autosurgeon::hydrate::<_, MessageThread>(doc)
                .unwrap()
                .messages
                .contains_key(&private.to_string())
    };
    maria_on_b
        .sync_until(TIMEOUT, |cl, _| has_private(cl))
        .await
        .expect("B holds her message and pushes it to her");
    for provider in providers.iter_mut() {
        assert!(
            !received_change(provider, thread, Duration::from_secs(1)).await,
            "a revoked clinic received the patient's new message"
        );
        assert!(!has_private(&provider.client));
    }
}

/// Handles what the server sends for `period` and reports whether `id` changed.
async fn received_change(replica: &mut Replica, id: DocId, period: Duration) -> bool {
    let _ = replica.sync_until(period, |_, r| r.changed.contains(&id)).await;
    replica.take_received().changed.contains(&id)
}

#[tokio::test]
async fn a_change_accepted_on_one_instance_reaches_replicas_on_another() {
    let c = TwoInstances::new().await;
    let maria = c.user("Maria");
    let okafor = c.user("Okafor");
    let riverside = okafor.clinics[0];
    let clinical =
        DocKind::ClinicalRecord { patient: maria.patient.unwrap(), clinic: riverside }.doc_id();
    let thread =
        DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: riverside }.doc_id();
    let mut on_b = replica(&c.b, &maria, &[clinical, thread]).await;
    let mut on_a = replica(&c.a, &okafor, &[clinical, thread]).await;

    // A provider's result, accepted by A, is pushed to the patient on B.
    let target = write_result(&mut on_a, clinical, &okafor, 181.0).await;
    let started = Instant::now();
    on_b.sync_until(TIMEOUT, |cl, _| heads(cl.doc(clinical).unwrap()) == target).await.unwrap();
    eprintln!("A -> B in {:?}", started.elapsed());

    // B stops hearing from A, so its copy of the thread goes stale, and
    // both instances write the thread in turn until each has compacted it
    // several times: B stores its changes on top of chunks it never loaded,
    // and nothing either instance wrote may be lost from storage.
    cut_listener(&c, &c.b).await;
    let base = message_count(&on_a.client, thread);
    for n in 0..24 {
        write_message(&mut on_a, thread, &okafor, Side::Clinic, 2 * n).await;
        write_message(&mut on_b, thread, &maria, Side::Patient, 2 * n + 1).await;
        // (A hears of B's message at once; waiting for it keeps A's writer
        // from crossing a push, which this test is not about.)
        on_a.sync_until(TIMEOUT, |cl, _| message_count(cl, thread) == base + 2 * n + 2)
            .await
            .unwrap();
    }
    let expected = base + 48;
    // B never heard from A: it found A's messages behind its own commits and
    // sends them on (with its acknowledgement or right after it).
    on_b.sync_until(TIMEOUT, |cl, _| message_count(cl, thread) == expected).await.unwrap();
    assert_eq!(heads(on_a.client.doc(thread).unwrap()), heads(on_b.client.doc(thread).unwrap()));
    let stored = c.a.store.load_document(thread).await.unwrap().unwrap();
    assert!(stored.chunks.len() < 24, "the thread was compacted ({} chunks)", stored.chunks.len());
    let stored: MessageThread = autosurgeon::hydrate(&stored.to_automerge().unwrap()).unwrap();
    assert_eq!(stored.messages.len(), expected, "every message of both instances is stored");
    c.b.hub.hold_cluster_reconnect(false);
    wait_listening(&c.b, 2).await;
    // A replica that connects now, to either instance, gets all of it.
    for app in [&c.a, &c.b] {
        let fresh = replica(app, &okafor, &[thread]).await;
        assert_eq!(
            heads(fresh.client.doc(thread).unwrap()),
            heads(on_a.client.doc(thread).unwrap())
        );
        fresh.close().await;
    }
    on_a.close().await;
    on_b.close().await;
    c.stop().await;
}

#[tokio::test]
async fn consent_revoked_on_one_instance_stops_pushes_on_another() {
    let c = TwoInstances::new().await;
    let maria = c.user("Maria");
    let okafor = c.user("Okafor");
    let brandt = c.user("Brandt");
    let (riverside, northgate) = (okafor.clinics[0], brandt.clinics[0]);
    let northgate_record =
        DocKind::ClinicalRecord { patient: maria.patient.unwrap(), clinic: northgate }.doc_id();
    let mut okafor_on_b = replica(&c.b, &okafor, &[northgate_record]).await;
    let mut maria_on_b = replica(&c.b, &maria, &[northgate_record]).await;
    let mut brandt_on_a = replica(&c.a, &brandt, &[northgate_record]).await;

    // While Maria consents, Riverside on B follows Northgate's writes on A.
    write_result(&mut brandt_on_a, northgate_record, &brandt, 5.0).await;
    assert!(
        received_change(&mut okafor_on_b, northgate_record, TIMEOUT).await,
        "consenting clinic gets the change"
    );
    assert!(received_change(&mut maria_on_b, northgate_record, TIMEOUT).await);

    // Maria withdraws Riverside's access through instance A.
    c.a.store.revoke_consent(maria.patient.unwrap(), riverside, c.a.clock.now_ms()).await.unwrap();
    c.a.hub.access_changed();
    write_result(&mut brandt_on_a, northgate_record, &brandt, 6.0).await;
    // B has heard of the change (Maria's replica on B receives it) ...
    assert!(
        received_change(&mut maria_on_b, northgate_record, TIMEOUT).await,
        "B relays the change"
    );
    // ... and Riverside's open connection on B got none of it.
    assert!(
        !received_change(&mut okafor_on_b, northgate_record, Duration::from_millis(500)).await,
        "a revoked clinic received an update through another instance"
    );
    okafor_on_b.close().await;
    maria_on_b.close().await;
    brandt_on_a.close().await;
    c.stop().await;
}

#[tokio::test]
async fn changes_made_while_a_listener_was_disconnected_arrive_after_it_reconnects() {
    let c = TwoInstances::new().await;
    let maria = c.user("Maria");
    let okafor = c.user("Okafor");
    let clinical =
        DocKind::ClinicalRecord { patient: maria.patient.unwrap(), clinic: okafor.clinics[0] }
            .doc_id();
    let mut on_b = replica(&c.b, &maria, &[clinical]).await;
    let mut on_a = replica(&c.a, &okafor, &[clinical]).await;

    // B's listening connection dies and stays down for now.
    cut_listener(&c, &c.b).await;

    // A change accepted on A meanwhile: B never hears of it.
    let target = write_result(&mut on_a, clinical, &okafor, 99.0).await;
    assert!(
        !received_change(&mut on_b, clinical, Duration::from_millis(300)).await,
        "B must not know of the change while its listener is down"
    );

    // Once B listens again it re-reads what changed and pushes it.
    c.b.hub.hold_cluster_reconnect(false);
    wait_listening(&c.b, 2).await;
    on_b.sync_until(TIMEOUT, |cl, _| heads(cl.doc(clinical).unwrap()) == target).await.unwrap();

    // And live notifications work again afterwards.
    let target = write_result(&mut on_a, clinical, &okafor, 100.0).await;
    on_b.sync_until(TIMEOUT, |cl, _| heads(cl.doc(clinical).unwrap()) == target).await.unwrap();
    on_a.close().await;
    on_b.close().await;
    c.stop().await;
}

/// Writes a message under a chosen entry id and returns the rule the server
/// refused it with, if it did.
async fn message_under(
    replica: &mut Replica,
    id: DocId,
    entry: EntryId,
    author: &DemoUser,
    side: Side,
    body: &str,
) -> Option<String> {
    let doc = replica.client.doc_mut(id).unwrap();
    let mut tx = doc.transaction();
    let message = Message::new(author.id, author.name, side, "2026-11-25T10:00:00Z", body);
    record::add(&mut tx, entry, &message).unwrap();
    tx.commit();
    replica.flush_local().await.unwrap();
    let _ = replica
        .sync_until(Duration::from_secs(5), |c, r| !r.rejected.is_empty() || c.is_synced(id))
        .await;
    replica.take_received().rejected.into_iter().next().map(|(_, message)| message)
}

/// An instance whose copy lags the database (its listener deaf, or simply
/// not yet notified) judges a change against the record as stored: a
/// patient's message under the id of a clinic message accepted on the other
/// instance moments before is refused as a replacement, every time.
#[tokio::test]
async fn a_lagging_instance_judges_changes_against_the_stored_record() {
    let c = TwoInstances::new().await;
    let maria = c.user("Maria");
    let okafor = c.user("Okafor");
    let thread =
        DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: okafor.clinics[0] }
            .doc_id();
    let mut clinic_on_a = replica(&c.a, &okafor, &[thread]).await;
    let mut patient_on_b = replica(&c.b, &maria, &[thread]).await;
    let urgent = "Your potassium is dangerously high: go to the emergency department now";
    let read_back = |entry: EntryId| {
        let store = c.a.store.clone();
        async move {
            let doc = store.load_document(thread).await.unwrap().unwrap().to_automerge().unwrap();
            let thread: MessageThread = autosurgeon::hydrate(&doc).unwrap();
            thread.messages[&entry.to_string()].body.clone()
        }
    };
    // Without any fault, many times over: the race is gone.
    for round in 0..15 {
        let entry = EntryId::mint();
        assert_eq!(
            message_under(&mut clinic_on_a, thread, entry, &okafor, Side::Clinic, urgent).await,
            None
        );
        let refused =
            message_under(&mut patient_on_b, thread, entry, &maria, Side::Patient, "ok").await;
        assert!(
            refused.as_deref().is_some_and(|m| m.contains("append-only")),
            "round {round}: {refused:?}"
        );
        assert_eq!(read_back(entry).await, urgent, "round {round}");
        patient_on_b.sync_all(TIMEOUT).await.unwrap();
        clinic_on_a.sync_all(TIMEOUT).await.unwrap();
    }
    // With B deaf to A: B's copy cannot know of A's message until it stores.
    cut_listener(&c, &c.b).await;
    let entry = EntryId::mint();
    assert_eq!(
        message_under(&mut clinic_on_a, thread, entry, &okafor, Side::Clinic, urgent).await,
        None
    );
    let refused =
        message_under(&mut patient_on_b, thread, entry, &maria, Side::Patient, "ok").await;
    assert!(refused.as_deref().is_some_and(|m| m.contains("append-only")), "{refused:?}");
    assert_eq!(read_back(entry).await, urgent);
    c.b.hub.hold_cluster_reconnect(false);
    clinic_on_a.close().await;
    patient_on_b.close().await;
    c.stop().await;
}

#[tokio::test]
async fn the_test_relay_holds_bytes_while_silent_and_cut_closes_its_connections() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let relay = Relay::start(&db.url).await;
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(&relay.url(&db.url)).await.unwrap();
    let one = || sqlx::query_scalar::<_, i32>("SELECT 1");
    assert_eq!(one().fetch_one(&mut conn).await.unwrap(), 1);
    // Silent: the query goes out, nothing comes back, nothing fails.
    relay.silence();
    let mut query = Box::pin(one().fetch_one(&mut conn));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut query).await.is_err(),
        "an answer crossed a silent relay"
    );
    // Resumed: the held bytes go through and the connection carries on.
    relay.resume();
    assert_eq!(tokio::time::timeout(TIMEOUT, query).await.unwrap().unwrap(), 1);
    // Cut: the connection is closed, as a reset would.
    relay.cut();
    assert!(tokio::time::timeout(TIMEOUT, one().fetch_one(&mut conn)).await.unwrap().is_err());
    drop(conn);
    db.drop_database().await;
}

#[tokio::test]
async fn postgresql_probes_every_connection_with_tcp_keepalive() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let store = db.store().await;
    for (name, value) in [
        ("tcp_keepalives_idle", "30"),
        ("tcp_keepalives_interval", "10"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "60000"),
    ] {
        assert_eq!(store.setting(name).await.unwrap(), value, "{name}");
    }
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_silent_database_link_is_noticed_reported_and_recovered_from() {
    let (c, relays) = TwoInstances::with_b_behind_relays().await;
    let maria = c.user("Maria");
    let okafor = c.user("Okafor");
    let clinical =
        DocKind::ClinicalRecord { patient: maria.patient.unwrap(), clinic: okafor.clinics[0] }
            .doc_id();
    let mut on_b = replica(&c.b, &maria, &[clinical]).await;
    let mut on_a = replica(&c.a, &okafor, &[clinical]).await;
    let (status, body) = health(&c.b).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["listener"]["listening"], true, "{body}");

    // B's link to the database goes silent: no error, no closed socket,
    // nothing arrives. B notices by its heartbeat.
    let mut b_status = c.b.hub.cluster_status().unwrap();
    relays.listen.silence();
    relays.pool.silence();
    let silent_at = Instant::now();
    tokio::time::timeout(DEAF_AFTER + Duration::from_secs(2), b_status.wait_for(|s| !s.listening))
        .await
        .expect("B notices its silent listener")
        .unwrap();
    let detected = silent_at.elapsed();
    eprintln!("silent listener noticed after {detected:?} (bound {DEAF_AFTER:?})");
    // (Timers on a busy shared machine fire a little late.)
    assert!(detected <= DEAF_AFTER + Duration::from_secs(1), "noticed after {detected:?}");
    // The load balancer takes B out; A, which hears fine, stays in.
    let (status, body) = health(&c.b).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["listener"]["listening"], false, "{body}");
    let (status, body) = health(&c.a).await;
    assert_eq!(status, 200, "{body}");

    // A change accepted on A meanwhile cannot reach B.
    let target = write_result(&mut on_a, clinical, &okafor, 120.0).await;
    assert!(!received_change(&mut on_b, clinical, Duration::from_millis(500)).await);

    // The link comes back: B listens again, re-reads what changed and
    // pushes it, and reports healthy again.
    relays.listen.resume();
    relays.pool.resume();
    let resumed_at = Instant::now();
    wait_listening(&c.b, 2).await;
    on_b.sync_until(TIMEOUT, |cl, _| heads(cl.doc(clinical).unwrap()) == target).await.unwrap();
    eprintln!("listening and caught up {:?} after the link came back", resumed_at.elapsed());
    let (status, body) = health(&c.b).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["listener"]["reconnects"].as_u64().unwrap() >= 1, "{body}");

    // And live notifications work again.
    let target = write_result(&mut on_a, clinical, &okafor, 121.0).await;
    on_b.sync_until(TIMEOUT, |cl, _| heads(cl.doc(clinical).unwrap()) == target).await.unwrap();
    on_a.close().await;
    on_b.close().await;
    c.stop().await;
}

#[tokio::test]
async fn consent_revoked_through_another_instance_takes_effect_on_one_that_cannot_hear_it() {
    let (c, relays) = TwoInstances::with_b_behind_relays().await;
    let maria = c.user("Maria");
    let okafor = c.user("Okafor");
    let brandt = c.user("Brandt");
    let (riverside, northgate) = (okafor.clinics[0], brandt.clinics[0]);
    let patient = maria.patient.unwrap();
    let riverside_thread = DocKind::MessageThread { patient, clinic: riverside }.doc_id();
    let northgate_thread = DocKind::MessageThread { patient, clinic: northgate }.doc_id();
    let threads = [riverside_thread, northgate_thread];
    let mut okafor_on_b = replica(&c.b, &okafor, &[riverside_thread]).await;
    let mut brandt_on_b = replica(&c.b, &brandt, &[northgate_thread]).await;
    let mut maria_on_a = replica(&c.a, &maria, &threads).await;
    let mut maria_on_b = replica(&c.b, &maria, &threads).await;
    // While she consents, both clinics write to her through B.
    assert_eq!(
        attempt_message(&mut okafor_on_b, riverside_thread, &okafor, 1).await.0,
        Attempt::Stored
    );
    assert_eq!(
        attempt_message(&mut brandt_on_b, northgate_thread, &brandt, 1).await.0,
        Attempt::Stored
    );

    // B's listening connection goes silent (its pool still works), and at
    // once Maria takes Riverside's access away through A: B cannot hear of
    // it, and does not know yet that it cannot.
    relays.listen.silence();
    revoke(&c.a, &maria, riverside).await;
    let revoked_at = Instant::now();
    let took =
        assert_writes_refused(&c.a, &mut okafor_on_b, riverside_thread, &okafor, revoked_at).await;
    eprintln!("revocation unheard by B took effect there after {took:?}");
    assert_messages_stay_private(
        &c,
        &mut maria_on_a,
        &mut maria_on_b,
        &mut [&mut okafor_on_b],
        riverside_thread,
        revoked_at,
    )
    .await;

    // Later, while B knows it is deaf, she takes Northgate's access away.
    let mut b_status = c.b.hub.cluster_status().unwrap();
    tokio::time::timeout(TIMEOUT, b_status.wait_for(|s| !s.listening)).await.unwrap().unwrap();
    revoke(&c.a, &maria, northgate).await;
    let revoked_at = Instant::now();
    let took =
        assert_writes_refused(&c.a, &mut brandt_on_b, northgate_thread, &brandt, revoked_at).await;
    eprintln!("revocation while B knew it was deaf took effect there after {took:?}");
    assert_messages_stay_private(
        &c,
        &mut maria_on_a,
        &mut maria_on_b,
        &mut [&mut brandt_on_b],
        northgate_thread,
        revoked_at,
    )
    .await;

    relays.listen.resume();
    wait_listening(&c.b, 2).await;
    for replica in [okafor_on_b, brandt_on_b, maria_on_a, maria_on_b] {
        replica.close().await;
    }
    c.stop().await;
}

/// Authorization must not rest on notifications at all: the consent row
/// changes but no instance announces it (as when the instance that stored
/// it stops before its `NOTIFY` goes out), and both instances hear fine.
/// Needs each connection to re-check its access by itself and the storing
/// transaction to check the writer's access.
#[tokio::test]
async fn a_revocation_no_instance_announced_still_takes_effect_everywhere() {
    let c = TwoInstances::new().await;
    let maria = c.user("Maria");
    let okafor = c.user("Okafor");
    let thread =
        DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: okafor.clinics[0] }
            .doc_id();
    let mut okafor_on_a = replica(&c.a, &okafor, &[thread]).await;
    let mut okafor_on_b = replica(&c.b, &okafor, &[thread]).await;
    let mut maria_on_a = replica(&c.a, &maria, &[thread]).await;
    let mut maria_on_b = replica(&c.b, &maria, &[thread]).await;
    assert_eq!(attempt_message(&mut okafor_on_b, thread, &okafor, 1).await.0, Attempt::Stored);
    okafor_on_a.sync_all(TIMEOUT).await.unwrap();

    // The row only: no `Hub::access_changed`, so no notification.
    c.a.store
        .revoke_consent(maria.patient.unwrap(), okafor.clinics[0], c.a.clock.now_ms())
        .await
        .unwrap();
    let revoked_at = Instant::now();
    for (app, replica) in [("B", &mut okafor_on_b), ("A", &mut okafor_on_a)] {
        let took = assert_writes_refused(&c.a, replica, thread, &okafor, revoked_at).await;
        eprintln!("an unannounced revocation took effect on {app} after {took:?}");
    }
    // Her next messages reach neither of his connections.
    assert_messages_stay_private(
        &c,
        &mut maria_on_a,
        &mut maria_on_b,
        &mut [&mut okafor_on_b, &mut okafor_on_a],
        thread,
        revoked_at,
    )
    .await;
    for replica in [okafor_on_a, okafor_on_b, maria_on_a, maria_on_b] {
        replica.close().await;
    }
    c.stop().await;
}

/// Instance B keeps no document in memory once nobody uses it (a cache of
/// 0 bytes): every push and every re-read must work from storage alone.
#[tokio::test]
async fn documents_dropped_from_memory_are_still_pushed_from_every_instance_and_after_an_outage() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let a = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
    let users = demo::seed(&a.store).await.unwrap();
    let b = TestServer::start_with(&db, db.store().await, PathBuf::from("/nonexistent"), |state| {
        state.hub = server::sync::Hub::start(state.store.clone(), state.clock.clone(), 0);
    })
    .await;
    for app in [&a, &b] {
        wait_listening(app, 1).await;
    }
    let c = TwoInstances { db, a, b, users };
    let maria = c.user("Maria");
    let okafor = c.user("Okafor");
    let clinical =
        DocKind::ClinicalRecord { patient: maria.patient.unwrap(), clinic: okafor.clinics[0] }
            .doc_id();
    let thread =
        DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: okafor.clinics[0] }
            .doc_id();
    let mut maria_on_b = replica(&c.b, &maria, &[clinical, thread]).await;
    let mut okafor_on_b = replica(&c.b, &okafor, &[thread]).await;
    let mut okafor_on_a = replica(&c.a, &okafor, &[clinical]).await;
    let stats = c.b.hub.cache_stats();
    assert_eq!(stats.bytes, 0, "B holds nothing in memory: {stats:?}");
    assert!(stats.evicted >= 2, "B dropped the documents it synced: {stats:?}");

    // Between two replicas on B: the thread is loaded, written, dropped,
    // and loaded again to push the message to the other side.
    let before = message_count(&okafor_on_b.client, thread);
    write_message(&mut maria_on_b, thread, &maria, Side::Patient, 1).await;
    okafor_on_b.sync_until(TIMEOUT, |cl, _| message_count(cl, thread) == before + 1).await.unwrap();

    // From A: B does not hold the record, but its replica syncs it.
    let target = write_result(&mut okafor_on_a, clinical, &okafor, 140.0).await;
    maria_on_b
        .sync_until(TIMEOUT, |cl, _| heads(cl.doc(clinical).unwrap()) == target)
        .await
        .unwrap();

    // While B cannot hear A: re-read on reconnecting finds the dropped
    // document moved on. (First the replicas on B fall quiet: any message
    // about the record would make B load it afresh and answer with A's
    // change, which is right but not what this checks.)
    for replica in [&mut maria_on_b, &mut okafor_on_b] {
        let _ = replica.sync_until(Duration::from_millis(500), |_, _| false).await;
        replica.take_received();
    }
    cut_listener(&c, &c.b).await;
    let target = write_result(&mut okafor_on_a, clinical, &okafor, 141.0).await;
    assert!(!received_change(&mut maria_on_b, clinical, Duration::from_millis(300)).await);
    c.b.hub.hold_cluster_reconnect(false);
    wait_listening(&c.b, 2).await;
    maria_on_b
        .sync_until(TIMEOUT, |cl, _| heads(cl.doc(clinical).unwrap()) == target)
        .await
        .unwrap();
    assert_eq!(c.b.hub.cache_stats().bytes, 0);
    for replica in [maria_on_b, okafor_on_b, okafor_on_a] {
        replica.close().await;
    }
    c.stop().await;
}

/// Issue 17 part 2 across instances: James writes to Riverside through
/// instance A; Dr. Okafor's device, connected to instance B and holding
/// none of James's documents, is told to list again (`portal_work`);
/// Dr. Brandt's, of another clinic, is not.
#[tokio::test]
async fn new_work_stored_on_one_instance_reaches_staff_on_another() {
    let c = TwoInstances::new().await;
    let (james, okafor, brandt, maria) =
        (c.user("James"), c.user("Okafor"), c.user("Brandt"), c.user("Maria"));
    let riverside = okafor.clinics[0];
    let thread = DocKind::MessageThread { patient: james.patient.unwrap(), clinic: riverside };
    let maria_here =
        DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: riverside }.doc_id();
    let maria_there =
        DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: brandt.clinics[0] }
            .doc_id();
    let mut on_b = replica(&c.b, &okafor, &[maria_here]).await;
    let mut other_clinic = replica(&c.b, &brandt, &[maria_there]).await;
    let mut on_a = replica(&c.a, &james, &[thread.doc_id()]).await;
    write_message(&mut on_a, thread.doc_id(), &james, Side::Patient, 1).await;

    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !on_b.told_to_relist {
        assert!(on_b.step(deadline).await.unwrap().is_some(), "Okafor on B was not told");
    }
    let quiet = tokio::time::Instant::now() + Duration::from_millis(500);
    while other_clinic.step(quiet).await.unwrap().is_some() {}
    assert!(!other_clinic.told_to_relist, "Brandt was told");
    for r in [on_a, on_b, other_clinic] {
        r.close().await;
    }
    c.stop().await;
}
