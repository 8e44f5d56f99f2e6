//! Resource attacks against the real `portal serve` binary.
//!
//! Each test starts the server on a copy of the demo database, signs people
//! in for real (enrollment link, software passkey, session cookie), opens
//! real `/sync` WebSockets and sends crafted frames, while another client
//! asks `/healthz`. Under every attack the attacker's connection is refused
//! (an `error` message and a close with a reason, or `change-rejected`),
//! the server's peak resident size (`VmHWM`) stays under 200 MB above its
//! idle size, `/healthz` answers in under 50 ms, the process keeps running,
//! nothing of the attack is stored or audited, and other people's sync
//! still works. Attacks run one at a time (they measure one process's
//! memory and latency on a shared machine). On a loaded machine the
//! operating system may delay a `/healthz` probe now and then: one probe,
//! or one in twenty-five, may take up to 500 ms (`portal::under_attack`).
//!
//! `cargo test -p server --test attacks -- --nocapture` prints the numbers.

#[allow(dead_code)]
#[path = "../integration/authenticator.rs"]
mod authenticator;
#[allow(dead_code)]
#[path = "../integration/client.rs"]
mod client;
mod craft;
mod fhir;
mod portal;
mod smart;

use std::time::{Duration, Instant};

use automerge::sync::MessageVersion;
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT, ReadDoc};
use server::demo;
use server::storage::{Backend, Store};
use shared::schema::{DocKind, Message};
use shared::status::Side;
use shared::sync::WireMessage;
use shared::{DocId, EntryId, UserId, record};
use testkit::TestDatabase;
use testkit::{ClientError, Replica};

use craft::ChangeParts;
use portal::{Portal, Raw, Session, TIMEOUT, under_attack};

/// One attack at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Text that marks attack content: it must never appear in the server's logs.
const MARKER: &str = "ATTACK-CONTENT-must-not-be-logged";

/// A server with Maria (a patient) and Dr. Okafor (her Riverside provider)
/// signed in, and Okafor's replica of Maria's Riverside record open.
struct World {
    portal: Portal,
    maria: Session,
    okafor: Session,
    clinical: DocId,
    thread: DocId,
    patient_record: DocId,
    /// Okafor's replica of the clinical record, connected throughout.
    provider: Replica,
    store: Store,
}

/// What storage holds of Maria's documents, and how many audit rows about
/// her record say something was written or changed (reads aside).
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    heads: Vec<Vec<automerge::ChangeHash>>,
    audited: usize,
}

impl World {
    async fn new() -> Self {
        let portal = Portal::serve_demo_copy();
        Self::on(portal).await
    }

    async fn on(portal: Portal) -> Self {
        let maria = portal.sign_in("Maria").await;
        let okafor = portal.sign_in("Okafor").await;
        let patient = maria.patient();
        let riverside = okafor.user.clinics[0];
        let clinical = DocKind::ClinicalRecord { patient, clinic: riverside }.doc_id();
        let thread = DocKind::MessageThread { patient, clinic: riverside }.doc_id();
        let patient_record = DocKind::PatientRecord { patient }.doc_id();
        let provider = portal.replica(&okafor, &[clinical]).await;
        let store = portal.store().await;
        Self { portal, maria, okafor, clinical, thread, patient_record, provider, store }
    }

    async fn stored(&self) -> Stored {
        let mut heads = Vec::new();
        for id in [self.clinical, self.thread, self.patient_record] {
            let mut h = self
                .store
                .load_document(id)
                .await
                .unwrap()
                .unwrap()
                .to_automerge()
                .unwrap()
                .get_heads();
            h.sort();
            heads.push(h);
        }
        let audited = self
            .store
            .patient_audit(self.maria.patient(), 100_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action != shared::api::AuditAction::DocumentRead)
            .count();
        Stored { heads, audited }
    }

