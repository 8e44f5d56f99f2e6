//! A simulated network, no sockets and no sleeps: a patient and providers of
//! two clinics edit offline and sync in random interleavings through a hub
//! that enforces the write policy like the server does. All replicas must
//! converge to identical documents, with every allowed edit kept.

use std::collections::{BTreeMap, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};
use proptest::prelude::*;
use shared::schema::{ClinicalRecord, DocKind, Message, MessageThread, Observation, Provenance};
use shared::status::{ResultStatus, Side};
use shared::sync::{SyncClient, WireMessage, decode_doc_id, encode_doc_id};
use shared::{ClinicId, DocId, EntryId, PatientId, Principal, Role, UserId, check_change, record};

struct World {
    people: Vec<Principal>,
    docs: Vec<DocKind>,
    clinics: [ClinicId; 2],
}

impl World {
    fn new() -> Self {
        let patient = PatientId::mint();
        let clinics = [ClinicId::mint(), ClinicId::mint()];
        let people = vec![
            Principal {
                user: UserId::mint(),
                role: Role::Patient { patient },
                name: "X".into(),
                clinic_names: vec![],
                colleagues: vec![],
            },
            Principal {
                user: UserId::mint(),
                role: Role::Provider { clinics: vec![clinics[0]] },
                name: "P".into(),
                clinic_names: vec![(clinics[0], "C".into())],
                colleagues: vec![],
            },
            Principal {
                user: UserId::mint(),
                role: Role::Provider { clinics: vec![clinics[1]] },
                name: "P".into(),
                clinic_names: vec![(clinics[1], "C".into())],
                colleagues: vec![],
            },
        ];
        let docs = vec![
            DocKind::ClinicalRecord { patient, clinic: clinics[0] },
            DocKind::ClinicalRecord { patient, clinic: clinics[1] },
            DocKind::MessageThread { patient, clinic: clinics[0] },
        ];
        Self { people, docs, clinics }
    }
}

/// The server's part, minus storage: canonical documents and a sync state
/// per replica and document; changes are validated on a fork before they
/// are accepted.
struct Hub {
    docs: BTreeMap<DocId, (DocKind, Automerge)>,
    states: BTreeMap<(usize, DocId), sync::State>,
}

impl Hub {
    fn receive(&mut self, from: usize, who: &Principal, message: WireMessage) -> Vec<WireMessage> {
        let (document_id, data) = match message {
            WireMessage::Join { sender_id, .. } => {
                self.states.retain(|(peer, _), _| *peer != from);
                return vec![WireMessage::Peer {
                    sender_id: "hub".into(),
                    target_id: sender_id,
                    selected_protocol_version: "1".into(),
                }];
            }
            WireMessage::Sync { document_id, data, .. }
            | WireMessage::Request { document_id, data, .. } => (document_id, data),
            other => panic!("unexpected {other:?}"),
        };
        let id = decode_doc_id(&document_id).unwrap();
        let (kind, canonical) = self.docs.get_mut(&id).unwrap();
        let state = self.states.entry((from, id)).or_default();
        let before = canonical.get_heads();
        let mut fork = canonical.clone();
        fork.receive_sync_message(state, sync::Message::decode(&data).unwrap()).unwrap();
        if let Err(denial) = check_change(&fork, &before, kind, who) {
            panic!("an allowed edit was refused: {denial}");
        }
        *canonical = fork;
        let mut out = Vec::new();
        // Reply to the sender, and offer the change to everyone else.
        for ((peer, doc), state) in self.states.iter_mut() {
            if *doc == id
                && let Some(message) = canonical.generate_sync_message(state)
            {
                let target_id = format!("replica-{peer}");
                out.push(WireMessage::Sync {
                    sender_id: "hub".into(),
                    target_id,
                    document_id: encode_doc_id(id),
                    data: message.encode().into(),
                });
            }
        }
        out
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Person `0` writes something they may write.
    Edit(usize, u8),
    /// Person `0` goes online (reconnects).
    Connect(usize),
    /// Person `0` goes offline.
    Disconnect(usize),
    /// Deliver the next in-flight message of a random online link.
    Deliver(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, any::<u8>()).prop_map(|(p, n)| Step::Edit(p, n)),
        1 => (0..3usize).prop_map(Step::Connect),
        1 => (0..3usize).prop_map(Step::Disconnect),
        6 => any::<usize>().prop_map(Step::Deliver),
    ]
}

