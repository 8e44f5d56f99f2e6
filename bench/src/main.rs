//! Benchmarks of the portal's sync engine against a real server over a real
//! WebSocket. Prints one JSON line per scenario.
//!
//! `portal-bench catch-up --docs 1000 --changes 20 [--database-url postgres://...]`:
//! a clinic replica holding `docs` patient documents, each with `changes`
//! offline changes, reconnects; timed from the WebSocket handshake until the
//! server has confirmed (and therefore committed) everything. The floor is
//! the same merge done in-process with plain Automerge, just before and just
//! after (the mean of the two).
//!
//! `portal-bench fan-out [--quick] [--instances 2 --database-url postgres://...]`:
//! a thousand WebSocket connections, each subscribed to ten of a hundred
//! documents, and a writer on another connection making a paced stream of
//! changes; timed from the writer's commit to arrival at every subscriber.
//! The server runs as a child process (`portal-bench serve`, the same code
//! as `portal serve`) so that its peak memory is its own.
//!
//! `portal-bench soak [--quick] [--patients 100000] [--doc-cache-mb 64]`:
//! far more documents than the server's document cache holds, touched at
//! random by provider connections; memory, latency and the access check
//! (see `portal-bench/soak.rs`).
//!
//! `portal-bench everything [--quick] [--runs 20]`: FHIR `$everything` for a
//! patient with five years of history, time and bytes over real HTTP (see
//! `everything.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge};
use clap::{Parser, Subcommand};
use serde_json::json;
use server::config::{Config, DatabaseUrl};
use server::storage::{Backend, NewUser, Store};
use shared::api::UserRole;
use shared::schema::DocKind;
use shared::sync::{SyncClient, WireMessage};
use shared::{ClinicId, DocId, EntryId, PatientId, UserId, record};
use testkit::fixtures::glucose_result;
use testkit::{Replica, TestDatabase};
use tokio::net::TcpListener;

mod everything;
mod peer;
mod soak;

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
        /// Run the server as a child process (`portal-bench serve`), so that
        /// `server_peak_rss_mb` is its own; `cpu_seconds` then adds its CPU.
        #[arg(long)]
        server_process: bool,
    },
    /// Many live subscribers: latency from a change's commit on the writer's
    /// replica to its arrival at every subscribed replica.
    FanOut {
        /// Subscriber connections (default 1000; 100 with --quick).
        #[arg(long)]
        connections: Option<usize>,
        /// Documents (default 100; 20 with --quick).
        #[arg(long)]
        docs: Option<usize>,
        /// Documents each connection subscribes to.
        #[arg(long, default_value_t = 10)]
        per_connection: usize,
        /// Changes the writer makes, round-robin over the documents (default 200; 40 with --quick).
        #[arg(long)]
        changes: Option<usize>,
        /// Milliseconds between the writer's changes.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Server instances sharing the database (more than one needs PostgreSQL);
        /// subscribers are spread over them, the writer is on the first.
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// A PostgreSQL server URL (a fresh database is created on it and
        /// dropped afterwards); embedded SQLite by default.
        #[arg(long)]
        database_url: Option<String>,
        /// A small run for CI.
        #[arg(long)]
        quick: bool,
    },
    /// Server memory and latency with many more documents than its cache
    /// holds: documents touched at random by provider connections.
    Soak {
        /// Patients, three documents each (default 100,000; 2,000 with --quick).
        #[arg(long)]
        patients: Option<usize>,
        /// Clinics; each patient consents to one, each has one provider.
        #[arg(long, default_value_t = 10)]
        clinics: usize,
        /// Results in each clinical record.
        #[arg(long, default_value_t = 8)]
        results: usize,
        /// Provider connections touching documents at once.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// How long they touch documents (default 120; 10 with --quick).
        #[arg(long)]
        seconds: Option<u64>,
        /// The server's document cache (`portal serve --doc-cache-mb`).
        #[arg(long, default_value_t = 64)]
        doc_cache_mb: usize,
        /// A PostgreSQL server URL (a fresh database is created on it and
        /// dropped afterwards); embedded SQLite by default.
        #[arg(long)]
        database_url: Option<String>,
        /// A small run for CI.
        #[arg(long)]
        quick: bool,
    },
    /// FHIR `$everything` for a patient with a long history: time and bytes.
    Everything {
        /// Calls after the first (default 20; 5 with --quick).
        #[arg(long)]
        runs: Option<usize>,
        /// A PostgreSQL server URL (a fresh database is created on it and
        /// dropped afterwards); embedded SQLite by default.
        #[arg(long)]
        database_url: Option<String>,
        /// One year of history (400 results, 20 prescriptions, 100
        /// messages) instead of five, for CI.
        #[arg(long)]
        quick: bool,
    },
    /// A server for `fan-out`, run as a child process.
    #[command(hide = true)]
    Serve(Config),
}

