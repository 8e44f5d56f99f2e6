//! Benchmarks of the portal's sync engine against a real server over a real
//! WebSocket. Prints one JSON line per scenario.
//!
//! `portal-bench catch-up --docs 1000 --changes 20 [--database-url postgres://...]`:
//! a clinic replica holding `docs` patient documents, each with `changes`
//! offline changes, reconnects; timed from the WebSocket handshake until the
//! server has confirmed (and therefore committed) everything. The floor is
//! the same merge done in-process with plain Automerge.

use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge};
use clap::{Parser, Subcommand};
use serde_json::json;
use server::client::Replica;
use server::config::{Config, DatabaseUrl};
use server::storage::{NewUser, Store, UserRole};
use server::demo::glucose_result;
use shared::schema::DocKind;
use shared::sync::SyncClient;
use shared::{ClinicId, EntryId, PatientId, UserId, record};
use tokio::net::TcpListener;

#[path = "portal-bench/peer.rs"]
mod peer;

#[derive(Parser)]
#[command(name = "portal-bench")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// A clinic replica catches up after a day offline.
    CatchUp {
        #[arg(long, default_value_t = 1000)]
        docs: usize,
        #[arg(long, default_value_t = 20)]
        changes: usize,
        /// A PostgreSQL server URL to bench on (a fresh database is created
        /// on it and dropped afterwards); embedded SQLite by default.
        #[arg(long)]
        database_url: Option<String>,
        /// Skip baseline (b), the npm `@automerge/automerge-repo-sync-server`
        /// run by `bench/peer/catch-up.mjs` (needs node and `scripts/setup`).
        #[arg(long)]
        no_peer: bool,
    },
}

#[tokio::main]
async fn main() {
    match Cli::parse().scenario {
        Scenario::CatchUp { docs, changes, database_url, no_peer } => catch_up(docs, changes, database_url, !no_peer).await,
    }
}

/// A fresh database for one run.
struct BenchDb {
    url: String,
    admin: Option<(String, String)>,
    _dir: Option<tempfile_dir::Dir>,
}

mod tempfile_dir {
    /// A temporary directory removed on drop (std only).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl BenchDb {
    async fn new(postgres: Option<String>) -> Self {
        match postgres {
            None => {
                let dir = std::env::temp_dir().join(format!("portal-bench-{}", uuid::Uuid::now_v7().simple()));
                std::fs::create_dir_all(&dir).expect("temporary directory");
                Self { url: format!("sqlite://{}/bench.db", dir.display()), admin: None, _dir: Some(tempfile_dir::Dir(dir)) }
            }
            Some(admin) => {
                let name = format!("portal_bench_{}", uuid::Uuid::now_v7().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.expect("connect to PostgreSQL");
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base).to_owned();
                Self { url: format!("{base}/{name}"), admin: Some((admin, name)), _dir: None }
            }
        }
    }

    async fn drop_database(self) {
        if let Some((admin, name)) = &self.admin {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await.expect("connect");
            let _ = sqlx::Executor::execute(&mut conn, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
        }
    }
}

async fn catch_up(docs: usize, changes: usize, postgres: Option<String>, with_peer: bool) {
    let peer = with_peer.then(|| peer::Peer::find().unwrap_or_else(|e: String| fail(&e)));
    let db = BenchDb::new(postgres).await;
    let store = Store::connect(&db.url).await.expect("open database");
    let clinic = ClinicId::mint();
    let provider = UserId::mint();
    store.create_clinic(clinic, "Bench Clinic").await.expect("clinic");
    store
        .create_user(&NewUser {
            id: provider,
            display_name: "Dr. Bench".into(),
            role: UserRole::Provider,
            patient: None,
            may_message: false,
            clinics: vec![clinic],
        })
        .await
        .expect("provider");
    let mut kinds = Vec::with_capacity(docs);
    for _ in 0..docs {
        let patient = PatientId::mint();
        store.create_patient(patient).await.expect("patient");
        store.grant_consent(patient, clinic).await.expect("consent");
        let kind = DocKind::ClinicalRecord { patient, clinic };
        store.create_document(&kind).await.expect("document");
        kinds.push(kind);
    }

    // The server, on a free port.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = Config {
        addr: listener.local_addr().expect("address"),
        database_url: db.url.parse::<DatabaseUrl>().expect("url"),
        public_url: None,
        static_dir: "app/dist".into(),
    };
    let state = server::state(&config, store.clone(), port).expect("state");
    let user = store.user(provider).await.expect("user").expect("provider exists");
    let (cookie, session) = server::auth::start_session(&state, user).await.expect("session");
    let cookie = cookie.to_str().expect("cookie").split(';').next().expect("cookie pair").to_owned();
    tokio::spawn(server::serve(state, listener, std::future::pending()));

