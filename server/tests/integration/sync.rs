//! The sync engine against a real server, on SQLite and PostgreSQL.

use std::path::PathBuf;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT, ReadDoc};
use server::demo::{self, DemoUser};
use server::storage::Store;
use shared::schema::{ClinicalRecord, DocKind, Message, Observation};
use shared::status::Side;
use shared::sync::{SyncClient, WireMessage};
use shared::{ClinicId, DocId, EntryId, PatientId, record};
use testkit::Replica;
use testkit::{TestDatabase, TestServer};

use crate::BACKENDS;

const TIMEOUT: Duration = Duration::from_secs(30);

struct Fixture {
    db: TestDatabase,
    app: TestServer,
    users: Vec<DemoUser>,
}

impl Fixture {
    async fn new(backend: server::storage::Backend) -> Self {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let users = demo::seed(&app.store).await.unwrap();
        Self { db, app, users }
    }

    fn user(&self, name: &str) -> &DemoUser {
        self.users.iter().find(|u| u.name.contains(name)).unwrap()
    }

    fn ws_url(&self) -> String {
        format!("{}/sync", self.app.base_url.replacen("http", "ws", 1))
    }

    /// A replica of `docs` for `user`, fully synced, writing under a fresh actor id.
    async fn replica(&self, user: &DemoUser, docs: &[DocId]) -> Replica {
        let mut client = SyncClient::new(format!("test-{}", uuid::Uuid::now_v7().simple()));
        for id in docs {
            client.insert(*id, Automerge::new());
        }
        let mut replica = Replica::connect(
            &self.ws_url(),
            &[("x-portal-test-user", user.id.to_string())],
            client,
        )
        .await
        .unwrap();
        replica.sync_all(TIMEOUT).await.unwrap();
        let actor = ActorId::random();
        for id in docs {
            replica.client.doc_mut(*id).unwrap().set_actor(actor.clone());
        }
        replica
    }

    async fn stop(self) {
        self.app.stop().await;
        self.db.drop_database().await;
    }
}

fn maria_docs(f: &Fixture) -> (DocKind, DocKind, DocKind) {
    let maria = f.user("Maria").patient.unwrap();
    let riverside = f.user("Okafor").clinics[0];
    (
        DocKind::ClinicalRecord { patient: maria, clinic: riverside },
        DocKind::MessageThread { patient: maria, clinic: riverside },
        DocKind::PatientRecord { patient: maria },
    )
}

fn observation(clinic: ClinicId, recorder: &DemoUser, value: f64) -> Observation {
    testkit::fixtures::glucose_result(
        (clinic, demo::clinic_name(clinic)),
        recorder.id,
        recorder.name,
        value,
    )
}

fn edit(
    replica: &mut Replica,
    id: DocId,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) {
    let doc = replica.client.doc_mut(id).unwrap();
    let mut tx = doc.transaction();
    f(&mut tx);
    tx.commit();
}

async fn stored_heads(store: &Store, id: DocId) -> Vec<automerge::ChangeHash> {
    let mut heads =
        store.load_document(id).await.unwrap().unwrap().to_automerge().unwrap().get_heads();
    heads.sort();
    heads
}

fn heads(doc: &Automerge) -> Vec<automerge::ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort();
    heads
}

#[tokio::test]
async fn an_accepted_change_reaches_other_replicas_live() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let (clinical, _, _) = maria_docs(&f);
        let id = clinical.doc_id();
        let mut patient = f.replica(f.user("Maria"), &[id]).await;
        let mut provider = f.replica(f.user("Okafor"), &[id]).await;
        let before: ClinicalRecord = autosurgeon::hydrate(patient.client.doc(id).unwrap()).unwrap();

        let entry = EntryId::mint();
        let okafor = f.user("Okafor").clone();
        edit(&mut provider, id, |tx| {
            record::add(tx, entry, &observation(okafor.clinics[0], &okafor, 180.0)).unwrap()
        });
        provider.flush_local().await.unwrap();
        provider.sync_all(TIMEOUT).await.unwrap();
        // Acknowledged means stored.
        assert_eq!(
            stored_heads(&f.app.store, id).await,
            heads(provider.client.doc(id).unwrap()),
            "{backend:?}"
        );

        // The patient's replica receives it without asking.
        let target = heads(provider.client.doc(id).unwrap());
        patient.sync_until(TIMEOUT, |c, _| heads(c.doc(id).unwrap()) == target).await.unwrap();
        let after: ClinicalRecord = autosurgeon::hydrate(patient.client.doc(id).unwrap()).unwrap();
        assert_eq!(after.observations.len(), before.observations.len() + 1, "{backend:?}");
        assert_eq!(after.observations[&entry.to_string()].value_quantity, Some(180.0));
        patient.close().await;
        provider.close().await;
        f.stop().await;
    }
}