#[tokio::main]
async fn main() {
    match Cli::parse().scenario {
        Scenario::CatchUp { docs, changes, database_url, no_peer, server_process } => {
            catch_up(docs, changes, database_url, !no_peer, server_process).await
        }
        Scenario::FanOut {
            connections,
            docs,
            per_connection,
            changes,
            interval_ms,
            instances,
            database_url,
            quick,
        } => {
            let plan = FanOutPlan {
                connections: connections.unwrap_or(if quick { 100 } else { 1000 }),
                docs: docs.unwrap_or(if quick { 20 } else { 100 }),
                per_connection,
                changes: changes.unwrap_or(if quick { 40 } else { 200 }),
                interval: Duration::from_millis(interval_ms),
                instances,
            };
            fan_out(plan, database_url).await
        }
        Scenario::Soak {
            patients,
            clinics,
            results,
            clients,
            seconds,
            doc_cache_mb,
            database_url,
            quick,
        } => {
            let plan = soak::SoakPlan {
                patients: patients.unwrap_or(if quick { 2_000 } else { 100_000 }),
                clinics,
                results_per_record: results,
                clients,
                seconds: seconds.unwrap_or(if quick { 10 } else { 120 }),
                doc_cache_mb,
            };
            soak::soak(plan, database_url).await
        }
        Scenario::Everything { runs, database_url, quick } => {
            let history = if quick {
                testkit::History { years: 1, results: 400, prescriptions: 20, messages: 100 }
            } else {
                testkit::History { years: 5, results: 2000, prescriptions: 100, messages: 500 }
            };
            let runs = runs.unwrap_or(if quick { 5 } else { 20 });
            everything::everything(everything::EverythingPlan { history, runs }, database_url).await
        }
        Scenario::Serve(config) => {
            let store = Store::connect(config.database_url.expose()).await.expect("open database");
            let listener = TcpListener::bind(config.addr).await.expect("bind");
            server::launch(&config, store, listener, std::future::pending()).await.expect("serve");
        }
    }
}

/// A fresh database for one run: embedded SQLite, or a new database on the
/// PostgreSQL server at `postgres` (dropped afterwards).
async fn fresh_database(postgres: Option<String>) -> TestDatabase {
    match postgres {
        None => TestDatabase::new(Backend::Sqlite).await,
        Some(admin) => TestDatabase::on_postgres(&admin).await,
    }
}

/// A clinic with one provider and `docs` consenting patients, each with a
/// clinical record in the store.
async fn bench_clinic(store: &Store, docs: usize) -> (ClinicId, UserId, Vec<DocKind>) {
    let clinic = ClinicId::mint();
    let provider = UserId::mint();
    let now = server::Clock::default().now_ms();
    store.create_clinic(clinic, "Bench Clinic", now).await.expect("clinic");
    store
        .create_user(
            &NewUser {
                id: provider,
                display_name: "Dr. Bench".into(),
                role: UserRole::Provider,
                patient: None,
                may_message: false,
                clinics: vec![clinic],
            },
            now,
        )
        .await
        .expect("provider");
    let mut records = Vec::with_capacity(docs);
    for _ in 0..docs {
        let patient = PatientId::mint();
        store.create_patient(patient, now).await.expect("patient");
        store.grant_consent(patient, clinic, now).await.expect("consent");
        let record = DocKind::ClinicalRecord { patient, clinic };
        store.create_document(&record, now).await.expect("document");
        records.push(record);
    }
    (clinic, provider, records)
}

