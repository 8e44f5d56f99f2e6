//! A small record, the same on every run (fixed ids, actors and times), the
//! people who write to it, and the real frames their replicas send: the
//! seeds of the corpus.

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, Automerge, ROOT, ReadDoc};
use shared::record::{self, Entry};
use shared::schema::{
    Demographics, DocKind, Message, Observation, Prescription, Provenance, RefillRequest,
};
use shared::status::{PrescriptionStatus, RefillStatus, ResultStatus, Side};
use shared::sync::{SyncClient, WireMessage, encode_doc_id};
use shared::{ClinicId, DocId, EntryId, PatientId, Principal, Role, UserId};
use uuid::Uuid;

const fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 | n)
}

pub const PATIENT: PatientId = PatientId::from_uuid(id(0xa01));
pub const CLINIC: ClinicId = ClinicId::from_uuid(id(0xc01));
pub const OTHER_CLINIC: ClinicId = ClinicId::from_uuid(id(0xc02));
pub const PROVIDER: UserId = UserId::from_uuid(id(0xb01));
pub const PATIENT_USER: UserId = UserId::from_uuid(id(0xb02));
pub const CAREGIVER: UserId = UserId::from_uuid(id(0xb03));
pub const OUTSIDER: UserId = UserId::from_uuid(id(0xb04));
pub const RESULT: EntryId = EntryId::from_uuid(id(0xe01));
pub const PRESCRIPTION: EntryId = EntryId::from_uuid(id(0xe02));
pub const MESSAGE: EntryId = EntryId::from_uuid(id(0xe03));
pub const REFILL: EntryId = EntryId::from_uuid(id(0xe04));

/// One document as one person writes to it.
pub struct Target {
    pub kind: DocKind,
    pub doc: Automerge,
    pub who: Principal,
}

pub struct World {
    pub docs: Vec<(DocKind, Automerge)>,
    pub people: Vec<(&'static str, Principal)>,
}

/// Everyone's directory name, and the clinics': names on entries must be
/// the directory's, so the seeds carry these.
const NAME: &str = "Dr. Okafor";
const CLINIC_NAME: &str = "Riverside";

fn person(user: UserId, role: Role) -> Principal {
    Principal {
        user,
        role,
        name: NAME.into(),
        clinic_names: vec![(CLINIC, CLINIC_NAME.into()), (OTHER_CLINIC, CLINIC_NAME.into())],
        colleagues: vec![],
    }
}

fn actor(n: u8) -> ActorId {
    ActorId::from([n; 16].as_slice())
}

pub fn provenance(by: UserId) -> Provenance {
    Provenance {
        clinic: CLINIC,
        clinic_name: CLINIC_NAME.into(),
        recorder: by,
        recorder_name: NAME.into(),
        recorded: "2026-11-01T09:00:00Z".into(),
    }
}

pub fn observation(by: UserId, value: f64) -> Observation {
    Observation {
        report: None,
        loinc: "2345-7".into(),
        display: "Glucose".into(),
        value_quantity: Some(value),
        value_string: None,
        unit: Some("mg/dL".into()),
        reference_low: Some(70.0),
        reference_high: Some(99.0),
        effective: "2026-11-01T08:00:00Z".into(),
        status: ResultStatus::Final,
        replaces: None,
        provenance: provenance(by),
        status_reason: None,
        status_by: None,
        status_at: None,
        interpretation: None,
    }
}

pub fn message(by: UserId, side: Side, body: &str) -> Message {
    Message::new(by, NAME, side, "2026-11-02T10:00:00Z", body)
}

fn at() -> automerge::transaction::CommitOptions {
    automerge::transaction::CommitOptions::default().with_time(1_764_000_000)
}

fn add<E: Entry>(doc: &mut Automerge, by: u8, id: EntryId, entry: &E) {
    doc.set_actor(actor(by));
    let mut tx = doc.transaction();
    record::add(&mut tx, id, entry).unwrap();
    tx.commit_with(at());
}

impl World {
    pub fn new() -> Self {
        let clinical = DocKind::ClinicalRecord { patient: PATIENT, clinic: CLINIC };
        let thread = DocKind::MessageThread { patient: PATIENT, clinic: CLINIC };
        let patient_record = DocKind::PatientRecord { patient: PATIENT };

        let mut c = clinical.genesis();
        add(&mut c, 1, RESULT, &observation(PROVIDER, 180.0));
        add(&mut c, 1, EntryId::from_uuid(id(0xe11)), &observation(PROVIDER, 95.0));
        let prescription = Prescription {
            rxnorm: "861007".into(),
            display: "metformin 500 MG Oral Tablet".into(),
            dosage: "1 tablet twice daily".into(),
            quantity: 60,
            refills_allowed: 3,
            authored: "2026-11-01T09:00:00Z".into(),
            status: PrescriptionStatus::Active,
            provenance: provenance(PROVIDER),
            status_reason: None,
            status_by: None,
            status_at: None,
            override_reason: None,
        };
        add(&mut c, 1, PRESCRIPTION, &prescription);

        let mut t = thread.genesis();
        add(&mut t, 2, MESSAGE, &message(PATIENT_USER, Side::Patient, "Is my result normal?"));
        add(
            &mut t,
            1,
            EntryId::from_uuid(id(0xe13)),
            &message(PROVIDER, Side::Clinic, "It is a little high."),
        );

        let mut p = patient_record.genesis();
        p.set_actor(actor(2));
        let mut tx = p.transaction();
        let demographics = Demographics {
            family: Some("Santos".into()),
            given: Some("Maria".into()),
            ..Default::default()
        };
        record::set_demographics(&mut tx, &demographics).unwrap();
        tx.commit_with(at());
        let refill = RefillRequest {
            prescription: PRESCRIPTION,
            clinic: CLINIC,
            requested_by: PATIENT_USER,
            requested_at: "2026-11-03T10:00:00Z".into(),
            note: "Running low".into(),
            status: RefillStatus::Requested,
            decided_by: None,
            decided_at: None,
            decision_note: None,
        };
        add(&mut p, 2, REFILL, &refill);

        let people = vec![
            ("provider", person(PROVIDER, Role::Provider { clinics: vec![CLINIC] })),
            ("patient", person(PATIENT_USER, Role::Patient { patient: PATIENT })),
            (
                "caregiver",
                person(CAREGIVER, Role::Caregiver { patient: PATIENT, may_message: false }),
            ),
            ("outsider", person(OUTSIDER, Role::Provider { clinics: vec![OTHER_CLINIC] })),
        ];
        Self { docs: vec![(clinical, c), (thread, t), (patient_record, p)], people }
    }