#[tokio::test]
async fn forbidden_changes_are_rejected_and_the_record_is_unchanged() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let (clinical, thread, _) = maria_docs(&f);
        let (clinical_id, thread_id) = (clinical.doc_id(), thread.doc_id());
        let maria = f.user("Maria").clone();
        let okafor = f.user("Okafor").clone();
        let brandt = f.user("Brandt").clone();
        let record: ClinicalRecord = {
            let r = f.replica(&maria, &[clinical_id]).await;
            let record = autosurgeon::hydrate(r.client.doc(clinical_id).unwrap()).unwrap();
            r.close().await;
            record
        };
        let some_result = record.observations.keys().next().unwrap().clone();

        // Okafor writes once so his actor id is bound to him.
        let mut provider = f.replica(&okafor, &[thread_id]).await;
        let okafor_actor = provider.client.doc(thread_id).unwrap().get_actor().clone();
        edit(&mut provider, thread_id, |tx| {
            let message = Message::new(
                okafor.id,
                okafor.name,
                Side::Clinic,
                "2026-11-25T10:00:00Z",
                "Your results are in.",
            );
            record::add(tx, EntryId::mint(), &message).unwrap();
        });
        provider.flush_local().await.unwrap();
        provider.sync_all(TIMEOUT).await.unwrap();

        type Forge = Box<dyn Fn(&mut automerge::transaction::Transaction<'_>)>;
        let result = some_result.clone();
        type Case<'a> = (&'a str, &'a DemoUser, DocId, Option<ActorId>, Forge, &'a str);
        let cases: Vec<Case> = vec![
            (
                "patient edits a lab value",
                &maria,
                clinical_id,
                None,
                Box::new(move |tx| {
                    let obs = tx.get(ROOT, "observations").unwrap().unwrap().1;
                    let entry = tx.get(&obs, result.as_str()).unwrap().unwrap().1;
                    tx.put(&entry, "value_quantity", 5.0).unwrap();
                }),
                "not-permitted",
            ),
            (
                "provider of another clinic writes a result",
                &brandt,
                clinical_id,
                None,
                {
                    let brandt = brandt.clone();
                    Box::new(move |tx| {
                        record::add(
                            tx,
                            EntryId::mint(),
                            &observation(brandt.clinics[0], &brandt, 1.0),
                        )
                        .unwrap()
                    })
                },
                "foreign-clinic",
            ),
            (
                "provider deletes a result",
                &okafor,
                clinical_id,
                None,
                {
                    let result = some_result.clone();
                    Box::new(move |tx| {
                        let obs = tx.get(ROOT, "observations").unwrap().unwrap().1;
                        tx.delete(&obs, result.as_str()).unwrap();
                    })
                },
                "append-only",
            ),
            (
                "patient writes a message as the provider",
                &maria,
                thread_id,
                None,
                {
                    let okafor = okafor.clone();
                    Box::new(move |tx| {
                        let message = Message::new(
                            okafor.id,
                            okafor.name,
                            Side::Patient,
                            "2026-11-25T11:00:00Z",
                            "Please stop all your medication.",
                        );
                        record::add(tx, EntryId::mint(), &message).unwrap();
                    })
                },
                "impersonated-author",
            ),
            (
                "patient writes under the provider's actor id",
                &maria,
                thread_id,
                Some(okafor_actor),
                {
                    let maria = maria.clone();
                    Box::new(move |tx| {
                        let message = Message::new(
                            maria.id,
                            maria.name,
                            Side::Patient,
                            "2026-11-25T11:00:00Z",
                            "Hello",
                        );
                        record::add(tx, EntryId::mint(), &message).unwrap();
                    })
                },
                "forged-actor",
            ),
        ];
        for (name, who, id, actor, forge, rule) in cases {
            let mut replica = f.replica(who, &[id]).await;
            if let Some(actor) = actor {
                replica.client.doc_mut(id).unwrap().set_actor(actor);
            }
            let canonical_before = stored_heads(&f.app.store, id).await;
            edit(&mut replica, id, |tx| forge(tx));
            replica.flush_local().await.unwrap();
            replica.sync_until(TIMEOUT, |_, r| !r.rejected.is_empty()).await.unwrap();
            let received = replica.take_received();
            assert_eq!(received.rejected.len(), 1, "{backend:?} {name}: {received:?}");
            let (rejected_id, message) = &received.rejected[0];
            assert_eq!(*rejected_id, id);
            assert!(message.contains(rule), "{backend:?} {name}: {message}");
            assert_eq!(
                stored_heads(&f.app.store, id).await,
                canonical_before,
                "{backend:?} {name}: canonical untouched"
            );
            // The client reset the document and is level with the server again.
            replica.sync_all(TIMEOUT).await.unwrap();
            assert_eq!(
                heads(replica.client.doc(id).unwrap()),
                canonical_before,
                "{backend:?} {name}"
            );
            replica.close().await;
        }
        provider.close().await;
        f.stop().await;
    }
}

