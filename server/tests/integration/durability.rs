//! Kill -9 during a catch-up: everything acknowledged survives.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use automerge::{ActorId, ChangeHash};
use server::config::{Config, DatabaseUrl};
use server::storage::{NewUser, Store};
use shared::api::UserRole;
use shared::schema::DocKind;
use shared::sync::SyncClient;
use shared::{ClinicId, DocId, EntryId, PatientId, UserId, record};
use testkit::Replica;
use testkit::TestDatabase;

use crate::BACKENDS;

const DOCS: usize = 300;
const CHANGES: usize = 5;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The real `portal serve` process.
fn spawn_portal(database_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_portal"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--database-url", database_url])
        .args(["--public-url", &format!("http://localhost:{port}"), "--static-dir", "/nonexistent"])
        .env("PORTAL_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start portal")
}

async fn wait_healthy(port: u16) {
    for _ in 0..200 {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("portal did not become healthy on port {port}");
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

async fn stored_heads(store: &Store, id: DocId) -> Vec<ChangeHash> {
    sorted(store.load_document(id).await.unwrap().unwrap().to_automerge().unwrap().get_heads())
}

#[tokio::test]
async fn acknowledged_changes_survive_kill_9_and_the_replica_converges() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let now = server::Clock::default().now_ms();
        let clinic = ClinicId::mint();
        let provider = UserId::mint();
        store.create_clinic(clinic, "Clinic", now).await.unwrap();
        let new = NewUser {
            id: provider,
            display_name: "Dr. P".into(),
            role: UserRole::Provider,
            patient: None,
            may_message: false,
            clinics: vec![clinic],
        };
        store.create_user(&new, now).await.unwrap();
        let mut kinds = Vec::new();
        for _ in 0..DOCS {
            let patient = PatientId::mint();
            store.create_patient(patient, now).await.unwrap();
            store.grant_consent(patient, clinic, now).await.unwrap();
            let kind = DocKind::ClinicalRecord { patient, clinic };
            store.create_document(&kind, now).await.unwrap();
            kinds.push(kind);
        }
        let port = free_port();
        let config = Config {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            database_url: db.url.parse::<DatabaseUrl>().unwrap(),
            public_url: None,
            static_dir: "/nonexistent".into(),
            trust_forwarded_for: false,
            doc_cache_mb: server::config::DEFAULT_DOC_CACHE_MB,
        };
        let state = server::state(&config, store.clone(), port).unwrap();
        let user = store.user(provider).await.unwrap().unwrap();
        let (cookie, session) = server::auth::start_session(&state, user, None).await.unwrap();
        let cookie = cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
        let headers = [("cookie", cookie), ("origin", format!("http://localhost:{port}"))];
        let url = format!("ws://localhost:{port}/sync");

        let actor = ActorId::from(
            (0..16)
                .map(|i| u8::from_str_radix(&session.actor_id[2 * i..2 * i + 2], 16).unwrap())
                .collect::<Vec<_>>(),
        );
        let mut client = SyncClient::new("clinic");
        for kind in &kinds {
            let mut doc = kind.genesis();
            doc.set_actor(actor.clone());
            for n in 0..CHANGES {
                let observation = testkit::fixtures::glucose_result(
                    (clinic, "Clinic"),
                    provider,
                    "Dr. P",
                    n as f64,
                );
                let mut tx = doc.transaction();
                record::add(&mut tx, EntryId::mint(), &observation).unwrap();
                tx.commit();
            }
            client.insert(kind.doc_id(), doc);
        }

        let mut portal = spawn_portal(&db.url, port);
        wait_healthy(port).await;
        let mut replica = Replica::connect(&url, &headers, client).await.unwrap();
        // Kill the server as soon as the first acknowledgements arrive.
        replica.sync_until(Duration::from_secs(60), |c, _| c.synced_count() > 0).await.unwrap();
        portal.kill().unwrap();
        portal.wait().unwrap();
        let acknowledged: HashMap<DocId, Vec<ChangeHash>> = kinds
            .iter()
            .map(DocKind::doc_id)
            .filter(|id| replica.client.is_synced(*id))
            .map(|id| (id, sorted(replica.client.doc(id).unwrap().get_heads())))
            .collect();
        assert!(!acknowledged.is_empty());
        let _ = replica.sync_until(Duration::from_secs(5), |_, _| false).await;

        // Every acknowledged change is on disk.
        for (id, heads) in &acknowledged {
            assert_eq!(
                &stored_heads(&store, *id).await,
                heads,
                "{backend:?}: acknowledged document {id} lost changes"
            );
        }

        // Restart on the same database; the replica resyncs and converges.
        let mut portal = spawn_portal(&db.url, port);
        wait_healthy(port).await;
        let mut client = SyncClient::new("clinic");
        for id in kinds.iter().map(DocKind::doc_id) {
            client.insert(id, replica.client.doc(id).unwrap().clone());
        }
        let mut again = Replica::connect(&url, &headers, client).await.unwrap();
        again.sync_all(Duration::from_secs(120)).await.unwrap();
        for id in kinds.iter().map(DocKind::doc_id) {
            assert_eq!(
                stored_heads(&store, id).await,
                sorted(again.client.doc(id).unwrap().get_heads()),
                "{backend:?}"
            );
        }
        again.close().await;
        portal.kill().unwrap();
        portal.wait().unwrap();
        eprintln!(
            "{backend:?}: {} of {DOCS} documents acknowledged before kill -9",
            acknowledged.len()
        );
        store.close().await;
        db.drop_database().await;
    }
}