fn provenance(clinic: ClinicId, who: &Principal) -> Provenance {
    Provenance {
        clinic,
        clinic_name: "C".into(),
        recorder: who.user,
        recorder_name: who.name.clone(),
        recorded: "2026-01-01T00:00:00Z".into(),
    }
}

fn edit(world: &World, person: usize, n: u8, client: &mut SyncClient) -> Option<(DocId, EntryId)> {
    let who = &world.people[person];
    let id = EntryId::mint();
    type Write<'a> = Box<dyn FnOnce(&mut automerge::transaction::Transaction<'_>) + 'a>;
    let (doc, write): (DocId, Write<'_>) = match person {
        // The patient writes in the thread.
        0 => (
            world.docs[2].doc_id(),
            Box::new(move |tx| record::add(tx, id, &message(who, Side::Patient, n)).unwrap()),
        ),
        // Provider A writes results, or replies in the thread.
        1 if n.is_multiple_of(2) => (
            world.docs[2].doc_id(),
            Box::new(move |tx| record::add(tx, id, &message(who, Side::Clinic, n)).unwrap()),
        ),
        _ => {
            let clinic = world.clinics[person - 1];
            let observation = Observation {
                report: None,
                loinc: "4548-4".into(),
                display: "HbA1c".into(),
                value_quantity: Some(f64::from(n)),
                value_string: None,
                unit: Some("%".into()),
                reference_low: None,
                reference_high: None,
                effective: "2026-01-01T00:00:00Z".into(),
                status: ResultStatus::Final,
                replaces: None,
                provenance: provenance(clinic, who),
                status_reason: None,
                status_by: None,
                status_at: None,
                interpretation: None,
            };
            (
                world.docs[person - 1].doc_id(),
                Box::new(move |tx| record::add(tx, id, &observation).unwrap()),
            )
        }
    };
    let automerge = client.doc_mut(doc)?;
    let mut tx = automerge.transaction();
    write(&mut tx);
    tx.commit();
    Some((doc, id))
}

fn message(who: &Principal, side: Side, n: u8) -> Message {
    Message::new(
        who.user,
        who.name.clone(),
        side,
        format!("2026-01-01T00:00:{:02}Z", n % 60),
        format!("message {n}"),
    )
}

fn heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort();
    heads
}

/// Which documents each person's replica holds.
fn holds(person: usize) -> &'static [usize] {
    match person {
        0 => &[0, 1, 2],
        1 => &[0, 1, 2],
        _ => &[0, 1],
    }
}