#[tokio::test]
async fn unknown_and_forbidden_documents_look_the_same() {
    let f = Fixture::new(server::storage::Backend::Sqlite).await;
    let james = f.user("James").patient.unwrap();
    let forbidden = DocKind::PatientRecord { patient: james }.doc_id();
    let unknown = DocKind::PatientRecord { patient: PatientId::mint() }.doc_id();
    let mut client = SyncClient::new("probe");
    client.insert(forbidden, Automerge::new());
    client.insert(unknown, Automerge::new());
    let brandt = f.user("Brandt");
    let mut replica =
        Replica::connect(&f.ws_url(), &[("x-portal-test-user", brandt.id.to_string())], client)
            .await
            .unwrap();
    replica.sync_until(TIMEOUT, |_, r| r.unavailable.len() == 2).await.unwrap();
    let mut unavailable = replica.take_received().unavailable;
    unavailable.sort();
    let mut expected = vec![forbidden, unknown];
    expected.sort();
    assert_eq!(unavailable, expected);
    assert!(
        replica.client.doc(forbidden).unwrap().get_heads().is_empty(),
        "nothing of James's record leaked"
    );
    replica.close().await;
    f.stop().await;
}

#[tokio::test]
async fn bad_frames_close_one_connection_with_a_reason_and_others_keep_working() {
    let f = Fixture::new(server::storage::Backend::Sqlite).await;
    let (clinical, _, _) = maria_docs(&f);
    let id = clinical.doc_id();
    let okafor = f.user("Okafor").clone();
    let mut good = f.replica(&okafor, &[id]).await;

    let bad_frames: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\xffnot cbor at all".to_vec()),
        ("unknown type", {
            let mut out = Vec::new();
            ciborium_into(&mut out);
            out
        }),
        (
            "corrupt automerge",
            WireMessage::Sync {
                sender_id: "x".into(),
                target_id: "y".into(),
                document_id: shared::sync::encode_doc_id(id),
                data: serde_bytes::ByteBuf::from(vec![0x42, 0x00, 0x13, 0x37]),
            }
            .encode(),
        ),
        ("oversized", vec![0u8; shared::sync::MAX_FRAME_BYTES + 1024]),
    ];
    for (name, frame) in bad_frames {
        let mut client = SyncClient::new("bad");
        client.insert(id, Automerge::new());
        let mut bad =
            Replica::connect(&f.ws_url(), &[("x-portal-test-user", okafor.id.to_string())], client)
                .await
                .unwrap();
        bad.sync_all(TIMEOUT).await.unwrap();
        let _ = bad.send_raw(frame).await;
        let outcome = bad.sync_until(TIMEOUT, |_, _| false).await;
        // A clear error message, then a close with a reason.
        let closed = matches!(&outcome, Err(testkit::ClientError::Sync(shared::sync::client::SyncError::Server(m))) if m.contains("frame") || m.contains("corrupt") || m.contains("refused"))
            || matches!(
                outcome,
                Err(testkit::ClientError::Closed(_) | testkit::ClientError::WebSocket(_))
            );
        assert!(closed, "{name}: {outcome:?}");

        // Everyone else is still served.
        let entry = EntryId::mint();
        edit(&mut good, id, |tx| {
            record::add(tx, entry, &observation(okafor.clinics[0], &okafor, 99.0)).unwrap()
        });
        good.flush_local().await.unwrap();
        good.sync_all(TIMEOUT).await.unwrap();
    }
    let health = reqwest::get(format!("{}/healthz", f.app.base_url)).await.unwrap();
    assert_eq!(health.status(), 200);
    good.close().await;
    f.stop().await;
}

