//! The same storage story on SQLite and PostgreSQL.

use automerge::{AutoCommit, ReadDoc};
use server::storage::{CeremonyKind, NewChunk, NewSession, NewUser, Store};
use shared::api::{AuditAction, UserRole};
use shared::schema::{DocKind, Message};
use shared::status::Side;
use shared::{ClinicId, EntryId, PatientId, UserId, record};
use testkit::TestDatabase;

use crate::BACKENDS;

/// The time these tests store and judge at: storage takes it from its
/// caller, so time passing is a later `now`, not an edited row.
const NOW: i64 = 1_796_000_000_000;

/// Starts a session at `NOW` that never reaches its absolute expiry.
async fn start_session(
    store: &Store,
    id: &str,
    token_hash: &str,
    user: UserId,
    actor_id: &str,
    passkey: Option<uuid::Uuid>,
) {
    let new = NewSession { id, token_hash, user, actor_id, expires_at: i64::MAX, passkey };
    store.create_session(&new, NOW).await.unwrap();
}

async fn load(store: &Store, kind: &DocKind) -> AutoCommit {
    let stored = store.load_document(kind.doc_id()).await.unwrap().expect("document exists");
    AutoCommit::load(&stored.to_automerge().unwrap().save()).unwrap()
}

#[tokio::test]
async fn documents_keep_every_change_through_appends_and_compaction() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let patient = PatientId::mint();
        let clinic = ClinicId::mint();
        store.create_patient(patient, NOW).await.unwrap();
        store.create_clinic(clinic, "Clinic", NOW).await.unwrap();
        let kind = DocKind::MessageThread { patient, clinic };
        let id = store.create_document(&kind, NOW).await.unwrap();
        assert_eq!(
            store.create_document(&kind, NOW).await.unwrap(),
            id,
            "{backend:?}: creating twice is a no-op"
        );
        assert_eq!(store.document(id).await.unwrap().unwrap().kind, kind);
        assert!(store.document(shared::DocId::mint()).await.unwrap().is_none());
        assert!(store.load_document(shared::DocId::mint()).await.unwrap().is_none());

        let mut doc = load(&store, &kind).await;
        let author = UserId::mint();
        let mut batch = Vec::new();
        for n in 0..30 {
            let heads = doc.get_heads();
            let message = Message::new(
                author,
                "Patient",
                Side::Patient,
                format!("2026-01-01T00:00:{n:02}Z"),
                format!("message {n}"),
            );
            record::add(&mut doc, EntryId::mint(), &message).unwrap();
            batch.push((id, doc.save_after(&heads)));
        }
        store.append_changes(&batch, NOW).await.unwrap();
        let stored = store.load_document(id).await.unwrap().unwrap();
        assert_eq!(stored.chunks.len(), 31, "{backend:?}");
        assert!(
            stored.wants_compaction(),
            "{backend:?}: 30 incremental chunks outgrow the genesis snapshot"
        );

        let mut reloaded = load(&store, &kind).await;
        assert_eq!(reloaded.get_heads(), doc.get_heads(), "{backend:?}");

        // Compaction folds everything into one snapshot with the same heads.
        let mut full = reloaded.clone();
        store.compact_document(id, &full.save(), stored.seq, NOW).await.unwrap();
        let compacted = store.load_document(id).await.unwrap().unwrap();
        assert_eq!(compacted.chunks.len(), 1, "{backend:?}");
        assert!(!compacted.wants_compaction());
        let mut after = load(&store, &kind).await;
        assert_eq!(after.get_heads(), doc.get_heads(), "{backend:?}");
        let thread: shared::schema::MessageThread = autosurgeon::hydrate(&after).unwrap();
        assert_eq!(thread.messages.len(), 30, "{backend:?}");
        assert_eq!(after.length(after.get(automerge::ROOT, "messages").unwrap().unwrap().1), 30);

        store.close().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn users_roles_consents_and_actor_bindings() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let patient = PatientId::mint();
        let (a, b) = (ClinicId::mint(), ClinicId::mint());
        store.create_patient(patient, NOW).await.unwrap();
        store.create_clinic(a, "Clinic A", NOW).await.unwrap();
        store.create_clinic(b, "Clinic B", NOW).await.unwrap();
        assert_eq!(store.clinic_name(a).await.unwrap().as_deref(), Some("Clinic A"));

        let provider = NewUser {
            id: UserId::mint(),
            display_name: "Dr. Who".into(),
            role: UserRole::Provider,
            patient: None,
            may_message: false,
            clinics: vec![a, b],
        };
        store.create_user(&provider, NOW).await.unwrap();
        let caregiver = NewUser {
            id: UserId::mint(),
            display_name: "Carer".into(),
            role: UserRole::Caregiver,
            patient: Some(patient),
            may_message: true,
            clinics: vec![],
        };
        store.create_user(&caregiver, NOW).await.unwrap();
        let loaded = store.user(provider.id).await.unwrap().unwrap();
        let mut clinics = vec![a, b];
        clinics.sort();
        assert_eq!(loaded.clinics, clinics, "{backend:?}");
        assert!(loaded.principal().unwrap().is_provider_of(b));
        let carer = store.user(caregiver.id).await.unwrap().unwrap().principal().unwrap();
        assert!(carer.speaks_for(patient), "{backend:?}");
        assert!(store.user(UserId::mint()).await.unwrap().is_none());

        store.grant_consent(patient, a, NOW).await.unwrap();
        store.grant_consent(patient, b, NOW).await.unwrap();
        assert_eq!(store.consenting_clinics(patient).await.unwrap().len(), 2);
        store.revoke_consent(patient, a, NOW).await.unwrap();
        assert_eq!(store.consenting_clinics(patient).await.unwrap(), vec![b], "{backend:?}");
        assert!(store.consenting_patients(a).await.unwrap().is_empty());
        store.grant_consent(patient, a, NOW).await.unwrap();
        assert_eq!(
            store.consenting_patients(a).await.unwrap(),
            vec![patient],
            "{backend:?}: granting again restores access"
        );

        let actor = automerge::ActorId::random().to_hex_string();
        assert!(store.bind_actor(&actor, provider.id, NOW).await.unwrap());
        assert!(
            store.bind_actor(&actor, provider.id, NOW).await.unwrap(),
            "rebinding to the owner is a no-op"
        );
        assert!(
            !store.bind_actor(&actor, caregiver.id, NOW).await.unwrap(),
            "{backend:?}: an actor id has one owner"
        );
        assert_eq!(store.actor_owner(&actor).await.unwrap(), Some(provider.id));

        store.close().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn identity_storage_sessions_passkeys_ceremonies_access_and_audit() {
    use server::storage::{AuditEvent, Ceremony, PasskeyRevocation};

    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let (a, b) = (ClinicId::mint(), ClinicId::mint());
        store.create_clinic(a, "A", NOW).await.unwrap();
        store.create_clinic(b, "B", NOW).await.unwrap();
        let (p1, p2) = (PatientId::mint(), PatientId::mint());
        store.create_patient(p1, NOW).await.unwrap();
        store.create_patient(p2, NOW).await.unwrap();
        let user = |role, patient, clinics: Vec<ClinicId>, name: &str| NewUser {
            id: UserId::mint(),
            display_name: name.into(),
            role,
            patient,
            may_message: false,
            clinics,
        };
        let patient = user(UserRole::Patient, Some(p1), vec![], "P1");
        let carer = user(UserRole::Caregiver, Some(p1), vec![], "C1");
        let provider = user(UserRole::Provider, None, vec![a], "Dr A");
        let admin = user(UserRole::Admin, None, vec![b], "Admin B");
        for u in [&patient, &carer, &provider, &admin] {
            store.create_user(u, NOW).await.unwrap();
        }
        for (p, c) in [(p1, a), (p1, b), (p2, a)] {
            store.grant_consent(p, c, NOW).await.unwrap();
            store
                .create_document(&DocKind::ClinicalRecord { patient: p, clinic: c }, NOW)
                .await
                .unwrap();
            store
                .create_document(&DocKind::MessageThread { patient: p, clinic: c }, NOW)
                .await
                .unwrap();
        }
        store.create_document(&DocKind::PatientRecord { patient: p1 }, NOW).await.unwrap();
        store.create_document(&DocKind::PatientRecord { patient: p2 }, NOW).await.unwrap();

        // Every document, and one that does not exist.
        let mut all: Vec<shared::DocId> = [p1, p2]
            .into_iter()
            .flat_map(|p| {
                [a, b].into_iter().flat_map(move |c| {
                    [
                        DocKind::ClinicalRecord { patient: p, clinic: c },
                        DocKind::MessageThread { patient: p, clinic: c },
                    ]
                })
            })
            .chain([DocKind::PatientRecord { patient: p1 }, DocKind::PatientRecord { patient: p2 }])
            .map(|k| k.doc_id())
            .collect();
        all.push(DocKind::PatientRecord { patient: PatientId::mint() }.doc_id());
        // The list and the lookup by ids apply the same rules.
        let readable = |u: &NewUser| {
            let store = store.clone();
            let id = u.id;
            let all = all.clone();
            async move {
                let record = store.user(id).await.unwrap().unwrap();
                let listed: Vec<DocKind> = store
                    .readable_documents(&record)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|d| d.kind)
                    .collect();
                let looked_up: Vec<DocKind> = store
                    .readable_among(&record, &all)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|d| d.kind)
                    .collect();
                assert_eq!(listed, looked_up, "{backend:?}: list and lookup agree");
                listed
            }
        };
        assert_eq!(readable(&patient).await.len(), 5, "{backend:?}");
        assert_eq!(readable(&carer).await.len(), 5, "{backend:?}");
        let seen = readable(&provider).await;
        assert_eq!(
            seen.len(),
            7,
            "{backend:?}: P1 record, 2 clinical, thread A; P2 record, clinical A, thread A: {seen:?}"
        );
        assert!(!seen.contains(&DocKind::MessageThread { patient: p1, clinic: b }));
        assert_eq!(
            readable(&admin).await,
            vec![DocKind::PatientRecord { patient: p1 }],
            "{backend:?}"
        );
        let version = store.access_version().await.unwrap();
        store.revoke_consent(p2, a, NOW).await.unwrap();
        assert_eq!(
            store.access_version().await.unwrap(),
            version + 1,
            "{backend:?}: revoking consent moves the access version"
        );
        assert_eq!(readable(&provider).await.len(), 4, "{backend:?}");
        // What a clinic read before the patient withdrew consent is named as
        // such; documents it never read are not.
        let provider_record = store.user(provider.id).await.unwrap().unwrap();
        let admin_record = store.user(admin.id).await.unwrap().unwrap();
        let p2_clinical = DocKind::ClinicalRecord { patient: p2, clinic: a }.doc_id();
        let withdrawn = store.withdrawn_document(&provider_record, p2_clinical).await.unwrap();
        assert_eq!(
            withdrawn.map(|d| d.kind),
            Some(DocKind::ClinicalRecord { patient: p2, clinic: a }),
            "{backend:?}"
        );
        let p1_thread_b = DocKind::MessageThread { patient: p1, clinic: b }.doc_id();
        assert!(
            store.withdrawn_document(&provider_record, p1_thread_b).await.unwrap().is_none(),
            "{backend:?}"
        );
        assert!(
            store
                .withdrawn_document(&admin_record, DocKind::PatientRecord { patient: p2 }.doc_id())
                .await
                .unwrap()
                .is_none()
        );
        let patient_record = store.user(patient.id).await.unwrap().unwrap();
        assert!(store.withdrawn_document(&patient_record, p2_clinical).await.unwrap().is_none());

        // Passkeys: the last one cannot be revoked.
        let k1 = store.add_passkey(patient.id, "cred-1", "Phone", "{}", None, NOW).await.unwrap();
        let k2 =
            store.add_passkey(patient.id, "cred-2", "Laptop", "{}", Some(k1), NOW).await.unwrap();
        assert!(
            store.add_passkey(carer.id, "cred-1", "Dup", "{}", None, NOW).await.is_err(),
            "{backend:?}: credential ids are unique"
        );
        assert_eq!(
            store.passkeys(patient.id).await.unwrap()[1].added_with,
            Some(k1),
            "{backend:?}"
        );
        // Sessions signed in with a passkey end when it is revoked; others stay.
        start_session(&store, "p1", "hash-p1", patient.id, "cc", Some(k1)).await;
        start_session(&store, "p2", "hash-p2", patient.id, "dd", Some(k2)).await;
        assert!(!store.rename_passkey(carer.id, k1, "Mine").await.unwrap());
        assert!(store.rename_passkey(patient.id, k1, "Old phone").await.unwrap());
        assert_eq!(
            store.revoke_passkey(carer.id, k1, NOW).await.unwrap(),
            PasskeyRevocation::NotFound
        );
        assert_eq!(
            store.revoke_passkey(patient.id, k1, NOW).await.unwrap(),
            PasskeyRevocation::Revoked { sessions: vec!["p1".into()] },
            "{backend:?}"
        );
        assert!(
            store.session_by_token("hash-p1", 60_000, NOW).await.unwrap().is_none(),
            "{backend:?}"
        );
        assert!(!store.session_live("p1", 60_000, NOW).await.unwrap());
        let live = store.session_by_token("hash-p2", 60_000, NOW).await.unwrap().unwrap();
        assert_eq!(live.passkey, Some(k2), "{backend:?}");
        assert!(live.verified_at > 0, "a passkey sign-in counts as a fresh use of it");
        assert!(store.session_live("p2", 60_000, NOW).await.unwrap());
        // Idle: live until `idle` after it was last seen, not after.
        assert!(store.session_live("p2", 60_000, NOW + 59_999).await.unwrap());
        assert!(!store.session_live("p2", 60_000, NOW + 60_000).await.unwrap(), "{backend:?}");
        assert_eq!(
            store.replaced_at("cred-1").await.unwrap(),
            None,
            "removed by its owner, not replaced"
        );
        assert_eq!(
            store.revoke_passkey(patient.id, k2, NOW).await.unwrap(),
            PasskeyRevocation::LastOne,
            "{backend:?}"
        );
        assert!(store.passkey_by_credential("cred-1").await.unwrap().is_none());
        assert_eq!(store.passkey_by_credential("cred-2").await.unwrap().unwrap().user, patient.id);
        store.passkey_used(k2, Some("{\"counter\":2}"), NOW).await.unwrap();
        assert_eq!(store.passkeys(patient.id).await.unwrap()[0].name, "Laptop");

        // Ceremonies are taken once.
        let ceremony = Ceremony {
            id_hash: "h".into(),
            kind: CeremonyKind::Login,
            user: None,
            enrollment_hash: None,
            passkey_name: None,
            state: "{}".into(),
            expires_at: i64::MAX,
        };
        store.put_ceremony(&ceremony, NOW).await.unwrap();
        assert_eq!(
            store.take_ceremony("h").await.unwrap().unwrap().kind,
            CeremonyKind::Login,
            "{backend:?}"
        );
        assert!(store.take_ceremony("h").await.unwrap().is_none());
        // Ceremonies expired by the time another starts are dropped.
        let stale = Ceremony { id_hash: "old".into(), expires_at: NOW + 1, ..ceremony.clone() };
        store.put_ceremony(&stale, NOW).await.unwrap();
        let new = Ceremony { id_hash: "new".into(), ..ceremony.clone() };
        store.put_ceremony(&new, NOW + 2).await.unwrap();
        assert!(store.take_ceremony("old").await.unwrap().is_none(), "{backend:?}");
        assert!(store.take_ceremony("new").await.unwrap().is_some());

        // Enrollment links are used once; using one cancels the user's
        // other open links; a second enrollment replaces the passkeys and
        // ends the sessions the account had.
        store.create_enrollment("t", carer.id, Some(patient.id), i64::MAX, NOW).await.unwrap();
        store.create_enrollment("t2", carer.id, Some(patient.id), i64::MAX, NOW).await.unwrap();
        store.create_enrollment("t3", carer.id, None, i64::MAX, NOW).await.unwrap();
        assert_eq!(store.enrollment_user("t", NOW).await.unwrap(), Some(carer.id));
        assert_eq!(store.open_enrollments(carer.id, NOW).await.unwrap().len(), 3, "{backend:?}");
        let issuers: Vec<Option<String>> = store
            .open_enrollments(carer.id, NOW)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.issued_by_name)
            .collect();
        assert!(
            issuers.contains(&Some("P1".into())) && issuers.contains(&None),
            "{backend:?}: {issuers:?}"
        );
        let first = store
            .complete_enrollment("t", carer.id, "cred-c1", "Phone", "{}", NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.replaced, first.issued_by), (0, Some(patient.id)), "{backend:?}");
        assert!(
            store
                .complete_enrollment("t", carer.id, "cred-c2", "Phone", "{}", NOW)
                .await
                .unwrap()
                .is_none(),
            "{backend:?}"
        );
        assert_eq!(store.enrollment_user("t", NOW).await.unwrap(), None);
        assert_eq!(
            store.enrollment_user("t2", NOW).await.unwrap(),
            None,
            "{backend:?}: made moot by the link used"
        );
        start_session(&store, "c0", "hash-c0", carer.id, "ee", Some(first.passkey)).await;
        store.create_enrollment("t4", carer.id, Some(patient.id), i64::MAX, NOW).await.unwrap();
        let again = store
            .complete_enrollment("t4", carer.id, "cred-c3", "Laptop", "{}", NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.replaced, again.ended_sessions.clone()),
            (1, vec!["c0".to_owned()]),
            "{backend:?}"
        );
        assert!(store.replaced_at("cred-c1").await.unwrap().is_some(), "{backend:?}");
        assert!(store.passkey_by_credential("cred-c1").await.unwrap().is_none());
        assert_eq!(store.passkeys(carer.id).await.unwrap().len(), 1);
        // The person a link is for can cancel it.
        store.create_enrollment("t5", carer.id, Some(patient.id), i64::MAX, NOW).await.unwrap();
        assert_eq!(store.cancel_enrollments(carer.id, NOW).await.unwrap(), 1, "{backend:?}");
        assert_eq!(store.enrollment_user("t5", NOW).await.unwrap(), None);
        assert!(
            store
                .complete_enrollment("t5", carer.id, "cred-c4", "Tablet", "{}", NOW)
                .await
                .unwrap()
                .is_none(),
            "{backend:?}"
        );

        // A link works until its expiry, not at it.
        store.create_enrollment("t6", carer.id, None, NOW + 1_000, NOW).await.unwrap();
        assert_eq!(store.enrollment_user("t6", NOW + 999).await.unwrap(), Some(carer.id));
        assert_eq!(store.enrollment_user("t6", NOW + 1_000).await.unwrap(), None, "{backend:?}");
        assert!(store.open_enrollments(carer.id, NOW + 1_000).await.unwrap().is_empty());
        let late =
            store.complete_enrollment("t6", carer.id, "cred-c5", "Tablet", "{}", NOW + 1_000);
        assert!(late.await.unwrap().is_none(), "{backend:?}");

        // Sessions end on revocation of the session, or of the user.
        start_session(&store, "s1", "hash1", carer.id, "aa", None).await;
        start_session(&store, "s2", "hash2", carer.id, "bb", None).await;
        assert_eq!(
            store.session_by_token("hash1", 60_000, NOW).await.unwrap().unwrap().user,
            carer.id
        );
        store.revoke_session("s1", NOW).await.unwrap();
        assert!(store.session_by_token("hash1", 60_000, NOW).await.unwrap().is_none());
        assert_eq!(store.caregivers(p1).await.unwrap().len(), 1);
        let mut live = store
            .live_sessions(&["s1".into(), "s2".into(), "nope".into()], 60_000, NOW)
            .await
            .unwrap();
        live.sort();
        assert_eq!(live, vec!["s2".to_owned()], "{backend:?}");
        let version = store.access_version().await.unwrap();
        assert_eq!(
            store.revoke_user(carer.id, NOW).await.unwrap(),
            vec!["s2".to_owned()],
            "{backend:?}"
        );
        assert_eq!(
            store.access_version().await.unwrap(),
            version + 1,
            "{backend:?}: revoking a user moves the access version"
        );
        assert!(store.live_sessions(&["s2".into()], 60_000, NOW).await.unwrap().is_empty());
        assert!(
            store.session_by_token("hash2", 60_000, NOW).await.unwrap().is_none(),
            "{backend:?}"
        );
        assert!(store.caregivers(p1).await.unwrap().is_empty());
        assert!(
            readable(&carer).await.is_empty(),
            "{backend:?}: a revoked caregiver reads nothing"
        );

        // The audit trail, newest first, with names.
        for action in [AuditAction::DocumentRead, AuditAction::ChangeAccepted] {
            let event = AuditEvent {
                user: Some(provider.id),
                session: Some("s9"),
                action,
                patient: Some(p1),
                doc: Some(DocKind::PatientRecord { patient: p1 }.doc_id()),
                detail: "",
            };
            store.audit(&event, NOW).await.unwrap();
        }
        let trail = store.patient_audit(p1, 10).await.unwrap();
        assert_eq!(trail.len(), 2, "{backend:?}");
        assert_eq!(trail[0].action, AuditAction::ChangeAccepted);
        assert_eq!(trail[0].user_name.as_deref(), Some("Dr A"));
        assert_eq!(trail[0].role, Some(UserRole::Provider));
        assert!(store.patient_audit(p2, 10).await.unwrap().is_empty());

        store.close().await;
        db.drop_database().await;
    }
}

