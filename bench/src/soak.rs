//! `portal-bench soak`: the server's memory and latency with many more
//! documents than fit its document cache.
//!
//! Seeds `patients` patients spread over `clinics` clinics (each patient
//! consents to one), three documents each (patient record, clinical record
//! with a few results, message thread with that clinic), in bulk. Then one
//! provider connection per client touches documents of its clinic's
//! patients at random for `seconds`: it asks for a document it does not
//! hold (the server sends all of it, loading it if the cache dropped it),
//! and every fourth touch also writes a result and waits for the
//! acknowledgement. A client reconnects every `TOUCHES_PER_CONNECTION`
//! touches, like a browser session. The server runs as a child process
//! with `--doc-cache-mb`, so its resident memory is its own.
//!
//! Reports the read and write latencies, the server's peak and final
//! resident memory, what its cache held (`/healthz`), and the access check
//! a provider of clinic 0 costs (`patients / clinics` consenting patients)
//! when a connection opens.

use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge};
use serde_json::json;
use server::config::{Config, DatabaseUrl};
use server::storage::{NewRecord, NewUser, Store};
use shared::api::UserRole;
use shared::schema::DocKind;
use shared::sync::SyncClient;
use shared::{ClinicId, EntryId, PatientId, UserId, record};
use testkit::Replica;
use testkit::fixtures::glucose_result;

use super::{fail, fresh_database, peak_rss_mb, round3};

pub struct SoakPlan {
    pub patients: usize,
    pub clinics: usize,
    pub results_per_record: usize,
    pub clients: usize,
    pub seconds: u64,
    pub doc_cache_mb: usize,
}

/// Touches per connection before a client reconnects: a connection keeps
/// a sync state per document it touched, as a browser session does.
const TOUCHES_PER_CONNECTION: usize = 200;
/// Patients created per transaction while seeding.
const SEED_BATCH: usize = 2_000;

struct Clinic {
    id: ClinicId,
    name: String,
    provider: UserId,
    provider_name: String,
}