fn ciborium_into(out: &mut Vec<u8>) {
    // {"type": "launch-missiles"}: well-formed CBOR, not a protocol message.
    out.extend_from_slice(&[0xa1, 0x64, b't', b'y', b'p', b'e', 0x6f]);
    out.extend_from_slice(b"launch-missiles");
}

#[tokio::test]
async fn a_clinic_catches_up_many_documents_over_one_connection() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let okafor = f.user("Okafor").clone();
        let clinic = okafor.clinics[0];
        let mut ids = Vec::new();
        for _ in 0..100 {
            let patient = PatientId::mint();
            f.app.store.create_patient(patient, f.app.clock.now_ms()).await.unwrap();
            f.app.store.grant_consent(patient, clinic, f.app.clock.now_ms()).await.unwrap();
            ids.push(
                f.app
                    .store
                    .create_document(
                        &DocKind::ClinicalRecord { patient, clinic },
                        f.app.clock.now_ms(),
                    )
                    .await
                    .unwrap(),
            );
        }
        // A new connection learns about the new patients.
        let replica = f.replica(&okafor, &ids).await;
        assert_eq!(replica.client.progress().synced, ids.len());
        replica.close().await;

        // A day offline: five results per patient.
        let mut client = SyncClient::new("clinic-laptop");
        let actor = ActorId::random();
        for id in &ids {
            let mut doc =
                f.app.store.load_document(*id).await.unwrap().unwrap().to_automerge().unwrap();
            doc.set_actor(actor.clone());
            for n in 0..5 {
                let mut tx = doc.transaction();
                record::add(&mut tx, EntryId::mint(), &observation(clinic, &okafor, f64::from(n)))
                    .unwrap();
                tx.commit();
            }
            client.insert(*id, doc);
        }
        let mut replica =
            Replica::connect(&f.ws_url(), &[("x-portal-test-user", okafor.id.to_string())], client)
                .await
                .unwrap();
        replica.sync_all(TIMEOUT).await.unwrap();
        // None refused (a refused document is reset and its offline changes
        // are gone): Bloom filter false positives, which leave a change's
        // dependency unsent, are recovered from, not refused.
        let rejected = replica.take_received().rejected;
        assert!(
            rejected.is_empty(),
            "{backend:?}: {} documents refused, e.g. {:?}",
            rejected.len(),
            rejected.first()
        );
        let progress = replica.client.progress();
        assert_eq!(
            (progress.synced, progress.total, progress.pending_changes),
            (100, 100, 0),
            "{backend:?}"
        );
        for id in &ids {
            assert_eq!(
                replica.client.doc(*id).unwrap().get_changes(&[]).len(),
                6,
                "{backend:?}: genesis and five results"
            );
        }

        // Everything acknowledged is in storage, as a fresh process would read it.
        let reopened = Store::connect(&f.db.url).await.unwrap();
        for id in &ids {
            assert_eq!(
                stored_heads(&reopened, *id).await,
                heads(replica.client.doc(*id).unwrap()),
                "{backend:?}"
            );
        }
        reopened.close().await;
        replica.close().await;
        f.stop().await;
    }
}