    /// Okafor records a result and the server stores and acknowledges it.
    async fn still_serving(&mut self, attack: &str) {
        let okafor = self.okafor.user.clone();
        let entry = EntryId::mint();
        let doc = self.provider.client.doc_mut(self.clinical).unwrap();
        let mut tx = doc.transaction();
        record::add(
            &mut tx,
            entry,
            &testkit::fixtures::glucose_result(
                (okafor.clinics[0], demo::clinic_name(okafor.clinics[0])),
                okafor.id,
                okafor.name,
                101.0,
            ),
        )
        .unwrap();
        tx.commit();
        self.provider.flush_local().await.unwrap();
        self.provider
            .sync_all(TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{attack}: Okafor's sync after the attack: {e}"));
        let mut stored = self
            .store
            .load_document(self.clinical)
            .await
            .unwrap()
            .unwrap()
            .to_automerge()
            .unwrap()
            .get_heads();
        stored.sort();
        let mut mine = self.provider.client.doc(self.clinical).unwrap().get_heads();
        mine.sort();
        assert_eq!(stored, mine, "{attack}: Okafor's change is stored");
        assert!(self.portal.alive(), "{attack}");
    }

    /// After an attack: nothing stored or audited, others still served,
    /// nothing of the attack in the logs.
    async fn unharmed(&mut self, before: &Stored, attack: &str) {
        assert_eq!(&self.stored().await, before, "{attack}: nothing stored or audited");
        self.still_serving(attack).await;
        self.assert_logs_clean();
    }

    fn assert_logs_clean(&self) {
        let logs = self.portal.logs();
        assert!(!logs.is_empty());
        assert!(!logs.contains(MARKER), "attack content reached the server's logs");
        assert!(!logs.contains("panicked"), "the server panicked: {logs}");
    }

    /// A bare connection of `session`.
    async fn raw(&self, session: &Session) -> Raw {
        self.portal.raw(session).await
    }

    /// Maria's replica of `doc`, synced.
    async fn maria_replica(&self, doc: DocId) -> Replica {
        self.portal.replica(&self.maria, &[doc]).await
    }
}

/// A message from Maria whose body is `body`.
fn maria_message(maria: UserId, body: &str) -> Message {
    Message::new(maria, "Maria Santos", Side::Patient, "2026-11-30T08:00:00Z", body)
}

/// Maria writes a message in `doc` (her replica's copy) and returns the change.
fn message_change(doc: &mut Automerge, maria: UserId, body: &str) -> automerge::Change {
    let mut tx = doc.transaction();
    record::add(&mut tx, EntryId::mint(), &maria_message(maria, body)).unwrap();
    tx.commit();
    doc.get_last_local_change().unwrap().clone()
}

/// Sends `frame` on `count` connections of `session` at once and returns
/// each connection's answer.
async fn on_connections(
    world: &World,
    session: &Session,
    count: usize,
    frame: impl Fn(&Raw) -> Vec<u8>,
) -> Vec<portal::Answer> {
    let mut raws = Vec::new();
    for _ in 0..count {
        raws.push(world.raw(session).await);
    }
    let tasks: Vec<_> = raws
        .into_iter()
        .map(|mut raw| {
            let frame = frame(&raw);
            tokio::spawn(async move {
                let _ = raw.send(frame).await;
                raw.answer(TIMEOUT).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// (a) A `have` Bloom filter claiming 2^32 - 1 probes: a 106-byte frame
/// Automerge would answer by allocating 16 GiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bloom_filter_claiming_billions_of_probes_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let data = craft::sync_message(&[craft::bloom(1, 10, u64::from(u32::MAX), &[0, 0])], &[]);
    let (answers, _) = under_attack(&world.portal, "(a) 4 billion Bloom probes", async {
        on_connections(&world, &world.maria, 4, |raw| {
            let frame = raw.sync_frame(world.clinical, data.clone());
            println!("(a) frame of {} bytes", frame.len());
            frame
        })
        .await
    })
    .await;
    for answer in &answers {
        answer.assert_refused(1007, "(a)");
        assert!(
            answer.error().unwrap().contains("bloom filter parameters out of range"),
            "{answer:?}"
        );
    }
    world.unharmed(&before, "(a)").await;
}

/// (b) A Bloom filter of zero bits: Automerge divides by the bit count, and
/// the panic used to end the connection task without a close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bloom_filter_of_zero_bits_is_refused_with_a_close_frame() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let variants = [
        ("zero bits per entry", craft::bloom(5, 0, 7, &[])),
        ("zero entries with bits", craft::bloom(0, 10, 7, &[0xff])),
        ("zero probes", craft::bloom(1, 10, 0, &[0, 0])),
    ];
    let (answers, _) = under_attack(&world.portal, "(b) zero-bit Bloom filter", async {
        let mut answers = Vec::new();
        for (name, bloom) in &variants {
            let data = craft::sync_message(std::slice::from_ref(bloom), &[]);
            let mut answer = on_connections(&world, &world.maria, 1, |raw| {
                raw.sync_frame(world.clinical, data.clone())
            })
            .await;
            answers.push((*name, answer.remove(0)));
        }
        answers
    })
    .await;
    for (name, answer) in &answers {
        answer.assert_refused(1007, name);
        assert!(answer.error().unwrap().contains("bloom filter"), "{name}: {answer:?}");
    }
    world.unharmed(&before, "(b)").await;
}

/// (c) 4 KiB frames with many `have` entries claiming millions of probes
/// each, from several connections at once (they used to stall the runtime
/// for seconds with the document locked), and frames at the limits that
/// are accepted: `/healthz` stays fast and Okafor opening the same record
/// is not delayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_storm_does_not_stall_the_server_or_the_record() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let brandt = world.portal.sign_in("Brandt").await;
    let before = world.stored().await;
    // Okafor opening the record undisturbed, for comparison.
    let started = Instant::now();
    world.portal.replica(&world.okafor, &[world.clinical]).await.close().await;
    let undisturbed = started.elapsed();

    // Many haves, each 2 million probes over a one-byte filter.
    let many_haves: Vec<Vec<u8>> =
        (0..505).map(|_| craft::bloom(1, 8, 2_000_000, &[0x5a])).collect();
    let many = craft::sync_message(&many_haves, &[]);
    // Four haves (the most allowed), each a 1000-byte filter with millions of probes.
    let four_haves: Vec<Vec<u8>> =
        (0..4).map(|_| craft::bloom(1000, 8, 3_000_000, &[0u8; 1000])).collect();
    let four = craft::sync_message(&four_haves, &[]);
    // At the limits: four 1000-byte filters of 16 probes, all bits clear
    // (the sender claims to lack every change), accepted and answered.
    let bounded_haves: Vec<Vec<u8>> =
        (0..4).map(|_| craft::bloom(250, 32, 16, &[0u8; 1000])).collect();
    let bounded = craft::sync_message(&bounded_haves, &[]);
    for (name, data) in [("many haves", &many), ("four haves", &four), ("at the limits", &bounded)]
    {
        assert!((3900..=4200).contains(&data.len()), "{name}: {} bytes", data.len());
    }

    let clinical = world.clinical;
    let url = world.portal.ws_url();
    let ((opened, refused, answered), _) = under_attack(&world.portal, "(c) probe storm", async {
        let until = Instant::now() + Duration::from_millis(1500);
        let mut storm = Vec::new();
        for i in 0..6 {
            let (url, brandt) = (url.clone(), brandt.clone());
            let (many, four, bounded) = (many.clone(), four.clone(), bounded.clone());
            storm.push(tokio::spawn(async move {
                let (mut refused, mut answered) = (Vec::new(), 0);
                while Instant::now() < until {
                    let mut raw = Raw::connect(&url, &brandt).await;
                    if i % 3 == 2 {
                        // At the limits: many frames on one connection, each answered.
                        for _ in 0..20 {
                            raw.send(raw.sync_frame(clinical, bounded.clone())).await.unwrap();
                        }
                        let answer = raw.answer(Duration::from_millis(300)).await;
                        assert!(
                            answer.close.is_none() && answer.dropped.is_none(),
                            "frames at the limits are accepted: {answer:?}"
                        );
                        answered += answer.messages.len();
                    } else {
                        let data = if i % 3 == 0 { many.clone() } else { four.clone() };
                        for _ in 0..4 {
                            if raw.send(raw.sync_frame(clinical, data.clone())).await.is_err() {
                                break;
                            }
                        }
                        refused.push(raw.answer(TIMEOUT).await);
                    }
                }
                (refused, answered)
            }));
        }
        // Meanwhile Okafor opens the record on a new connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let replica = world.portal.replica(&world.okafor, &[clinical]).await;
        let opened = started.elapsed();
        replica.close().await;
        let (mut refused, mut answered) = (Vec::new(), 0);
        for task in storm {
            let (r, a) = task.await.unwrap();
            refused.extend(r);
            answered += a;
        }
        (opened, refused, answered)
    })
    .await;
    println!(
        "(c) Okafor opened the record in {:.0} ms during the storm ({:.0} ms undisturbed); {} storm connections refused, {answered} replies to frames at the limits",
        opened.as_secs_f64() * 1e3,
        undisturbed.as_secs_f64() * 1e3,
        refused.len()
    );
    assert!(
        opened < Duration::from_secs(1),
        "(c): opening the record took {opened:?} during the storm"
    );
    assert!(refused.len() >= 4, "(c): the storm ran");
    for answer in &refused {
        answer.assert_refused(1007, "(c)");
        let error = answer.error().unwrap();
        assert!(
            error.contains("more than 4 have")
                || error.contains("bloom filter parameters out of range"),
            "{error}"
        );
    }
    assert!(answered > 0, "(c): frames at the limits were answered");
    world.unharmed(&before, "(c)").await;
}

/// (d) Compressed change chunks (type 2) that inflate about 160 to one:
/// ~0.95 MiB frames (150 MiB inflated) on six connections at once, and
/// ~1.6 MiB ones (256 MiB inflated, over the frame limit) on two. Nothing
/// inflates: the small ones are refused by chunk type, the large ones by
/// size before they are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_chunks_are_refused_without_inflating() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let mut replica = world.maria_replica(world.thread).await;
    let doc = replica.client.doc_mut(world.thread).unwrap();
    let heads = doc.get_heads();
    let change = ChangeParts::parse(message_change(doc, world.maria.user.id, MARKER).raw_bytes());
    replica.close().await;
    let segment = craft::compressible_text(256 * 1024, 400);
    let small = craft::carrying(
        heads.clone(),
        vec![craft::compressed_change(&change, MARKER, &segment, 600)],
        MessageVersion::V1,
    );
    let large = craft::carrying(
        heads,
        vec![craft::compressed_change(&change, MARKER, &segment, 1024)],
        MessageVersion::V1,
    );
    println!(
        "(d) {:.2} MiB inflating to 150 MiB ({:.0}:1), {:.2} MiB inflating to 256 MiB ({:.0}:1)",
        small.len() as f64 / 1048576.0,
        (600.0 * 256.0 * 1024.0) / small.len() as f64,
        large.len() as f64 / 1048576.0,
        (1024.0 * 256.0 * 1024.0) / large.len() as f64,
    );
    assert!(small.len() < 1024 * 1024 - 1024 && large.len() > 1024 * 1024 + 512 * 1024);
    let thread = world.thread;
    let (answers, _) = under_attack(&world.portal, "(d) compressed chunks", async {
        let mut raws = Vec::new();
        for _ in 0..8 {
            raws.push(world.raw(&world.maria).await);
        }
        let tasks: Vec<_> = raws
            .into_iter()
            .enumerate()
            .map(|(i, mut raw)| {
                let big = i >= 6;
                let frame = raw.sync_frame(thread, if big { large.clone() } else { small.clone() });
                tokio::spawn(async move {
                    let sent = raw.send(frame).await;
                    (big, sent.err().map(|e| e.to_string()), raw.answer(TIMEOUT).await)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    })
    .await;
    for (big, send_error, answer) in &answers {
        if *big {
            println!(
                "(d) over the frame limit: send {send_error:?}, close {:?}, error {:?}",
                answer.close,
                answer.error()
            );
            // Over the 1 MiB client frame limit: closed (1009) before the
            // frame is read; the close may race the upload.
            let closed = answer.close.as_ref().is_some_and(|(code, _)| *code == 1009)
                || answer.dropped.is_some()
                || send_error.is_some();
            assert!(closed, "(d) over the frame limit: {send_error:?} {answer:?}");
            if let Some((code, _)) = &answer.close {
                assert_eq!(*code, 1009, "{answer:?}");
            }
        } else {
            answer.assert_refused(1007, "(d)");
            assert!(
                answer.error().unwrap().contains("compressed chunks are not accepted"),
                "{answer:?}"
            );
        }
    }
    world.unharmed(&before, "(d)").await;
}

/// (e) A change nesting maps 4,000 deep under a new refill request, in a
/// few KiB: refused by the write policy before it is applied (no patches,
/// no paths 4,000 deep).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_nesting_maps_thousands_deep_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let id = world.patient_record;
    let mut replica = world.maria_replica(id).await;
    {
        let doc = replica.client.doc_mut(id).unwrap();
        let mut tx = doc.transaction();
        let requests = tx.get(ROOT, "refill_requests").unwrap().unwrap().1;
        let mut obj = tx.put_object(&requests, EntryId::mint().to_string(), ObjType::Map).unwrap();
        for _ in 0..4000 {
            obj = tx.put_object(&obj, "note", ObjType::Map).unwrap();
        }
        tx.commit();
    }
    let up = replica.bytes_up;
    let (outcome, _) = under_attack(&world.portal, "(e) maps 4,000 deep", async {
        replica.flush_local().await.unwrap();
        let sent = replica.bytes_up - up;
        let outcome = replica.sync_until(TIMEOUT, |_, r| !r.rejected.is_empty()).await;
        (sent, outcome)
    })
    .await;
    let (sent, outcome) = outcome;
    println!("(e) a change of 4,001 nested maps in a {sent}-byte frame");
    outcome.unwrap();
    let rejected = replica.take_received().rejected;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].0, id);
    assert!(rejected[0].1.contains("rule schema"), "{rejected:?}");
    // The client reset the document and is level with the server again.
    replica.sync_all(TIMEOUT).await.unwrap();
    replica.close().await;
    world.unharmed(&before, "(e)").await;
}

/// (f) A whole document (chunk type 0) carrying 100,000 valid messages,
/// under the frame limit: refused outright, not loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_chunk_of_a_hundred_thousand_messages_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let replica = world.maria_replica(world.thread).await;
    let mut doc = replica.client.doc(world.thread).unwrap().clone();
    replica.close().await;
    let started = Instant::now();
    let maria = world.maria.user.id;
    // 1,000 changes of 100 messages each (the most one change may add),
    // with ids minted in sequence so the document compresses well.
    let base = EntryId::mint().as_uuid().as_u128() & !0xffff_ffff;
    let messages = doc.get(ROOT, "messages").unwrap().unwrap().1;
    let message = |body: &str| {
        let text = |v: &str| automerge::hydrate::Value::from(v);
        let null = || automerge::hydrate::Value::from(automerge::ScalarValue::Null);
        let author = maria.to_string();
        let fields: std::collections::HashMap<&str, automerge::hydrate::Value> = [
            ("author", text(&author)),
            ("author_name", text("Maria Santos")),
            ("side", text("patient")),
            ("sent_at", text("2026-11-30T08:00:00Z")),
            ("body", text(body)),
            ("read_at", null()),
            ("read_by", null()),
        ]
        .into_iter()
        .collect();
        automerge::hydrate::Value::Map(fields.into())
    };
    let entry = message("Thank you!");
    for c in 0..1000u128 {
        let mut tx = doc.transaction();
        for m in 0..100u128 {
            let id = uuid::Uuid::from_u128(base + ((c * 100 + m) << 4));
            tx.batch_create_object(&messages, id.to_string(), &entry, false).unwrap();
        }
        tx.commit();
    }
    // Each is a message the policy accepts.
    let some = record::get::<Message, _>(&doc, EntryId::from_uuid(uuid::Uuid::from_u128(base)))
        .expect("a message");
    assert_eq!(some.author, maria);
    let saved = doc.save();
    let message_count = doc.length(&messages);
    let data = craft::carrying(doc.get_heads(), vec![saved], MessageVersion::V2);
    println!(
        "(f) a document of {message_count} messages saved to {:.2} MiB in {:.1} s",
        data.len() as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    assert!(message_count >= 100_000);
    assert!(
        data.len() < 1024 * 1024 - 1024,
        "the frame fits the client frame limit: {}",
        data.len()
    );
    let thread = world.thread;
    let (answers, _) = under_attack(&world.portal, "(f) document chunk", async {
        on_connections(&world, &world.maria, 1, |raw| raw.sync_frame(thread, data.clone())).await
    })
    .await;
    answers[0].assert_refused(1007, "(f)");
    assert!(
        answers[0].error().unwrap().contains("document chunks are not accepted"),
        "{:?}",
        answers[0]
    );
    world.unharmed(&before, "(f)").await;
}

/// (g) A real change whose run-length encoded action column claims three
/// billion operations in a few bytes: refused by its operation count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_length_column_claiming_billions_of_ops_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let mut replica = world.maria_replica(world.thread).await;
    let doc = replica.client.doc_mut(world.thread).unwrap();
    let heads = doc.get_heads();
    let change = ChangeParts::parse(message_change(doc, world.maria.user.id, MARKER).raw_bytes());
    replica.close().await;
    let variants = [
        ("action column", craft::rle_bomb(&change, craft::ACTION_COLUMN, 3_000_000_000, 1)),
        ("insert column (booleans)", {
            let mut patched = change.clone();
            let at = patched.column(3 << 4 | 4);
            let mut column = Vec::new();
            craft::uleb(&mut column, 3_000_000_000);
            patched.columns[at].1 = column;
            patched
        }),
        ("value metadata, a null run", {
            let mut patched = change.clone();
            let at = patched.column(craft::VALUE_META_COLUMN);
            let mut column = vec![0];
            craft::uleb(&mut column, 1 << 40);
            patched.columns[at].1 = column;
            patched
        }),
    ];
    let (answers, _) = under_attack(&world.portal, "(g) run-length bomb", async {
        let mut answers = Vec::new();
        for (name, patched) in &variants {
            let data = craft::carrying(heads.clone(), vec![patched.chunk()], MessageVersion::V1);
            let answer = on_connections(&world, &world.maria, 1, |raw| {
                raw.sync_frame(world.thread, data.clone())
            })
            .await;
            println!("(g) {name}: a {}-byte message", data.len());
            answers.push((*name, answer.into_iter().next().unwrap()));
        }
        answers
    })
    .await;
    for (name, answer) in &answers {
        answer.assert_refused(1007, name);
        assert!(
            answer.error().unwrap().contains("more than 4096 operations in one change"),
            "{name}: {answer:?}"
        );
    }
    world.unharmed(&before, "(g)").await;
}

/// (h) A message whose body is 7 MB, sent as the app would send it: over
/// the 1 MiB client frame limit, closed (1009) before it is read; nothing
/// stored, nothing of it logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seven_megabyte_message_is_refused_and_nothing_is_stored() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let id = world.thread;
    let mut replica = world.maria_replica(id).await;
    let body = format!("{MARKER} ").repeat(7_000_000 / (MARKER.len() + 1));
    message_change(replica.client.doc_mut(id).unwrap(), world.maria.user.id, &body);
    let up = replica.bytes_up;
    let (outcome, _) = under_attack(&world.portal, "(h) 7 MB message", async {
        let sent = replica.flush_local().await;
        let outcome = replica.sync_until(TIMEOUT, |_, r| !r.rejected.is_empty()).await;
        (sent, outcome)
    })
    .await;
    println!(
        "(h) a {:.1} MB frame: send {:?}, then {:?}",
        (replica.bytes_up - up) as f64 / 1e6,
        outcome.0.as_ref().err(),
        outcome.1
    );
    match &outcome.1 {
        Err(ClientError::Closed(reason)) => assert!(reason.starts_with("1009"), "{reason}"),
        Err(ClientError::Sync(shared::sync::client::SyncError::Server(message))) => {
            assert!(
                message.contains("frame") || message.contains("size") || message.contains("long"),
                "{message}"
            )
        }
        Err(ClientError::WebSocket(_)) => {}
        other => panic!("(h): the 7 MB message was not refused: {other:?}"),
    }
    replica.close().await;
    world.unharmed(&before, "(h)").await;
}