    /// The document `id` as the person a frame's sender id names (its
    /// first word: `provider`, `patient`, `caregiver`, `outsider`; others
    /// are the patient).
    pub fn target(&self, id: DocId, sender: &str) -> Option<Target> {
        let (kind, doc) = self.docs.iter().find(|(kind, _)| kind.doc_id() == id)?;
        let who = self
            .people
            .iter()
            .find(|(name, _)| sender.starts_with(name))
            .unwrap_or(&self.people[1])
            .1
            .clone();
        Some(Target { kind: *kind, doc: doc.clone(), who })
    }

    pub fn doc(&self, n: usize) -> (&DocKind, &Automerge) {
        let (kind, doc) = &self.docs[n % self.docs.len()];
        (kind, doc)
    }

    /// Real frames: what replicas of each person send while syncing and
    /// editing, and the attack frames the server must refuse.
    pub fn seeds(&self) -> Vec<(String, Vec<u8>)> {
        let mut seeds = Vec::new();
        let push = |seeds: &mut Vec<(String, Vec<u8>)>, name: &str, message: &WireMessage| {
            seeds.push((name.to_owned(), message.encode()))
        };
        type Edit = Box<dyn Fn(&mut Automerge)>;
        let edits: Vec<(&str, usize, Edit)> = vec![
            (
                "provider-adds-result",
                0,
                Box::new(|doc| {
                    add(doc, 9, EntryId::from_uuid(id(0xf01)), &observation(PROVIDER, 101.0))
                }),
            ),
            (
                "provider-marks-result-entered-in-error",
                0,
                Box::new(|doc| {
                    doc.set_actor(actor(9));
                    let mut tx = doc.transaction();
                    record::change_status(
                        &mut tx,
                        shared::schema::Collection::Observations,
                        RESULT,
                        "entered-in-error",
                        "wrong patient",
                        PROVIDER,
                        "2026-11-04T09:00:00Z",
                    )
                    .unwrap();
                    tx.commit_with(at());
                }),
            ),
            (
                "provider-stops-prescription",
                0,
                Box::new(|doc| {
                    doc.set_actor(actor(9));
                    let mut tx = doc.transaction();
                    record::change_status(
                        &mut tx,
                        shared::schema::Collection::Prescriptions,
                        PRESCRIPTION,
                        "stopped",
                        "side effects",
                        PROVIDER,
                        "2026-11-04T09:00:00Z",
                    )
                    .unwrap();
                    tx.commit_with(at());
                }),
            ),
            (
                "patient-edits-result",
                0,
                Box::new(|doc| {
                    doc.set_actor(actor(8));
                    let mut tx = doc.transaction();
                    use automerge::transaction::Transactable;
                    let obs = tx.get(ROOT, "observations").unwrap().unwrap().1;
                    let entry = tx.get(&obs, RESULT.to_string()).unwrap().unwrap().1;
                    tx.put(&entry, "value_quantity", 5.0).unwrap();
                    tx.commit_with(at());
                }),
            ),
            (
                "patient-sends-message",
                1,
                Box::new(|doc| {
                    add(
                        doc,
                        8,
                        EntryId::from_uuid(id(0xf02)),
                        &message(PATIENT_USER, Side::Patient, "Thank you"),
                    )
                }),
            ),
            (
                "provider-marks-message-read",
                1,
                Box::new(|doc| {
                    doc.set_actor(actor(9));
                    let mut tx = doc.transaction();
                    record::mark_read(&mut tx, MESSAGE, PROVIDER, "2026-11-04T09:00:00Z").unwrap();
                    tx.commit_with(at());
                }),
            ),
            (
                "patient-requests-refill",
                2,
                Box::new(|doc| {
                    let refill = RefillRequest {
                        prescription: PRESCRIPTION,
                        clinic: CLINIC,
                        requested_by: PATIENT_USER,
                        requested_at: "2026-11-05T10:00:00Z".into(),
                        note: "Again".into(),
                        status: RefillStatus::Requested,
                        decided_by: None,
                        decided_at: None,
                        decision_note: None,
                    };
                    add(doc, 8, EntryId::from_uuid(id(0xf03)), &refill)
                }),
            ),
            (
                "provider-approves-refill",
                2,
                Box::new(|doc| {
                    doc.set_actor(actor(9));
                    let mut tx = doc.transaction();
                    record::decide_refill(
                        &mut tx,
                        REFILL,
                        RefillStatus::Approved,
                        PROVIDER,
                        "2026-11-05T11:00:00Z",
                        "ok",
                    )
                    .unwrap();
                    tx.commit_with(at());
                }),
            ),
            (
                "patient-updates-demographics",
                2,
                Box::new(|doc| {
                    doc.set_actor(actor(8));
                    let mut tx = doc.transaction();
                    let d = Demographics {
                        phone: Some("+1 555 0100".into()),
                        family: Some("Santos".into()),
                        given: Some("Maria".into()),
                        ..Default::default()
                    };
                    record::set_demographics(&mut tx, &d).unwrap();
                    tx.commit_with(at());
                }),
            ),
        ];
        for (name, n, edit) in edits {
            let (kind, base) = self.doc(n);
            let who = name.split('-').next().unwrap();
            let mut client = SyncClient::new(format!("{who}-replica"));
            let id = kind.doc_id();
            // A replica with nothing asks for the document.
            client.insert(id, Automerge::new());
            push(&mut seeds, "join", &client.connect());
            for m in client.receive(peer(client.peer_id())).unwrap().outgoing {
                push(&mut seeds, &format!("{who}-request"), &m);
            }
            // A replica level with the server: heads and Bloom filters,
            // then its edit.
            let mut level = SyncClient::new(format!("{who}-replica"));
            level.insert(id, base.clone());
            let mut pending = level.receive(peer(level.peer_id())).unwrap().outgoing;
            let mut server_state = sync::State::new();
            let mut server_doc = base.clone();
            for _ in 0..4 {
                for m in pending.drain(..) {
                    if let WireMessage::Sync { data, .. } = &m {
                        server_doc
                            .receive_sync_message(
                                &mut server_state,
                                sync::Message::decode(data).unwrap(),
                            )
                            .unwrap();
                    }
                    push(&mut seeds, &format!("{who}-heads"), &m);
                }
                if let Some(reply) = server_doc.generate_sync_message(&mut server_state) {
                    let reply = WireMessage::Sync {
                        sender_id: "server".into(),
                        target_id: level.peer_id().to_owned(),
                        document_id: encode_doc_id(id),
                        data: serde_bytes::ByteBuf::from(reply.encode()),
                    };
                    pending = level.receive(reply).unwrap().outgoing;
                }
            }
            edit(level.doc_mut(id).unwrap());
            for m in level.outgoing() {
                push(&mut seeds, name, &m);
            }
        }
        // Changes the policy passes and Automerge 0.12 panics on when
        // applying (the server catches it and closes the connection).
        let (_, message_frame) = seeds
            .iter()
            .find(|(name, _)| name == "patient-sends-message")
            .expect("a message seed")
            .clone();
        if let Ok(WireMessage::Sync { sender_id, document_id, data, .. }) =
            WireMessage::decode(&message_frame)
        {
            let msg = crate::mutate::Msg::parse(&data).expect("a sync message");
            let patch = |edit: &dyn Fn(&mut crate::mutate::Change)| {
                let mut msg = msg.clone();
                let mut chunk = crate::mutate::Chunk::split(&msg.changes[0]).remove(0);
                let mut change = crate::mutate::Change::parse(&chunk.data).expect("a change");
                edit(&mut change);
                chunk.data = change.encode();
                chunk.fix_checksum();
                msg.changes[0] = chunk.encode();
                crate::mutate::frame(false, sender_id.clone(), document_id.clone(), msg.encode())
            };
            seeds.push((
                "automerge-panics-unknown-other-actor".into(),
                patch(&|c| c.others.push(vec![0x77; 16])),
            ));
            seeds.push(("automerge-panics-new-actor-at-seq-2".into(), patch(&|c| c.seq = 2)));
            // Sequence numbers start at 1 (a mutation of this seed once
            // made the policy's own check subtract below 0).
            seeds.push(("change-numbered-0".into(), patch(&|c| c.seq = 0)));
        }
        // The attacks the bounds refuse.
        let clinical = encode_doc_id(self.docs[0].0.doc_id());
        let attack = |data: Vec<u8>| WireMessage::Sync {
            sender_id: "patient-attacker".into(),
            target_id: "server".into(),
            document_id: clinical.clone(),
            data: serde_bytes::ByteBuf::from(data),
        };
        let bloom = |entries: u64, bits: u64, probes: u64, body: &[u8]| {
            let mut b = Vec::new();
            crate::mutate::uleb(&mut b, entries);
            crate::mutate::uleb(&mut b, bits);
            crate::mutate::uleb(&mut b, probes);
            b.extend_from_slice(body);
            b
        };
        let have = |blooms: Vec<Vec<u8>>| {
            crate::mutate::encode_message::<Vec<u8>>(
                0x42,
                &[],
                &[],
                &blooms.into_iter().map(|b| (vec![], b)).collect::<Vec<_>>(),
                &[],
                None,
            )
        };
        push(
            &mut seeds,
            "attack-bloom-probes",
            &attack(have(vec![bloom(1, 10, u64::from(u32::MAX), &[0, 0])])),
        );
        push(&mut seeds, "attack-bloom-zero-bits", &attack(have(vec![bloom(5, 0, 7, &[])])));
        push(
            &mut seeds,
            "attack-bloom-many-haves",
            &attack(have((0..40).map(|_| bloom(1, 8, 2_000_000, &[0x5a])).collect())),
        );
        push(
            &mut seeds,
            "bloom-at-the-limits",
            &attack(have((0..4).map(|_| bloom(25, 32, 16, &[0u8; 100])).collect())),
        );
        // A whole document where changes belong.
        let (_, doc) = self.doc(0);
        push(
            &mut seeds,
            "attack-document-chunk",
            &attack(crate::mutate::encode_message(
                0x43,
                &doc.get_heads(),
                &[],
                &[],
                &[doc.save()],
                None,
            )),
        );
        seeds
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

fn peer(target: &str) -> WireMessage {
    WireMessage::Peer {
        sender_id: "server".into(),
        target_id: target.to_owned(),
        selected_protocol_version: "1".into(),
    }
}

/// Messages in the thread, for tests.
pub fn message_count(doc: &Automerge) -> usize {
    doc.get(ROOT, Message::COLLECTION.code()).ok().flatten().map_or(0, |(_, obj)| doc.length(&obj))
}