/// A connection commits one batch while it judges the next
/// (`Connection::apply`). Documents the next batch names again wait for
/// the batch before to be committed, and the actor id the first batch
/// binds is known to the next: nothing is refused and everything
/// acknowledged is stored.
#[tokio::test]
async fn documents_named_again_in_the_next_batch_wait_for_the_first_to_commit() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let okafor = f.user("Okafor").clone();
        let clinic = okafor.clinics[0];
        let mut ids = Vec::new();
        let mut client = SyncClient::new("clinic-laptop");
        for _ in 0..150 {
            let patient = PatientId::mint();
            f.app.store.create_patient(patient, f.app.clock.now_ms()).await.unwrap();
            f.app.store.grant_consent(patient, clinic, f.app.clock.now_ms()).await.unwrap();
            let id = f
                .app
                .store
                .create_document(&DocKind::ClinicalRecord { patient, clinic }, f.app.clock.now_ms())
                .await
                .unwrap();
            let doc = f.app.store.load_document(id).await.unwrap().unwrap().to_automerge().unwrap();
            client.insert(id, doc);
            ids.push(id);
        }
        // Level with the server first, so the changes below go in one round.
        let mut replica =
            Replica::connect(&f.ws_url(), &[("x-portal-test-user", okafor.id.to_string())], client)
                .await
                .unwrap();
        replica.sync_all(TIMEOUT).await.unwrap();
        // Five results per patient, signed by an actor id new to the
        // server: more operations than one batch takes, so two batches
        // (`MAX_OPS_PER_BATCH`), the first committing while the second is
        // judged; then one more result for each, in messages after all of
        // those, so later batches name documents the one before holds.
        let actor = ActorId::random();
        let mut frames = Vec::new();
        for (results, value) in [(5, 0.0), (1, 6.0)] {
            for id in &ids {
                let doc = replica.client.doc_mut(*id).unwrap();
                doc.set_actor(actor.clone());
                for n in 0..results {
                    let mut tx = doc.transaction();
                    let result = observation(clinic, &okafor, value + f64::from(n));
                    record::add(&mut tx, EntryId::mint(), &result).unwrap();
                    tx.commit();
                }
            }
            frames.extend(replica.client.outgoing());
        }
        assert_eq!(frames.len(), 2 * ids.len());
        replica.send(frames).await.unwrap();
        replica.sync_all(TIMEOUT).await.unwrap();
        let rejected = replica.take_received().rejected;
        assert!(rejected.is_empty(), "{backend:?}: {} documents refused", rejected.len());
        let reopened = Store::connect(&f.db.url).await.unwrap();
        for id in &ids {
            let doc = replica.client.doc(*id).unwrap();
            assert_eq!(doc.get_changes(&[]).len(), 7, "{backend:?}: genesis and six results");
            assert_eq!(stored_heads(&reopened, *id).await, heads(doc), "{backend:?}");
        }
        reopened.close().await;
        replica.close().await;
        f.stop().await;
    }
}

#[tokio::test]
async fn revoking_consent_stops_a_clinics_sync_at_once() {
    let f = Fixture::new(server::storage::Backend::Sqlite).await;
    let maria = f.user("Maria").patient.unwrap();
    let okafor = f.user("Okafor").clone();
    let riverside = okafor.clinics[0];
    let northgate = f.user("Brandt").clinics[0];
    let northgate_record = DocKind::ClinicalRecord { patient: maria, clinic: northgate }.doc_id();
    let mut provider = f.replica(&okafor, &[northgate_record]).await;
    assert!(
        !provider.take_received().changed.is_empty(),
        "Riverside reads Northgate's record while Maria consents"
    );

    f.app.store.revoke_consent(maria, riverside, f.app.clock.now_ms()).await.unwrap();
    f.app.hub.access_changed();
    // A change by the other clinic is not pushed to Riverside any more, and
    // asking for the record now answers like a missing document.
    let mut brandt = f.replica(f.user("Brandt"), &[northgate_record]).await;
    let brandt_user = f.user("Brandt").clone();
    edit(&mut brandt, northgate_record, |tx| {
        record::add(tx, EntryId::mint(), &observation(northgate, &brandt_user, 7.0)).unwrap()
    });
    brandt.flush_local().await.unwrap();
    brandt.sync_all(TIMEOUT).await.unwrap();
    let mut client = SyncClient::new("riverside-again");
    client.insert(northgate_record, Automerge::new());
    let mut again =
        Replica::connect(&f.ws_url(), &[("x-portal-test-user", okafor.id.to_string())], client)
            .await
            .unwrap();
    again.sync_until(TIMEOUT, |_, r| !r.unavailable.is_empty()).await.unwrap();
    // The still-open connection got nothing new either.
    let _ = provider.sync_until(Duration::from_millis(300), |_, _| false).await;
    assert!(provider.take_received().changed.is_empty(), "a revoked clinic received an update");
    provider.close().await;
    brandt.close().await;
    again.close().await;
    f.stop().await;
}