fn run(steps: Vec<Step>) {
    let world = World::new();
    let mut hub = Hub {
        docs: world.docs.iter().map(|k| (k.doc_id(), (*k, k.genesis()))).collect(),
        states: BTreeMap::new(),
    };
    let mut clients: Vec<SyncClient> = (0..3)
        .map(|p| {
            let mut client = SyncClient::new(format!("replica-{p}"));
            for &d in holds(p) {
                let mut doc = world.docs[d].genesis();
                doc.set_actor(automerge::ActorId::random());
                client.insert(world.docs[d].doc_id(), doc);
            }
            client
        })
        .collect();
    // Per person: is the link up, and the FIFO queues in each direction.
    let mut online = [false; 3];
    let mut up: Vec<VecDeque<WireMessage>> = vec![VecDeque::new(); 3];
    let mut down: Vec<VecDeque<WireMessage>> = vec![VecDeque::new(); 3];
    let mut written = Vec::new();

    type Queues = Vec<VecDeque<WireMessage>>;
    let apply = |step: Step,
                 clients: &mut Vec<SyncClient>,
                 hub: &mut Hub,
                 online: &mut [bool; 3],
                 up: &mut Queues,
                 down: &mut Queues,
                 written: &mut Vec<(DocId, EntryId)>| match step {
        Step::Edit(p, n) => {
            written.extend(edit(&world, p, n, &mut clients[p]));
            if online[p] {
                up[p].extend(clients[p].outgoing());
            }
        }
        Step::Connect(p) if !online[p] => {
            online[p] = true;
            up[p].clear();
            down[p].clear();
            up[p].push_back(clients[p].connect());
        }
        Step::Disconnect(p) => {
            online[p] = false;
            up[p].clear();
            down[p].clear();
        }
        Step::Deliver(r) => {
            let links: Vec<(usize, bool)> = (0..3)
                .flat_map(|p| [(p, true), (p, false)])
                .filter(|&(p, is_up)| {
                    online[p] && if is_up { !up[p].is_empty() } else { !down[p].is_empty() }
                })
                .collect();
            if links.is_empty() {
                return;
            }
            let (p, is_up) = links[r % links.len()];
            if is_up {
                let message = up[p].pop_front().unwrap();
                for reply in hub.receive(p, &world.people[p], message) {
                    let (WireMessage::Sync { target_id, .. } | WireMessage::Peer { target_id, .. }) =
                        &reply
                    else {
                        unreachable!()
                    };
                    let to: usize = target_id.trim_start_matches("replica-").parse().unwrap();
                    // Messages to a replica that went offline are lost, as on a real network.
                    if online[to] {
                        down[to].push_back(reply);
                    }
                }
            } else {
                let message = down[p].pop_front().unwrap();
                let received = clients[p].receive(message).unwrap();
                assert!(received.rejected.is_empty());
                up[p].extend(received.outgoing);
            }
        }
        Step::Connect(_) => {}
    };
    for step in steps {
        apply(step, &mut clients, &mut hub, &mut online, &mut up, &mut down, &mut written);
    }
    // Everyone comes online and the network drains.
    for p in 0..3 {
        apply(
            Step::Disconnect(p),
            &mut clients,
            &mut hub,
            &mut online,
            &mut up,
            &mut down,
            &mut written,
        );
        apply(
            Step::Connect(p),
            &mut clients,
            &mut hub,
            &mut online,
            &mut up,
            &mut down,
            &mut written,
        );
    }
    for i in 0..100_000 {
        if up.iter().chain(down.iter()).all(VecDeque::is_empty) {
            break;
        }
        apply(
            Step::Deliver(i),
            &mut clients,
            &mut hub,
            &mut online,
            &mut up,
            &mut down,
            &mut written,
        );
    }
    // Converged: every replica equals the hub, and nothing written was lost.
    for (p, client) in clients.iter().enumerate() {
        for &d in holds(p) {
            let id = world.docs[d].doc_id();
            assert_eq!(
                heads(client.doc(id).unwrap()),
                heads(&hub.docs[&id].1),
                "replica {p}, document {d}"
            );
        }
    }
    let clinical: Vec<ClinicalRecord> = (0..2)
        .map(|d| autosurgeon::hydrate(&hub.docs[&world.docs[d].doc_id()].1).unwrap())
        .collect();
    let thread: MessageThread = autosurgeon::hydrate(&hub.docs[&world.docs[2].doc_id()].1).unwrap();
    for (doc, entry) in written {
        let key = entry.to_string();
        let found = clinical.iter().any(|c| c.observations.contains_key(&key))
            || thread.messages.contains_key(&key);
        assert!(found, "entry {key} in {doc} was lost");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_whatever_the_order(steps in proptest::collection::vec(step(), 0..80)) {
        run(steps);
    }
}