/// (i) Frames at the client frame limit, as fast as the sockets take them,
/// on several connections: each a valid message whose one change carries
/// a value of almost 1 MiB (refused by the policy, but only once judged).
/// What the server holds for them at once stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_frames_at_the_size_limit_is_bounded() {
    // Frames per connection; more with ATTACK_FLOOD_FRAMES (each costs a
    // debug build about 0.1 s of hashing).
    let frames: usize =
        std::env::var("ATTACK_FLOOD_FRAMES").ok().and_then(|n| n.parse().ok()).unwrap_or(25);
    let _serial = SERIAL.lock().await;
    let world = World::new().await;
    let before = world.stored().await;
    let mut replica = world.maria_replica(world.thread).await;
    let doc = replica.client.doc_mut(world.thread).unwrap();
    let heads = doc.get_heads();
    let body = format!("{MARKER} ").repeat(1_000_000 / (MARKER.len() + 1));
    let change = message_change(doc, world.maria.user.id, &body);
    replica.close().await;
    let data = craft::carrying(heads, vec![change.raw_bytes().to_vec()], MessageVersion::V1);
    let thread = world.thread;
    let (answers, _) = under_attack(&world.portal, "(i) frames at the size limit", async {
        let mut raws = Vec::new();
        for _ in 0..4 {
            raws.push(world.raw(&world.maria).await);
        }
        let tasks: Vec<_> = raws
            .into_iter()
            .map(|mut raw| {
                let frame = raw.sync_frame(thread, data.clone());
                assert!(frame.len() < 1024 * 1024 && frame.len() > 1000 * 1000, "{}", frame.len());
                tokio::spawn(async move {
                    let mut sent = 0;
                    for _ in 0..frames {
                        if raw.send(frame.clone()).await.is_err() {
                            break;
                        }
                        sent += 1;
                    }
                    (sent, raw.answer(Duration::from_secs(5)).await)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    })
    .await;
    for (sent, answer) in &answers {
        println!(
            "(i) {sent} frames sent; {} replies, close {:?}",
            answer.messages.len(),
            answer.close
        );
        assert_eq!(*sent, frames, "(i): the server read every frame");
        // Each is judged and refused (the body is over its limit); the
        // connection stays open.
        assert!(answer.close.is_none() && answer.dropped.is_none(), "(i): {answer:?}");
        assert!(
            answer.rejected().is_some_and(|(rule, _)| rule == "limit"),
            "(i): {:?}",
            answer.messages.first()
        );
    }
    assert_eq!(world.stored().await, before, "(i): nothing stored or audited");
    let mut world = world;
    world.still_serving("(i)").await;
    world.assert_logs_clean();
}

/// (j) Changes Automerge 0.12 panics on when applying them (it unwraps on
/// actor ids the document does not know), found by the fuzzer: a change
/// listing an unused unknown actor, which the policy passes: the connection
/// is closed with an error (1007), not dropped without a close frame; and a
/// new actor's first change numbered 2, which skips a sequence number and
/// is refused by the policy before Automerge sees it (rule schema, the
/// connection stays open). Nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_automerge_cannot_apply_close_only_that_connection() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let mut replica = world.maria_replica(world.thread).await;
    let doc = replica.client.doc_mut(world.thread).unwrap();
    let heads = doc.get_heads();
    let change = ChangeParts::parse(message_change(doc, world.maria.user.id, "Hello").raw_bytes());
    replica.close().await;
    let mut unknown_actor = change.clone();
    unknown_actor.others.push(automerge::ActorId::random().to_bytes().to_vec());
    let mut second_first = change.clone();
    second_first.seq = 2;
    let variants =
        [("an unused unknown actor", unknown_actor), ("a new actor starting at 2", second_first)];
    let (answers, _) = under_attack(&world.portal, "(j) changes Automerge panics on", async {
        let mut answers = Vec::new();
        for (name, patched) in &variants {
            let data = craft::carrying(heads.clone(), vec![patched.chunk()], MessageVersion::V1);
            let answer = on_connections(&world, &world.maria, 1, |raw| {
                raw.sync_frame(world.thread, data.clone())
            })
            .await;
            answers.push((*name, answer.into_iter().next().unwrap()));
        }
        answers
    })
    .await;
    let (name, answer) = &answers[0];
    answer.assert_refused(1007, name);
    assert!(answer.error().unwrap().contains("corrupt Automerge changes"), "{name}: {answer:?}");
    let (name, answer) = &answers[1];
    assert!(answer.close.is_none() && answer.dropped.is_none(), "{name}: {answer:?}");
    assert!(answer.rejected().is_some_and(|(rule, _)| rule == "schema"), "{name}: {answer:?}");
    assert_eq!(world.stored().await, before, "(j): nothing stored or audited");
    world.still_serving("(j)").await;
    let logs = world.portal.logs();
    assert_eq!(
        logs.matches("Automerge panicked on a client's message").count(),
        1,
        "only the first reached Automerge"
    );
    assert!(!logs.contains(MARKER));
}

/// (k) A valid message whose change numbers its operations below those of
/// the change it depends on (found by the fuzzer). Automerge 0.12 applies
/// it, but the document it makes no longer loads ("max_op is lower than
/// start_op"): every new device opening the record, and the server itself
/// after a restart or compaction, would fail on it. Refused by the policy;
/// the record still opens and loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_numbered_below_its_dependencies_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    // Maria gives her phone number, as the app writes it; the change is
    // then numbered one lower, level with the last operation it follows.
    let id = world.patient_record;
    let mut replica = world.maria_replica(id).await;
    let doc = replica.client.doc_mut(id).unwrap();
    let heads = doc.get_heads();
    let mut tx = doc.transaction();
    let demographics =
        shared::schema::Demographics { phone: Some("+1 555 0100".into()), ..Default::default() };
    record::set_demographics(&mut tx, &demographics).unwrap();
    tx.commit();
    let mut change = ChangeParts::parse(doc.get_last_local_change().unwrap().raw_bytes());
    replica.close().await;
    change.start_op -= 1;
    let data = craft::carrying(heads, vec![change.chunk()], MessageVersion::V1);
    let (answers, _) =
        under_attack(&world.portal, "(k) operations numbered below their dependencies", async {
            let mut raw = world.raw(&world.maria).await;
            raw.send(raw.sync_frame(id, data.clone())).await.unwrap();
            // Refused, or acknowledged with a sync reply.
            raw.answer_until(TIMEOUT, |m| {
                matches!(m, WireMessage::ChangeRejected { .. } | WireMessage::Sync { .. })
            })
            .await
        })
        .await;
    let (rule, why) = answers.rejected().unwrap_or_else(|| panic!("(k): not refused: {answers:?}"));
    println!("(k) refused: {why}");
    assert_eq!(rule, "schema", "{answers:?}");
    assert_eq!(world.stored().await, before, "(k): nothing stored or audited");
    // The record still opens on a new device and loads from storage.
    let fresh = world.portal.replica(&world.maria, &[id]).await;
    fresh.close().await;
    let stored = world.store.load_document(id).await.unwrap().unwrap().to_automerge().unwrap();
    Automerge::load(&stored.save()).expect("the stored record loads");
    world.still_serving("(k)").await;
}

/// Several instances on PostgreSQL run the same bounds and policy: two
/// `portal` processes on one database with one public URL (as behind a load
/// balancer); people sign in on the first, and the second refuses the Bloom
/// probe attack and a forbidden change, stores nothing, and still relays a
/// provider's change to the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_postgresql_refuses_the_same_attacks() {
    let _serial = SERIAL.lock().await;
    let db = TestDatabase::new(Backend::Postgres).await;
    let first = Portal::start(&["demo"], &db.url);
    let second = Portal::start_with(&["serve"], &db.url, &["--public-url", &first.base]);
    let maria = first.enroll("Maria", &first.link("Maria")).await;
    let okafor = first.enroll("Okafor", &first.link("Okafor")).await;
    let riverside = okafor.user.clinics[0];
    let clinical = DocKind::ClinicalRecord { patient: maria.patient(), clinic: riverside }.doc_id();
    let store = first.store().await;
    let stored = || async {
        store.load_document(clinical).await.unwrap().unwrap().to_automerge().unwrap().get_heads()
    };
    let before = stored().await;
    let mut watching = first.replica(&okafor, &[clinical]).await;

    let data = craft::sync_message(&[craft::bloom(1, 10, u64::from(u32::MAX), &[0, 0])], &[]);
    let mut forbidden = second.replica(&maria, &[clinical]).await;
    let (answers, _) = under_attack(&second, "PostgreSQL second instance", async {
        let mut raw = second.raw(&maria).await;
        let _ = raw.send(raw.sync_frame(clinical, data.clone())).await;
        let probes = raw.answer(TIMEOUT).await;
        // Maria changes a result's value: the policy refuses it.
        let doc = forbidden.client.doc_mut(clinical).unwrap();
        let mut tx = doc.transaction();
        let observations = tx.get(ROOT, "observations").unwrap().unwrap().1;
        let result = tx.keys(&observations).next().unwrap();
        let entry = tx.get(&observations, &result).unwrap().unwrap().1;
        tx.put(&entry, "value_quantity", 5.0).unwrap();
        tx.commit();
        forbidden.flush_local().await.unwrap();
        forbidden.sync_until(TIMEOUT, |_, r| !r.rejected.is_empty()).await.unwrap();
        (probes, forbidden.take_received().rejected)
    })
    .await;
    let (probes, rejected) = answers;
    probes.assert_refused(1007, "PostgreSQL (a)");
    assert!(rejected[0].1.contains("not-permitted"), "{rejected:?}");
    assert_eq!(stored().await, before, "nothing stored");
    forbidden.close().await;

    // Okafor writes through the second instance; the first relays it.
    let mut writer = second.replica(&okafor, &[clinical]).await;
    let doc = writer.client.doc_mut(clinical).unwrap();
    let mut tx = doc.transaction();
    record::add(
        &mut tx,
        EntryId::mint(),
        &testkit::fixtures::glucose_result(
            (riverside, demo::clinic_name(riverside)),
            okafor.user.id,
            okafor.user.name,
            99.0,
        ),
    )
    .unwrap();
    tx.commit();
    writer.flush_local().await.unwrap();
    writer.sync_all(TIMEOUT).await.unwrap();
    let mut target = writer.client.doc(clinical).unwrap().get_heads();
    target.sort();
    watching
        .sync_until(TIMEOUT, |c, _| {
            let mut h = c.doc(clinical).unwrap().get_heads();
            h.sort();
            h == target
        })
        .await
        .unwrap();
    assert!(second.alive());
    assert!(!second.logs().contains("panicked"));
    writer.close().await;
    watching.close().await;
    store.close().await;
    drop(first);
    drop(second);
    db.drop_database().await;
}