async fn catch_up(
    docs: usize,
    changes: usize,
    postgres: Option<String>,
    with_peer: bool,
    server_process: bool,
) {
    let peer = with_peer.then(|| peer::Peer::find().unwrap_or_else(|e: String| fail(&e)));
    let db = fresh_database(postgres).await;
    let store = Store::connect(&db.url).await.expect("open database");
    let (clinic, provider, kinds) = bench_clinic(&store, docs).await;

    // The server, on a free port: in this process, or a child process.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = Config {
        addr: listener.local_addr().expect("address"),
        database_url: db.url.parse::<DatabaseUrl>().expect("url"),
        public_url: None,
        static_dir: "app/dist".into(),
        trust_forwarded_for: false,
        doc_cache_mb: server::config::DEFAULT_DOC_CACHE_MB,
    };
    let state = server::state(&config, store.clone(), port).expect("state");
    let user = store.user(provider).await.expect("user").expect("provider exists");
    let (cookie, session) = server::auth::start_session(&state, user, None).await.expect("session");
    let cookie =
        cookie.to_str().expect("cookie").split(';').next().expect("cookie pair").to_owned();
    let child = if server_process {
        drop(listener);
        drop(state);
        let exe = std::env::current_exe().expect("own path");
        let child = tokio::process::Command::new(&exe)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--database-url", &db.url])
            .args(["--public-url", &format!("http://localhost:{port}")])
            .args(["--static-dir", "/nonexistent"])
            .env("PORTAL_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(child)
    } else {
        tokio::spawn(server::serve(state, listener, std::future::pending()));
        None
    };
    let server_pid = child.as_ref().map(|c| c.id().expect("running"));
    let server_cpu =
        || server_pid.map_or(0.0, |pid| process_cpu_seconds(&format!("/proc/{pid}/stat")));

    // The clinic's day offline: `changes` results per patient, one change
    // each. The floor's input is kept as bytes (the new changes), not as a
    // second copy of every document.
    let actor = ActorId::from(hex_bytes(&session.actor_id));
    let mut client = SyncClient::new("bench-clinic");
    let mut chunks = Vec::with_capacity(docs);
    for kind in &kinds {
        let mut doc = kind.genesis();
        let genesis_heads = doc.get_heads();
        doc.set_actor(actor.clone());
        for n in 0..changes {
            let mut tx = doc.transaction();
            record::add(
                &mut tx,
                EntryId::mint(),
                &glucose_result((clinic, "Bench Clinic"), provider, "Dr. Bench", 80.0 + n as f64),
            )
            .expect("add result");
            tx.commit();
        }
        chunks.push(doc.save_after(&genesis_heads));
        client.insert(kind.doc_id(), doc);
    }

    // The floor (below), once before the catch-up and once after: this
    // machine's speed drifts by tens of percent within seconds, and the
    // mean of the two brackets the catch-up in time.
    let floor_before = floor(&kinds, &chunks);
    let started = Instant::now();
    let cpu_started = cpu_seconds() + server_cpu();
    let url = format!("ws://localhost:{port}/sync");
    let headers = [("cookie", cookie), ("origin", format!("http://localhost:{port}"))];
    let mut replica = Replica::connect(&url, &headers, client).await.expect("connect");
    replica.sync_all(Duration::from_secs(1800)).await.expect("catch-up");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() + server_cpu() - cpu_started;
    let (bytes_up, bytes_down) = (replica.bytes_up, replica.bytes_down);
    let server_rss = server_pid.map(peak_rss_mb);

    let floor_after = floor(&kinds, &chunks);
    let floor_seconds = (floor_before.0 + floor_after.0) / 2.0;
    let floor_cpu = (floor_before.1 + floor_after.1) / 2.0;
    // And with `merge` (from the replica's copies), for reference.
    drop(chunks);
    let canonical: Vec<Automerge> = kinds.iter().map(DocKind::genesis).collect();
    let merge_started = Instant::now();
    for (mut server_doc, kind) in canonical.into_iter().zip(&kinds) {
        let client_doc = replica.client.doc_mut(kind.doc_id()).expect("tracked");
        server_doc.merge(client_doc).expect("merge");
    }
    let merge_seconds = merge_started.elapsed().as_secs_f64();
    replica.close().await;
    if let Some(mut child) = child {
        let _ = child.kill().await;
    }

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
        "floor_seconds_before_after": [round3(floor_before.0), round3(floor_after.0)],
        "floor_merge_seconds": round3(merge_seconds),
        "ratio_to_floor": round3(seconds / floor_seconds),
        // This process: the replica's documents, the floor's, and the
        // server unless it ran as a child process.
        "peak_rss_mb": peak_rss_mb(std::process::id()),
    });
    if let Some(rss) = server_rss {
        line["server_process"] = json!(true);
        line["server_peak_rss_mb"] = json!(rss);
    }
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