/// A replica that sends a change and, in the same breath, a heads-only
/// message (as it does when a push from the server crosses its change) still
/// gets the acknowledgement it waits for. Automerge alone would take the
/// second message's heads as already told to the replica and stay silent.
#[tokio::test]
async fn a_change_is_acknowledged_even_when_a_heads_message_follows_it() {
    let f = Fixture::new(server::storage::Backend::Sqlite).await;
    let (_, thread, _) = maria_docs(&f);
    let id = thread.doc_id();
    let mut patient = f.replica(f.user("Maria"), &[id]).await;
    let maria = f.user("Maria").clone();
    let message = Message::new(
        maria.id,
        maria.name,
        Side::Patient,
        "2026-11-26T08:00:00Z",
        "Is my result normal?",
    );
    edit(&mut patient, id, |tx| record::add(tx, EntryId::mint(), &message).unwrap());
    let mut frames = patient.client.outgoing();
    assert_eq!(frames.len(), 1, "one sync message carrying the change");
    let WireMessage::Sync { sender_id, target_id, document_id, .. } = frames[0].clone() else {
        panic!("{frames:?}")
    };
    let heads_only = automerge::sync::Message {
        heads: patient.client.doc(id).unwrap().get_heads(),
        need: Vec::new(),
        have: Vec::new(),
        changes: Vec::<Vec<u8>>::new().into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let data = serde_bytes::ByteBuf::from(heads_only.encode());
    frames.push(WireMessage::Sync { sender_id, target_id, document_id, data });
    patient.send(frames).await.unwrap();
    patient.sync_all(Duration::from_secs(10)).await.expect("the change is acknowledged");
    assert_eq!(stored_heads(&f.app.store, id).await, heads(patient.client.doc(id).unwrap()));
    patient.close().await;
    f.stop().await;
}

#[tokio::test]
async fn a_person_who_reaches_the_daily_quota_is_told_and_nothing_more_is_stored() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let (_, thread, _) = maria_docs(&f);
        let id = thread.doc_id();
        let maria = f.user("Maria").clone();
        let mut replica = f.replica(&maria, &[id]).await;
        let message = |n: usize| {
            Message::new(
                maria.id,
                maria.name,
                Side::Patient,
                format!("2026-11-25T11:{:02}:00Z", n % 60),
                format!("Reading {n}"),
            )
        };
        // Two full changes reach the patient side's daily quota exactly.
        let per_change = shared::fields::limits::ENTRIES_PER_CHANGE;
        let quota = server::storage::ENTRIES_PER_DAY_PATIENT_SIDE as usize;
        assert_eq!(quota % per_change, 0);
        for batch in 0..quota / per_change {
            edit(&mut replica, id, |tx| {
                for n in 0..per_change {
                    record::add(tx, EntryId::mint(), &message(batch * per_change + n)).unwrap();
                }
            });
            replica.flush_local().await.unwrap();
            replica.sync_all(TIMEOUT).await.unwrap();
        }
        let before = stored_heads(&f.app.store, id).await;
        edit(&mut replica, id, |tx| record::add(tx, EntryId::mint(), &message(quota)).unwrap());
        replica.flush_local().await.unwrap();
        replica.sync_until(TIMEOUT, |_, r| !r.rejected.is_empty()).await.unwrap();
        let received = replica.take_received();
        assert!(
            received.rejected[0].1.contains("rule quota"),
            "{backend:?}: {:?}",
            received.rejected
        );
        assert!(received.rejected[0].1.contains("try again tomorrow"), "said in plain words");
        assert_eq!(stored_heads(&f.app.store, id).await, before, "{backend:?}: nothing stored");
        replica.close().await;
        f.stop().await;
    }
}
