//! Several server instances on one PostgreSQL database: what one accepts
//! reaches replicas connected to another, consent changes apply everywhere,
//! and a listener that lost its connection catches up on what it missed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge};
use server::client::Replica;
use server::demo::{self, DemoUser};
use server::storage::Backend;
use server::testing::{TestDatabase, TestServer};
use shared::schema::{DocKind, Message, MessageThread};
use shared::status::Side;
use shared::sync::SyncClient;
use shared::{DocId, EntryId, record};

const TIMEOUT: Duration = Duration::from_secs(30);

struct TwoInstances {
    db: TestDatabase,
    a: TestServer,
    b: TestServer,
    users: Vec<DemoUser>,
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
    let mut replica = Replica::connect(&url, &[("x-portal-test-user", user.id.to_string())], client).await.unwrap();
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

async fn write_result(replica: &mut Replica, id: DocId, author: &DemoUser, value: f64) -> Vec<automerge::ChangeHash> {
    let doc = replica.client.doc_mut(id).unwrap();
    let mut tx = doc.transaction();
    record::add(&mut tx, EntryId::mint(), &demo::glucose_result((author.clinics[0], demo::clinic_name(author.clinics[0])), author.id, author.name, value)).unwrap();
    tx.commit();
    replica.flush_local().await.unwrap();
    replica.sync_all(TIMEOUT).await.unwrap();
    heads(replica.client.doc(id).unwrap())
}

async fn write_message(replica: &mut Replica, id: DocId, author: &DemoUser, side: Side, n: usize) {
    let doc = replica.client.doc_mut(id).unwrap();
    let mut tx = doc.transaction();
    let message = Message {
        author: author.id,
        author_name: author.name.into(),
        side,
        sent_at: format!("2026-11-25T10:{:02}:{:02}Z", n / 60, n % 60),
        body: format!("message {n}: {}", "a fairly long line of text to make the chunks add up ".repeat(4)),
        read_at: None,
        read_by: None,
    };
    record::add(&mut tx, EntryId::mint(), &message).unwrap();
    tx.commit();
    replica.flush_local().await.unwrap();
    replica.sync_all(TIMEOUT).await.unwrap();
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
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated.len(), 2, "both instances' listeners were found");
    let mut status = app.hub.cluster_status().unwrap();
    tokio::time::timeout(TIMEOUT, status.wait_for(|s| !s.listening)).await.unwrap().unwrap();
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
    let clinical = DocKind::ClinicalRecord { patient: maria.patient.unwrap(), clinic: riverside }.doc_id();
    let thread = DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: riverside }.doc_id();
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
        on_a.sync_until(TIMEOUT, |cl, _| message_count(cl, thread) == base + 2 * n + 2).await.unwrap();
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
        assert_eq!(heads(fresh.client.doc(thread).unwrap()), heads(on_a.client.doc(thread).unwrap()));
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
    let northgate_record = DocKind::ClinicalRecord { patient: maria.patient.unwrap(), clinic: northgate }.doc_id();
    let mut okafor_on_b = replica(&c.b, &okafor, &[northgate_record]).await;
    let mut maria_on_b = replica(&c.b, &maria, &[northgate_record]).await;
    let mut brandt_on_a = replica(&c.a, &brandt, &[northgate_record]).await;

    // While Maria consents, Riverside on B follows Northgate's writes on A.
    write_result(&mut brandt_on_a, northgate_record, &brandt, 5.0).await;
    assert!(received_change(&mut okafor_on_b, northgate_record, TIMEOUT).await, "consenting clinic gets the change");
    assert!(received_change(&mut maria_on_b, northgate_record, TIMEOUT).await);

    // Maria withdraws Riverside's access through instance A.
    c.a.store.revoke_consent(maria.patient.unwrap(), riverside).await.unwrap();
    c.a.hub.access_changed();
    write_result(&mut brandt_on_a, northgate_record, &brandt, 6.0).await;
    // B has heard of the change (Maria's replica on B receives it) ...
    assert!(received_change(&mut maria_on_b, northgate_record, TIMEOUT).await, "B relays the change");
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
    let clinical = DocKind::ClinicalRecord { patient: maria.patient.unwrap(), clinic: okafor.clinics[0] }.doc_id();
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
async fn message_under(replica: &mut Replica, id: DocId, entry: EntryId, author: &DemoUser, side: Side, body: &str) -> Option<String> {
    let doc = replica.client.doc_mut(id).unwrap();
    let mut tx = doc.transaction();
    let message = Message {
        author: author.id,
        author_name: author.name.into(),
        side,
        sent_at: "2026-11-25T10:00:00Z".into(),
        body: body.into(),
        read_at: None,
        read_by: None,
    };
    record::add(&mut tx, entry, &message).unwrap();
    tx.commit();
    replica.flush_local().await.unwrap();
    let _ = replica.sync_until(Duration::from_secs(5), |c, r| !r.rejected.is_empty() || c.is_synced(id)).await;
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
    let thread = DocKind::MessageThread { patient: maria.patient.unwrap(), clinic: okafor.clinics[0] }.doc_id();
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
        assert_eq!(message_under(&mut clinic_on_a, thread, entry, &okafor, Side::Clinic, urgent).await, None);
        let refused = message_under(&mut patient_on_b, thread, entry, &maria, Side::Patient, "ok").await;
        assert!(refused.as_deref().is_some_and(|m| m.contains("append-only")), "round {round}: {refused:?}");
        assert_eq!(read_back(entry).await, urgent, "round {round}");
        patient_on_b.sync_all(TIMEOUT).await.unwrap();
        clinic_on_a.sync_all(TIMEOUT).await.unwrap();
    }
    // With B deaf to A: B's copy cannot know of A's message until it stores.
    cut_listener(&c, &c.b).await;
    let entry = EntryId::mint();
    assert_eq!(message_under(&mut clinic_on_a, thread, entry, &okafor, Side::Clinic, urgent).await, None);
    let refused = message_under(&mut patient_on_b, thread, entry, &maria, Side::Patient, "ok").await;
    assert!(refused.as_deref().is_some_and(|m| m.contains("append-only")), "{refused:?}");
    assert_eq!(read_back(entry).await, urgent);
    c.b.hub.hold_cluster_reconnect(false);
    clinic_on_a.close().await;
    patient_on_b.close().await;
    c.stop().await;
}