/// The floor: the same changes merged into the server's copies in-process
/// with plain Automerge, the cheapest way it offers (loading the changes as
/// one incremental chunk into each genesis). Seconds and CPU seconds.
fn floor(kinds: &[DocKind], chunks: &[Vec<u8>]) -> (f64, f64) {
    let canonical: Vec<Automerge> = kinds.iter().map(DocKind::genesis).collect();
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    for (mut server_doc, chunk) in canonical.into_iter().zip(chunks) {
        server_doc.load_incremental(chunk).expect("load changes");
        std::hint::black_box(server_doc.get_heads());
    }
    (started.elapsed().as_secs_f64(), cpu_seconds() - cpu_started)
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
    let fields: Vec<&str> =
        stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: f64 =
        fields.get(11..13).map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex actor id"))
        .collect()
}

struct FanOutPlan {
    connections: usize,
    docs: usize,
    per_connection: usize,
    changes: usize,
    interval: Duration,
    instances: usize,
}

/// When each of the writer's changes was committed, by change hash.
type Submitted = Arc<Mutex<HashMap<automerge::ChangeHash, Instant>>>;

async fn fan_out(plan: FanOutPlan, postgres: Option<String>) {
    assert!(plan.instances >= 1);
    assert!(
        plan.instances == 1 || postgres.is_some(),
        "--instances above 1 needs --database-url postgres://..."
    );
    let fd_limit = raise_fd_limit();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let db = fresh_database(postgres).await;
    let store = Store::connect(&db.url).await.expect("open database");
    let (clinic, provider, records) = bench_clinic(&store, plan.docs).await;
    let ids: Vec<DocId> = records.iter().map(DocKind::doc_id).collect();

    // The servers: child processes on free ports, one public URL (as behind a load balancer).
    let ports: Vec<u16> = (0..plan.instances)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("free port")
                .local_addr()
                .expect("address")
                .port()
        })
        .collect();
    let public_url = format!("http://localhost:{}", ports[0]);
    let cookie = {
        let config = Config {
            addr: format!("127.0.0.1:{}", ports[0]).parse().expect("address"),
            database_url: db.url.parse::<DatabaseUrl>().expect("url"),
            public_url: Some(public_url.clone()),
            static_dir: "/nonexistent".into(),
            trust_forwarded_for: false,
            doc_cache_mb: server::config::DEFAULT_DOC_CACHE_MB,
        };
        let state = server::state(&config, store.clone(), ports[0]).expect("state");
        let user = store.user(provider).await.expect("user").expect("provider exists");
        let (cookie, _) = server::auth::start_session(&state, user, None).await.expect("session");
        cookie.to_str().expect("cookie").split(';').next().expect("cookie pair").to_owned()
    };
    let exe = std::env::current_exe().expect("own path");
    let mut children = Vec::new();
    for port in &ports {
        let child = tokio::process::Command::new(&exe)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--database-url", &db.url])
            .args(["--public-url", &public_url, "--static-dir", "/nonexistent"])
            .env("PORTAL_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start a server");
        children.push(child);
    }
    for port in &ports {
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", *port)).await.is_err() {
            assert!(Instant::now() < deadline, "the server on port {port} did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let headers = [("cookie", cookie), ("origin", public_url.clone())];
    let url = |n: usize| format!("ws://localhost:{}/sync", ports[n % ports.len()]);

    // Subscribers: connection c follows documents c*k .. c*k+k (mod docs).
    let submitted: Submitted = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (end_tx, end_rx) = tokio::sync::watch::channel(false);
    let connecting = Arc::new(tokio::sync::Semaphore::new(32));
    let connect_started = Instant::now();
    let mut subscribers = Vec::with_capacity(plan.connections);
    for c in 0..plan.connections {
        let mut follows: Vec<DocId> = (0..plan.per_connection)
            .map(|j| ids[(c * plan.per_connection + j) % plan.docs])
            .collect();
        follows.sort();
        follows.dedup();
        let expected = (0..plan.changes).filter(|i| follows.contains(&ids[i % plan.docs])).count();
        let (url, headers, submitted, ready, end, connecting) = (
            url(c),
            headers.clone(),
            submitted.clone(),
            ready_tx.clone(),
            end_rx.clone(),
            connecting.clone(),
        );
        subscribers.push(tokio::spawn(async move {
            subscriber(url, headers, follows, expected, submitted, ready, end, connecting).await
        }));
    }
    drop(ready_tx);
    for _ in 0..plan.connections {
        ready_rx.recv().await.expect("a subscriber failed to connect");
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();

    // The writer, on the first instance, adds results round-robin, paced.
    let mut client = SyncClient::new("bench-writer");
    for id in &ids {
        client.insert(*id, Automerge::new());
    }
    let mut writer = Replica::connect(&url(0), &headers, client).await.expect("writer connects");
    writer.sync_all(Duration::from_secs(120)).await.expect("writer syncs");
    let actor = ActorId::random();
    for id in &ids {
        writer.client.doc_mut(*id).expect("tracked").set_actor(actor.clone());
    }
    let server_pids: Vec<u32> = children.iter().map(|c| c.id().expect("running")).collect();
    let server_cpu_now = || -> f64 {
        server_pids.iter().map(|pid| process_cpu_seconds(&format!("/proc/{pid}/stat"))).sum()
    };
    let (server_cpu_setup, bench_cpu_setup) =
        (server_cpu_now(), process_cpu_seconds("/proc/self/stat"));
    let write_started = Instant::now();
    let mut next = tokio::time::Instant::now();
    for i in 0..plan.changes {
        while writer.step(next).await.expect("writer receives").is_some() {}
        let id = ids[i % plan.docs];
        let doc = writer.client.doc_mut(id).expect("tracked");
        let mut tx = doc.transaction();
        record::add(
            &mut tx,
            EntryId::mint(),
            &glucose_result(
                (clinic, "Bench Clinic"),
                provider,
                "Dr. Bench",
                70.0 + (i % 50) as f64,
            ),
        )
        .expect("add");
        tx.commit();
        let hash = doc.get_heads()[0];
        submitted.lock().expect("lock").insert(hash, Instant::now());
        writer.flush_local().await.expect("writer sends");
        next += plan.interval;
    }
    writer.sync_all(Duration::from_secs(120)).await.expect("every change acknowledged");
    let write_seconds = write_started.elapsed().as_secs_f64();
    // Stragglers get a few seconds more, then everyone stops.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grace = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let _ = end_tx.send(true);
    });
    let mut latencies =
        Vec::with_capacity(plan.changes * plan.connections * plan.per_connection / plan.docs);
    let mut by_instance = vec![Vec::new(); plan.instances];
    let mut expected = 0;
    for (c, task) in subscribers.into_iter().enumerate() {
        let (got, want) = task.await.expect("subscriber task");
        by_instance[c % plan.instances].extend(got.iter().copied());
        latencies.extend(got);
        expected += want;
    }
    grace.abort();
    let rss: Vec<f64> = children.iter().map(|c| peak_rss_mb(c.id().expect("running"))).collect();
    // CPU used while changes streamed (connection set-up excluded).
    let server_cpu = server_cpu_now() - server_cpu_setup;
    let bench_cpu = process_cpu_seconds("/proc/self/stat") - bench_cpu_setup;
    writer.close().await;
    for mut child in children {
        let _ = child.kill().await;
    }
    let percentile = |sorted: &[f64], p: f64| {
        round3(
            sorted
                .get(((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(f64::NAN),
        )
    };
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&latencies, p);
    // Subscribers on the writer's instance, then on the others.
    let by_instance: Vec<serde_json::Value> = by_instance
        .iter_mut()
        .map(|l| {
            l.sort_by(f64::total_cmp);
            json!({"p50_ms": percentile(l, 0.5), "p99_ms": percentile(l, 0.99)})
        })
        .collect();
    println!(
        "{}",
        json!({
            "scenario": "fan-out",
            "database": store.backend().name(),
            "instances": plan.instances,
            "connections": plan.connections,
            "docs": plan.docs,
            "subscribers_per_doc": plan.connections * plan.per_connection / plan.docs,
            "changes": plan.changes,
            "interval_ms": plan.interval.as_millis() as u64,
            "deliveries": latencies.len(),
            "missed": expected - latencies.len(),
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "by_instance": by_instance,
            "max_ms": round3(latencies.last().copied().unwrap_or(f64::NAN)),
            "peak_rss_mb": rss.iter().copied().fold(0.0, f64::max),
            "peak_rss_mb_per_instance": rss,
            "server_cpu_seconds_streaming": round3(server_cpu),
            "server_cpu_us_per_delivery": (server_cpu * 1e6 / latencies.len().max(1) as f64).round(),
            "bench_cpu_seconds_streaming": round3(bench_cpu),
            "connect_seconds": round3(connect_seconds),
            "write_seconds": round3(write_seconds),
            "fd_limit": fd_limit,
            "loadavg_before": load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        })
    );
    store.close().await;
    db.drop_database().await;
}

/// One subscriber: syncs its documents, reports ready, then records how long
/// each of the writer's changes took to arrive. Returns the latencies (ms)
/// and how many changes it should have seen.
#[allow(clippy::too_many_arguments)]
async fn subscriber(
    url: String,
    headers: [(&'static str, String); 2],
    follows: Vec<DocId>,
    expected: usize,
    submitted: Submitted,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
    mut end: tokio::sync::watch::Receiver<bool>,
    connecting: Arc<tokio::sync::Semaphore>,
) -> (Vec<f64>, usize) {
    let mut client = SyncClient::new(format!("bench-{}", uuid::Uuid::now_v7().simple()));
    for id in &follows {
        client.insert(*id, Automerge::new());
    }
    let mut replica = {
        let _permit = connecting.acquire().await.expect("semaphore");
        let mut replica =
            Replica::connect(&url, &headers, client).await.expect("subscriber connects");
        replica.sync_all(Duration::from_secs(300)).await.expect("subscriber syncs");
        replica
    };
    replica.take_received();
    let _ = ready.send(());
    // From here on a lean replica: it reads which changes arrived and
    // answers each message as a replica that applied them would (its heads
    // are the server's, nothing more to ask), without keeping documents, so
    // the load generator's own work disturbs the measurement less.
    let peer = replica.client.peer_id().to_owned();
    let mut latencies = Vec::with_capacity(expected);
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    while latencies.len() < expected && !*end.borrow() {
        let next = tokio::select! {
            next = replica.next_message(far) => next.expect("subscriber receives"),
            _ = end.changed() => None,
        };
        let Some((arrived, WireMessage::Sync { sender_id, document_id, data, .. })) = next else {
            continue;
        };
        let message = automerge::sync::Message::decode(&data).expect("sync message");
        {
            let submitted = submitted.lock().expect("lock");
            // The changes carried one by one, and the new heads (a message
            // may carry a whole document instead of single changes).
            let carried: std::collections::BTreeSet<automerge::ChangeHash> = message
                .changes
                .iter()
                .filter_map(|chunk| automerge::Change::try_from(chunk).ok().map(|c| c.hash()))
                .chain(message.heads.iter().copied())
                .collect();
            for hash in carried {
                if let Some(at) = submitted.get(&hash) {
                    latencies.push(arrived.saturating_duration_since(*at).as_secs_f64() * 1000.0);
                }
            }
        }
        let mut flags = automerge::sync::MessageFlags::new();
        flags.set(automerge::sync::MessageFlags::SUPPORTS_SYNC_RESET);
        let ack = automerge::sync::Message {
            heads: message.heads.clone(),
            need: Vec::new(),
            have: vec![automerge::sync::Have {
                last_sync: message.heads,
                bloom: Default::default(),
            }],
            changes: Vec::<Vec<u8>>::new().into(),
            flags: Some(flags),
            version: automerge::sync::MessageVersion::V1,
        };
        let ack = WireMessage::Sync {
            sender_id: peer.clone(),
            target_id: sender_id,
            document_id,
            data: ack.encode().into(),
        };
        replica.send(vec![ack]).await.expect("subscriber answers");
    }
    replica.close().await;
    (latencies, expected)
}

/// CPU time (user + system) a process has used so far, from /proc/PID/stat.
fn process_cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 14th field, stime the 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// Peak resident memory of a process (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    (kb / 1024.0 * 10.0).round() / 10.0
}

/// A thousand sockets on each side: lift the soft open-file limit to the
/// hard one (children inherit it). Returns the limit now in force.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}