pub async fn soak(plan: SoakPlan, postgres: Option<String>) {
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let db = fresh_database(postgres).await;
    let store = Store::connect(&db.url).await.expect("open database");

    let clinics = seed_clinics(&store, plan.clinics).await;
    let seed_started = Instant::now();
    let patients = seed_records(&store, &clinics, &plan).await;
    let seed_seconds = seed_started.elapsed().as_secs_f64();

    // The whole list clinic 0's provider may read (the app's document list).
    let provider = store.user(clinics[0].provider).await.expect("user").expect("provider");
    let mut access_ms = Vec::new();
    let mut readable = 0;
    for _ in 0..5 {
        let started = Instant::now();
        readable = store.readable_documents(&provider).await.expect("access check").len();
        access_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    access_ms.sort_by(f64::total_cmp);
    // What a sync connection checks instead: the documents one batch names.
    let mut lookup_ms = Vec::new();
    for (n, patient) in patients.iter().step_by(clinics.len()).take(50).enumerate() {
        let id = DocKind::ClinicalRecord { patient: *patient, clinic: clinics[0].id }.doc_id();
        let started = Instant::now();
        let found = store.readable_among(&provider, &[id]).await.expect("access lookup");
        lookup_ms.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(found.len(), 1, "patient {n} of clinic 0 is readable");
    }
    lookup_ms.sort_by(f64::total_cmp);

    // The server, a child process on a free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let public_url = format!("http://localhost:{port}");
    let cookies = sign_in(&store, &db.url, &public_url, port, &clinics).await;
    let exe = std::env::current_exe().expect("own path");
    let mut child = tokio::process::Command::new(&exe)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--database-url", &db.url])
        .args(["--public-url", &public_url, "--static-dir", "/nonexistent"])
        .args(["--doc-cache-mb", &plan.doc_cache_mb.to_string()])
        .env("PORTAL_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let pid = child.id().expect("running");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_idle = rss_mb(pid);

    // The clients, each a provider of one clinic touching its patients.
    let url = format!("ws://localhost:{port}/sync");
    let until = Instant::now() + Duration::from_secs(plan.seconds);
    let mut tasks = Vec::new();
    for c in 0..plan.clients {
        let k = c % clinics.len();
        let clinic = (clinics[k].id, clinics[k].name.clone());
        let provider = (clinics[k].provider, clinics[k].provider_name.clone());
        let mine: Vec<PatientId> =
            patients.iter().skip(k).step_by(clinics.len()).copied().collect();
        let headers = [("cookie", cookies[k].clone()), ("origin", public_url.clone())];
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            touch(url, headers, clinic, provider, mine, until, c as u64).await
        }));
    }
    let mut rss_peak_sampled: f64 = 0.0;
    while Instant::now() < until {
        rss_peak_sampled = rss_peak_sampled.max(rss_mb(pid));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for task in tasks {
        let (r, w) = task.await.expect("client task");
        reads.extend(r);
        writes.extend(w);
    }
    let cache = health(port).await;
    let rss_end = rss_mb(pid);
    let rss_peak = peak_rss_mb(pid);
    let _ = child.kill().await;

    reads.sort_by(f64::total_cmp);
    writes.sort_by(f64::total_cmp);
    let pct = |sorted: &[f64], p: f64| {
        round3(
            sorted
                .get(((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(f64::NAN),
        )
    };
    println!(
        "{}",
        json!({
            "scenario": "soak",
            "database": store.backend().name(),
            "patients": plan.patients,
            "documents": plan.patients * 3,
            "clinics": plan.clinics,
            "seed_seconds": round3(seed_seconds),
            "doc_cache_mb": plan.doc_cache_mb,
            "clients": plan.clients,
            "seconds": plan.seconds,
            "reads": reads.len(),
            "read_p50_ms": pct(&reads, 0.5),
            "read_p99_ms": pct(&reads, 0.99),
            "writes": writes.len(),
            "write_p50_ms": pct(&writes, 0.5),
            "write_p99_ms": pct(&writes, 0.99),
            "rss_idle_mb": rss_idle,
            "rss_peak_mb": rss_peak.max(rss_peak_sampled),
            "rss_end_mb": rss_end,
            "cache": cache,
            "access_check": {
                "consenting_patients": plan.patients / plan.clinics,
                "readable_documents": readable,
                "list_median_ms": round3(access_ms[access_ms.len() / 2]),
                "lookup_one_median_ms": round3(lookup_ms[lookup_ms.len() / 2]),
                "lookup_one_max_ms": round3(lookup_ms.last().copied().unwrap_or(f64::NAN)),
            },
            "loadavg_before": load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        })
    );
    store.close().await;
    db.drop_database().await;
}

async fn seed_clinics(store: &Store, n: usize) -> Vec<Clinic> {
    let mut clinics = Vec::with_capacity(n);
    let now = server::Clock::default().now_ms();
    for k in 0..n {
        let clinic = Clinic {
            id: ClinicId::mint(),
            name: format!("Soak Clinic {k}"),
            provider: UserId::mint(),
            provider_name: format!("Dr. Soak {k}"),
        };
        store.create_clinic(clinic.id, &clinic.name, now).await.expect("clinic");
        store
            .create_user(
                &NewUser {
                    id: clinic.provider,
                    display_name: clinic.provider_name.clone(),
                    role: UserRole::Provider,
                    patient: None,
                    may_message: false,
                    clinics: vec![clinic.id],
                },
                now,
            )
            .await
            .expect("provider");
        clinics.push(clinic);
    }
    clinics
}

/// Patient `i` consents to clinic `i % clinics`; documents are built on
/// all cores while the previous batch is stored.
async fn seed_records(store: &Store, clinics: &[Clinic], plan: &SoakPlan) -> Vec<PatientId> {
    let patients: Vec<PatientId> = (0..plan.patients).map(|_| PatientId::mint()).collect();
    let now = server::Clock::default().now_ms();
    let clinic_info: Vec<(ClinicId, String, UserId, String)> = clinics
        .iter()
        .map(|c| (c.id, c.name.clone(), c.provider, c.provider_name.clone()))
        .collect();
    let results = plan.results_per_record;
    let mut pending: Option<tokio::task::JoinHandle<()>> = None;
    for (b, batch) in patients.chunks(SEED_BATCH).enumerate() {
        let first = b * SEED_BATCH;
        let batch = batch.to_vec();
        let info = clinic_info.clone();
        let records = tokio::task::spawn_blocking(move || {
            let half = batch.len().div_ceil(2);
            std::thread::scope(|scope| {
                let parts: Vec<_> = batch
                    .chunks(half.max(1))
                    .enumerate()
                    .map(|(p, part)| {
                        let info = &info;
                        scope.spawn(move || {
                            part.iter()
                                .enumerate()
                                .map(|(j, &patient)| {
                                    let i = first + p * half + j;
                                    new_record(patient, &info[i % info.len()], results, i)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                parts.into_iter().flat_map(|p| p.join().expect("seed thread")).collect::<Vec<_>>()
            })
        })
        .await
        .expect("build records");
        if let Some(previous) = pending.take() {
            previous.await.expect("store records");
        }
        let store = store.clone();
        pending = Some(tokio::spawn(async move {
            store.create_records(&records, now).await.expect("store records");
        }));
    }
    if let Some(previous) = pending {
        previous.await.expect("store records");
    }
    patients
}

fn new_record(
    patient: PatientId,
    (clinic, clinic_name, provider, provider_name): &(ClinicId, String, UserId, String),
    results: usize,
    i: usize,
) -> NewRecord {
    let patient_record = DocKind::PatientRecord { patient };
    let clinical = DocKind::ClinicalRecord { patient, clinic: *clinic };
    let thread = DocKind::MessageThread { patient, clinic: *clinic };
    let mut doc = clinical.genesis();
    doc.set_actor(ActorId::random());
    for n in 0..results {
        let mut tx = doc.transaction();
        record::add(
            &mut tx,
            EntryId::mint(),
            &glucose_result(
                (*clinic, clinic_name),
                *provider,
                provider_name,
                70.0 + (n + i) as f64 % 60.0,
            ),
        )
        .expect("add result");
        tx.commit();
    }
    NewRecord {
        patient,
        consents: vec![*clinic],
        documents: vec![
            (patient_record, patient_record.genesis().save()),
            (clinical, doc.save()),
            (thread, thread.genesis().save()),
        ],
    }
}

/// A session cookie for each clinic's provider, made through the server's
/// own sign-in path.
async fn sign_in(
    store: &Store,
    database_url: &str,
    public_url: &str,
    port: u16,
    clinics: &[Clinic],
) -> Vec<String> {
    let config = Config {
        addr: format!("127.0.0.1:{port}").parse().expect("address"),
        database_url: database_url.parse::<DatabaseUrl>().expect("url"),
        public_url: Some(public_url.to_owned()),
        static_dir: "/nonexistent".into(),
        trust_forwarded_for: false,
        doc_cache_mb: server::config::DEFAULT_DOC_CACHE_MB,
    };
    let state = server::state(&config, store.clone(), port).expect("state");
    let mut cookies = Vec::new();
    for clinic in clinics {
        let user = store.user(clinic.provider).await.expect("user").expect("provider");
        let (cookie, _) = server::auth::start_session(&state, user, None).await.expect("session");
        cookies.push(
            cookie.to_str().expect("cookie").split(';').next().expect("cookie pair").to_owned(),
        );
    }
    cookies
}

/// One client until `until`: read latencies and write latencies (ms).
async fn touch(
    url: String,
    headers: [(&'static str, String); 2],
    clinic: (ClinicId, String),
    provider: (UserId, String),
    patients: Vec<PatientId>,
    until: Instant,
    seed: u64,
) -> (Vec<f64>, Vec<f64>) {
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    let timeout = Duration::from_secs(60);
    'sessions: while Instant::now() < until {
        let client = SyncClient::new(format!("soak-{seed}-{}", reads.len()));
        let mut replica = match Replica::connect(&url, &headers, client).await {
            Ok(replica) => replica,
            Err(error) => fail(&format!("a soak client could not connect: {error}")),
        };
        let actor = ActorId::random();
        for touch in 0..TOUCHES_PER_CONNECTION {
            if Instant::now() >= until {
                replica.close().await;
                break 'sessions;
            }
            let patient = patients[next() as usize % patients.len()];
            let kind = match next() % 3 {
                0 => DocKind::PatientRecord { patient },
                1 => DocKind::ClinicalRecord { patient, clinic: clinic.0 },
                _ => DocKind::MessageThread { patient, clinic: clinic.0 },
            };
            let id = kind.doc_id();
            let started = Instant::now();
            replica.client.insert(id, Automerge::new());
            replica.flush_local().await.expect("send a request");
            replica.sync_until(timeout, |c, _| c.is_synced(id)).await.expect("document arrives");
            reads.push(started.elapsed().as_secs_f64() * 1e3);
            if touch % 4 == 0 {
                let clinical = DocKind::ClinicalRecord { patient, clinic: clinic.0 }.doc_id();
                if !replica.client.contains(clinical) {
                    replica.client.insert(clinical, Automerge::new());
                    replica.flush_local().await.expect("send a request");
                    replica
                        .sync_until(timeout, |c, _| c.is_synced(clinical))
                        .await
                        .expect("record arrives");
                }
                let doc = replica.client.doc_mut(clinical).expect("held");
                doc.set_actor(actor.clone());
                let mut tx = doc.transaction();
                record::add(
                    &mut tx,
                    EntryId::mint(),
                    &glucose_result((clinic.0, &clinic.1), provider.0, &provider.1, 99.0),
                )
                .expect("add result");
                tx.commit();
                let started = Instant::now();
                replica.flush_local().await.expect("send the change");
                replica
                    .sync_until(timeout, |c, _| c.is_synced(clinical))
                    .await
                    .expect("change acknowledged");
                writes.push(started.elapsed().as_secs_f64() * 1e3);
                replica.client.remove(clinical);
            }
            replica.client.remove(id);
        }
        replica.close().await;
    }
    (reads, writes)
}

/// The cache figures `/healthz` reports.
async fn health(port: u16) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("ask for health");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("health answer");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|health| health.get("documents").cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// The process's resident memory now, in MiB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    (kb / 1024.0 * 10.0).round() / 10.0
}