    // The clinic's day offline: `changes` results per patient, one change each.
    let actor = ActorId::from(hex_bytes(&session.actor_id));
    let mut client = SyncClient::new("bench-clinic");
    let mut floor_input = Vec::with_capacity(docs);
    for kind in &kinds {
        let mut doc = kind.genesis();
        doc.set_actor(actor.clone());
        for n in 0..changes {
            let mut tx = doc.transaction();
            record::add(&mut tx, EntryId::mint(), &glucose_result(clinic, provider, "Dr. Bench", 80.0 + n as f64)).expect("add result");
            tx.commit();
        }
        floor_input.push(doc.clone());
        client.insert(kind.doc_id(), doc);
    }

    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let url = format!("ws://localhost:{port}/sync");
    let headers = [("cookie", cookie), ("origin", format!("http://localhost:{port}"))];
    let mut replica = Replica::connect(&url, &headers, client).await.expect("connect");
    replica.sync_all(Duration::from_secs(600)).await.expect("catch-up");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_started;
    let (bytes_up, bytes_down) = (replica.bytes_up, replica.bytes_down);
    replica.close().await;

    // The floor: the same changes merged into the server's copies in-process
    // with plain Automerge, the cheapest way it offers (loading the changes
    // as one incremental chunk), and with `merge` for reference.
    let genesis_heads: Vec<_> = kinds.iter().map(|k| k.genesis().get_heads()).collect();
    let chunks: Vec<Vec<u8>> = floor_input.iter().zip(&genesis_heads).map(|(d, h)| d.save_after(h)).collect();
    let canonical: Vec<Automerge> = kinds.iter().map(DocKind::genesis).collect();
    let floor_started = Instant::now();
    let floor_cpu_started = cpu_seconds();
    for (mut server_doc, chunk) in canonical.into_iter().zip(&chunks) {
        server_doc.load_incremental(chunk).expect("load changes");
        std::hint::black_box(server_doc.get_heads());
    }
    let floor_seconds = floor_started.elapsed().as_secs_f64();
    let floor_cpu = cpu_seconds() - floor_cpu_started;
    let canonical: Vec<Automerge> = kinds.iter().map(DocKind::genesis).collect();
    let merge_started = Instant::now();
    for (mut server_doc, client_doc) in canonical.into_iter().zip(floor_input.iter_mut()) {
        server_doc.merge(client_doc).expect("merge");
    }
    let merge_seconds = merge_started.elapsed().as_secs_f64();

    let mut line = json!({
        "scenario": "catch-up",
        "database": store.backend().name(),
        "docs": docs,
        "changes_per_doc": changes,
        "seconds": round3(seconds),
        "cpu_seconds": round3(cpu),
        "floor_cpu_seconds": round3(floor_cpu),
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "floor_seconds": round3(floor_seconds),
        "floor_merge_seconds": round3(merge_seconds),
        "ratio_to_floor": round3(seconds / floor_seconds),
    });
    store.close().await;
    db.drop_database().await;
    // Baseline (b), after ours has finished so the two never share the CPU.
    if let Some(peer) = peer {
        match peer.run(docs, changes) {
            Ok(figures) => peer::add_figures(&mut line, &figures, seconds, cpu),
            Err(e) => {
                println!("{line}");
                fail(&format!("the npm peer baseline failed: {e}"));
            }
        }
    }
    println!("{line}");
}

fn fail(message: &str) -> ! {
    eprintln!("portal-bench: {message}");
    std::process::exit(2)
}

/// CPU time this process (server and client together) has used so far;
/// unlike wall time it barely moves when other work shares the machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex actor id")).collect()
}