/// A batch touching many documents (more than one statement's worth, one
/// of them several times) gives each document consecutive numbers after
/// its stored one, in batch order; batched compaction continues them; and
/// writers with overlapping batches in opposite orders (two instances on
/// PostgreSQL) neither deadlock nor leave gaps.
#[tokio::test]
async fn batches_number_each_document_consecutively() {
    use std::collections::BTreeMap;

    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let clinic = ClinicId::mint();
        store.create_clinic(clinic, "Clinic", NOW).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..700 {
            let patient = PatientId::mint();
            store.create_patient(patient, NOW).await.unwrap();
            ids.push(
                store
                    .create_document(&DocKind::ClinicalRecord { patient, clinic }, NOW)
                    .await
                    .unwrap(),
            );
        }
        // Each document's genesis and one change of it, as stored bytes.
        let genesis =
            DocKind::ClinicalRecord { patient: PatientId::mint(), clinic }.genesis().save();

        let stored_seq = |store: Store, ids: Vec<shared::DocId>| async move {
            store.document_seqs(&ids).await.unwrap().into_iter().collect::<BTreeMap<_, _>>()
        };
        let mut batch: Vec<(shared::DocId, Vec<u8>)> =
            ids.iter().rev().map(|id| (*id, genesis.clone())).collect();
        batch.push((ids[3], genesis.clone()));
        batch.push((ids[3], genesis.clone()));
        let seqs = store.append_changes(&batch, NOW).await.unwrap();
        let mut expected: BTreeMap<shared::DocId, i64> = BTreeMap::new();
        for ((id, _), seq) in batch.iter().zip(&seqs) {
            let next = expected.entry(*id).or_insert(0);
            *next += 1;
            assert_eq!(
                *seq, *next,
                "{backend:?}: consecutive numbers per document, in batch order"
            );
        }
        assert_eq!(stored_seq(store.clone(), ids.clone()).await, expected, "{backend:?}");
        assert_eq!(store.load_document(ids[3]).await.unwrap().unwrap().seq, 3);
        let loaded = store.load_documents(&ids).await.unwrap();
        assert_eq!(loaded.len(), ids.len(), "{backend:?}");
        assert!(loaded.values().all(|d| d.chunks.len() == 2 || d.seq == 3));
        assert!(
            store.append_changes(&[(shared::DocId::mint(), genesis.clone())], NOW).await.is_err(),
            "{backend:?}: unknown document"
        );

        // Compacting many documents at once: each snapshot takes the next number.
        let compact: Vec<(shared::DocId, &[u8], i64)> =
            ids.iter().map(|id| (*id, genesis.as_slice(), expected[id])).collect();
        let snapshot_seqs = store.compact_documents(&compact, NOW).await.unwrap();
        for ((id, _, through), seq) in compact.iter().zip(&snapshot_seqs) {
            assert_eq!(*seq, through + 1, "{backend:?}: {id}");
        }
        let loaded = store.load_documents(&ids).await.unwrap();
        assert!(
            loaded.values().all(|d| d.chunks.len() == 1),
            "{backend:?}: only the snapshots are left"
        );

        // A snapshot stored with changes in one batch replaces only the
        // chunks numbered up to what it holds: a chunk another instance
        // stored after that is kept.
        let (doc, other_doc) = (ids[0], ids[1]);
        let held = store.load_document(doc).await.unwrap().unwrap().seq;
        let theirs = store.append_changes(&[(doc, genesis.clone())], NOW).await.unwrap()[0];
        let batch = [
            NewChunk { doc: other_doc, data: &genesis, snapshot_through: None, expected_seq: None },
            NewChunk { doc, data: &genesis, snapshot_through: Some(held), expected_seq: None },
        ];
        let seqs = store.store_chunks(&batch, NOW).await.unwrap();
        assert_eq!(seqs[1], theirs + 1, "{backend:?}");
        let kept: Vec<i64> =
            store.chunks_after(doc, 0).await.unwrap().iter().map(|(seq, _)| *seq).collect();
        assert_eq!(kept, vec![theirs, theirs + 1], "{backend:?}: their chunk and the snapshot");
        assert_eq!(store.load_document(doc).await.unwrap().unwrap().snapshot_bytes, genesis.len());

        // Two writers (pools) at once, overlapping batches listed in opposite orders.
        let other = db.store().await;
        let before = stored_seq(store.clone(), ids.clone()).await;
        let forward: Vec<_> = ids.iter().map(|id| (*id, genesis.clone())).collect();
        let backward: Vec<_> = forward.iter().rev().cloned().collect();
        let writers: Vec<_> = (0..4)
            .map(|n| {
                let (store, batch) = if n % 2 == 0 {
                    (store.clone(), forward.clone())
                } else {
                    (other.clone(), backward.clone())
                };
                tokio::spawn(async move {
                    let seqs =
                        store.append_changes(&batch, NOW).await.expect("no deadlock, no error");
                    batch.into_iter().map(|(id, _)| id).zip(seqs).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut taken: BTreeMap<shared::DocId, Vec<i64>> = BTreeMap::new();
        for writer in writers {
            for (id, seq) in writer.await.unwrap() {
                taken.entry(id).or_default().push(seq);
            }
        }
        let after = stored_seq(store.clone(), ids.clone()).await;
        for id in &ids {
            assert_eq!(after[id], before[id] + 4, "{backend:?}");
            let stored = store.chunks_after(*id, before[id]).await.unwrap();
            let numbers: Vec<i64> = stored.iter().map(|(seq, _)| *seq).collect();
            assert_eq!(
                numbers,
                (before[id] + 1..=before[id] + 4).collect::<Vec<_>>(),
                "{backend:?}: gap-free"
            );
            let mut numbers_taken = taken[id].clone();
            numbers_taken.sort();
            assert_eq!(
                numbers_taken, numbers,
                "{backend:?}: each writer was told the numbers its chunks took"
            );
        }
        other.close().await;
        store.close().await;
        db.drop_database().await;
    }
}
