//! The same storage story on SQLite and PostgreSQL.

use automerge::{AutoCommit, ReadDoc};
use server::storage::{NewUser, Store, UserRole};
use server::testing::TestDatabase;
use shared::schema::{DocKind, Message};
use shared::status::Side;
use shared::{ClinicId, EntryId, PatientId, UserId, record};

use crate::BACKENDS;

async fn load(store: &Store, kind: &DocKind) -> AutoCommit {
    let stored = store.load_document(kind.doc_id()).await.unwrap().expect("document exists");
    let mut doc = AutoCommit::new();
    for chunk in &stored.chunks {
        doc.load_incremental(chunk).unwrap();
    }
    doc
}

#[tokio::test]
async fn documents_keep_every_change_through_appends_and_compaction() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let patient = PatientId::mint();
        let clinic = ClinicId::mint();
        store.create_patient(patient).await.unwrap();
        store.create_clinic(clinic, "Clinic").await.unwrap();
        let kind = DocKind::MessageThread { patient, clinic };
        let id = store.create_document(&kind).await.unwrap();
        assert_eq!(store.create_document(&kind).await.unwrap(), id, "{backend:?}: creating twice is a no-op");
        assert_eq!(store.document(id).await.unwrap().unwrap().kind, kind);
        assert!(store.document(shared::DocId::mint()).await.unwrap().is_none());
        assert!(store.load_document(shared::DocId::mint()).await.unwrap().is_none());

        let mut doc = load(&store, &kind).await;
        let author = UserId::mint();
        let mut batch = Vec::new();
        for n in 0..30 {
            let heads = doc.get_heads();
            let message = Message {
                author,
                author_name: "Patient".into(),
                side: Side::Patient,
                sent_at: format!("2026-01-01T00:00:{n:02}Z"),
                body: format!("message {n}"),
                read_at: None,
                read_by: None,
            };
            record::add(&mut doc, EntryId::mint(), &message).unwrap();
            batch.push((id, doc.save_after(&heads)));
        }
        store.append_changes(&batch).await.unwrap();
        let stored = store.load_document(id).await.unwrap().unwrap();
        assert_eq!(stored.chunks.len(), 31, "{backend:?}");
        assert!(stored.wants_compaction(), "{backend:?}: 30 incremental chunks outgrow the genesis snapshot");

        let mut reloaded = load(&store, &kind).await;
        assert_eq!(reloaded.get_heads(), doc.get_heads(), "{backend:?}");

        // Compaction folds everything into one snapshot with the same heads.
        let mut full = reloaded.clone();
        store.compact_document(id, &full.save(), stored.last_chunk).await.unwrap();
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
        store.create_patient(patient).await.unwrap();
        store.create_clinic(a, "Clinic A").await.unwrap();
        store.create_clinic(b, "Clinic B").await.unwrap();
        assert_eq!(store.clinic_name(a).await.unwrap().as_deref(), Some("Clinic A"));

        let provider = NewUser {
            id: UserId::mint(),
            display_name: "Dr. Who".into(),
            role: UserRole::Provider,
            patient: None,
            may_message: false,
            clinics: vec![a, b],
        };
        store.create_user(&provider).await.unwrap();
        let caregiver = NewUser {
            id: UserId::mint(),
            display_name: "Carer".into(),
            role: UserRole::Caregiver,
            patient: Some(patient),
            may_message: true,
            clinics: vec![],
        };
        store.create_user(&caregiver).await.unwrap();
        let loaded = store.user(provider.id).await.unwrap().unwrap();
        let mut clinics = vec![a, b];
        clinics.sort();
        assert_eq!(loaded.clinics, clinics, "{backend:?}");
        assert!(loaded.principal().unwrap().is_provider_of(b));
        let carer = store.user(caregiver.id).await.unwrap().unwrap().principal().unwrap();
        assert!(carer.speaks_for(patient), "{backend:?}");
        assert!(store.user(UserId::mint()).await.unwrap().is_none());

        store.grant_consent(patient, a).await.unwrap();
        store.grant_consent(patient, b).await.unwrap();
        assert_eq!(store.consenting_clinics(patient).await.unwrap().len(), 2);
        store.revoke_consent(patient, a).await.unwrap();
        assert_eq!(store.consenting_clinics(patient).await.unwrap(), vec![b], "{backend:?}");
        assert!(store.consenting_patients(a).await.unwrap().is_empty());
        store.grant_consent(patient, a).await.unwrap();
        assert_eq!(store.consenting_patients(a).await.unwrap(), vec![patient], "{backend:?}: granting again restores access");

        let actor = automerge::ActorId::random().to_hex_string();
        assert!(store.bind_actor(&actor, provider.id).await.unwrap());
        assert!(store.bind_actor(&actor, provider.id).await.unwrap(), "rebinding to the owner is a no-op");
        assert!(!store.bind_actor(&actor, caregiver.id).await.unwrap(), "{backend:?}: an actor id has one owner");
        assert_eq!(store.actor_owner(&actor).await.unwrap(), Some(provider.id));

        store.close().await;
        db.drop_database().await;
    }
}