/// The crafted bytes are what the attacks claim: a change taken apart and
/// put together again is the same change, and a compressed chunk (small
/// here) is a change Automerge inflates and applies, with its value grown.
#[test]
fn crafted_chunks_are_what_automerge_reads() {
    let maria = UserId::mint();
    let kind = DocKind::MessageThread {
        patient: shared::PatientId::mint(),
        clinic: shared::ClinicId::mint(),
    };
    let mut doc = kind.genesis();
    let base = doc.clone();
    let change = message_change(&mut doc, maria, MARKER);
    let parts = ChangeParts::parse(change.raw_bytes());
    assert_eq!(parts.chunk(), change.raw_bytes(), "taken apart and put together again");

    let segment = craft::compressible_text(32 * 1024, 150);
    let compressed = craft::compressed_change(&parts, MARKER, &segment, 5);
    assert_eq!(compressed[8], craft::CHUNK_COMPRESSED);
    let inflated =
        automerge::Change::try_from(&compressed[..]).expect("Automerge reads the compressed chunk");
    let mut applied = base.clone();
    applied.apply_changes([inflated]).unwrap();
    let messages = applied.get(ROOT, "messages").unwrap().unwrap().1;
    let entry = applied.get(&messages, applied.keys(&messages).next().unwrap()).unwrap().unwrap().1;
    let (body, _) = applied.get(&entry, "body").unwrap().unwrap();
    assert_eq!(body.as_str().map(str::len), Some(5 * 32 * 1024), "the body inflated");
    assert_eq!(&body.as_str().unwrap().as_bytes()[..segment.len()], &segment[..]);
}
