//! Benchmark "cold offline open" (issue 7, scenario 3; issue 5's figure):
//! the time from navigation start to the first render of a patient's record
//! in headless Chromium with the network off.
//!
//! A real server on a fresh SQLite database serves the built app and the demo
//! data set. Maria Santos enrolls with a passkey and syncs her record; then,
//! with the page cut off the network, the page is reloaded `runs` times (a
//! fresh document each time, the shell from the service worker's cache, the
//! record from IndexedDB) and each time the app's `record-rendered`
//! performance mark is read: milliseconds from navigation start to the
//! moment the results list first holds entries from the local replica.
//!
//! Measured first for the demo record as seeded, then again after a long
//! history is added to Maria's record on the server (5 years: 2,000 results,
//! 100 prescriptions, 500 messages; `--quick`: 1 year, 400/20/100, 2 runs)
//! and synced to the page. Prints one JSON line per record.
//!
//! For each record, also "Download my record" offline (issue 16): the time
//! from the click to the file handed to the browser (the FHIR Bundle built
//! from the device's copy, written as JSON, put in a Blob), and its bytes
//! and resources; a `download` line per record.
//!
//! The copy on the device is sealed (issue 18). By default Maria's
//! authenticator has no PRF, so the browser keeps the data key and the page
//! opens by itself: the mark includes reading and decrypting the copy.
//! With `--prf` her passkey seals it: each reload stops at "Unlock with
//! your passkey", which the benchmark presses as soon as it shows
//! (`unlock_prompt_ms`: navigation start to the prompt); then the passkey
//! (a virtual authenticator, so no human time), the key unwrapping, reading,
//! decrypting and rendering take `after_unlock_ms` (the click to the mark).
//!
//! ```sh
//! scripts/build-app && cargo run --release -p e2e --bin open-bench -- [--quick] [--runs N] [--prf]
//! scripts/build-app && cargo run --release -p e2e --bin open-bench -- --staff [--patients 5000] [--quick] [--runs N]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::performance as cdp_performance;
use e2e::{Browser, Person, app_dist, wait_for_service_worker};
use serde_json::{Value, json};
use server::storage::Backend;
use testkit::History;
use testkit::{TestDatabase, TestServer};

/// How long loading, syncing or rendering may take before the benchmark gives up.
const LIMIT: Duration = Duration::from_secs(180);

/// The app's IndexedDB documents: how many and their total bytes.
const IDB_DOCS: &str = "new Promise((ok, fail) => { const r = indexedDB.open('patient-portal', 1);
    r.onerror = () => fail(r.error);
    r.onsuccess = () => { const db = r.result; const q = db.transaction('docs').objectStore('docs').getAll();
        q.onerror = () => fail(q.error);
        q.onsuccess = () => { const docs = q.result; db.close();
            ok(JSON.stringify({ docs: docs.length, bytes: docs.reduce((n, d) => n + (d.byteLength ?? d.length ?? 0), 0) })); }; }; })";

/// The `record-rendered` mark of the current document, or -1 while there is
/// none (or the page is still the one before the reload).
const MARK: &str = "(() => { if (window.__openBenchOld) return -1;
    const m = performance.getEntriesByName('record-rendered')[0]; return m ? m.startTime : -1; })()";

/// The `record-loaded` mark (every stored document loaded: the first
/// screen may show before, from the record's summary), or -1; -2 once 5 s
/// passed without it (an app built before the mark, in an A/B run).
const LOADED: &str = "(() => { if (window.__openBenchOld) return -1;
    const m = performance.getEntriesByName('record-loaded')[0];
    return m ? m.startTime : performance.now() > 5000 ? -2 : -1; })()";

/// Rows of the results tables (one per lab result shown; the list shows the
/// newest panels first, a page at a time).
/// Presses "Unlock with your passkey" once it shows on the new page:
/// `performance.now()` then, or -1 while it does not show.
const UNLOCK: &str = "(() => { if (window.__openBenchOld) return -1;
    const b = [...document.querySelectorAll('main button')].find((b) => b.textContent.includes('Unlock with your passkey'));
    if (!b) return -1; const at = performance.now(); b.click(); return at; })()";

const RESULT_ROWS: &str = "document.querySelectorAll('main table tbody tr').length";

/// Lab results on the device: each row of the latest results counts its
/// test's results (`data-n`).
const RESULTS_HELD: &str = "[...document.querySelectorAll('main tr[data-n]')]
    .reduce((n, r) => n + Number(r.dataset.n), 0)";

mod staff;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--staff") {
        let patients = args
            .iter()
            .position(|a| a == "--patients")
            .and_then(|i| args.get(i + 1))
            .map(|n| n.parse::<usize>().expect("--patients takes a number"))
            .unwrap_or(if quick { 1000 } else { 5000 });
        let runs = args
            .iter()
            .position(|a| a == "--runs")
            .and_then(|i| args.get(i + 1))
            .map(|n| n.parse::<usize>().expect("--runs takes a number"))
            .unwrap_or(if quick { 2 } else { 5 });
        return staff::run(patients, runs).await;
    }
    let prf = args.iter().any(|a| a == "--prf");
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<usize>().expect("--runs takes a number"))
        .unwrap_or(if quick { 2 } else { 5 });
    let history = if quick {
        History { years: 1, results: 400, prescriptions: 20, messages: 100 }
    } else {
        History { years: 5, results: 2000, prescriptions: 100, messages: 500 }
    };

    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, app_dist()).await;
    let users = server::demo::seed(&app.store).await.expect("seed demo data");
    let maria_user =
        users.iter().find(|u| u.name == "Maria Santos").expect("Maria in the demo data");
    let mut browser = Browser::launch().await;
    let rss = RssSampler::start(browser.pid().expect("Chromium's process id"));

    let (link, _) = server::auth::accounts::issue_enrollment(
        &app.store,
        &app.base_url,
        maria_user.id,
        None,
        app.clock.now_ms(),
    )
    .await
    .expect("enrollment link");
    let maria = browser.enroll_with("Maria", &link, prf).await;
    maria.wait_for("main", "Hemoglobin A1c").await;
    wait_for_service_worker(&maria.page).await;
    maria.wait_for(".sync-status", "last synced").await;
    let demo_results = wait_for_results(&maria, 1).await;
    let demo_idb = wait_for_idb_to_settle(&maria).await;

    let demo = measure(&maria, runs, prf, &rss).await;
    // The demo record: Maria's seeded results, 4 prescriptions and 2 messages.
    let demo_counts =
        vec![("results", json!(demo_results)), ("prescriptions", json!(4)), ("messages", json!(2))];
    print_line("demo", demo_counts, &demo, demo_idb, runs);
    measure_download(&maria, "demo", runs).await;

    // The long history arrives live over sync, as a clinic's writes would.
    let written = Instant::now();
    testkit::add_history(&app.hub, history).await.expect("add the long history");
    let held = wait_for_results(&maria, demo_results + history.results).await;
    let big_idb = wait_for_idb_to_settle(&maria).await;
    let sync_seconds = written.elapsed().as_secs_f64();
    let big = measure(&maria, runs, prf, &rss).await;
    // The added history, on top of the demo record.
    let counts = vec![
        ("years", json!(history.years)),
        ("results", json!(history.results)),
        ("prescriptions", json!(history.prescriptions)),
        ("messages", json!(history.messages)),
        ("results_held", json!(held)),
        ("sync_seconds", json!(round(sync_seconds, 2))),
    ];
    let record = if quick { "1-year" } else { "5-year" };
    print_line(record, counts, &big, big_idb, runs);
    measure_download(&maria, record, runs).await;

    rss.stop();
    browser.close().await;
    app.stop().await;
}

/// One cold open: the mark, and what the page held then.
struct Open {
    ms: f64,
    /// Navigation start to every stored document loaded.
    loaded_ms: f64,
    /// Navigation start to the end of the shell's HTML response.
    html_ms: f64,
    dom_content_loaded_ms: f64,
    rows: usize,
    /// With `--prf`: navigation start to the unlock prompt.
    prompt_ms: Option<f64>,
}

struct Measured {
    opens: Vec<Open>,
    peak_rss_mb: f64,
    peak_pss_mb: f64,
    js_heap_mb: f64,
    wasm_memory_mb: f64,
    dom_nodes: f64,
}

/// Cuts the page off the network, reloads it `runs` times, reads the mark
/// each time, and reconnects.
async fn measure(person: &Person, runs: usize, prf: bool, rss: &RssSampler) -> Measured {
    person.go_offline().await;
    person.wait_for(".sync-status", "Offline").await;
    rss.reset();
    let mut opens = Vec::new();
    for run in 0..runs {
        person.page.evaluate("window.__openBenchOld = true").await.expect("flag the old page");
        person.page.reload().await.expect("reload");
        let prompt_ms = if prf {
            let what = format!("the unlock prompt (run {run})");
            Some(poll(person, UNLOCK, |v| v.as_f64().filter(|ms| *ms >= 0.0), &what).await)
        } else {
            None
        };
        let ms = poll(
            person,
            MARK,
            |v| v.as_f64().filter(|ms| *ms >= 0.0),
            &format!("the record-rendered mark (run {run})"),
        )
        .await;
        let nav: Value = evaluate(
            person,
            "JSON.stringify((({ responseEnd, domContentLoadedEventEnd }) => ({ responseEnd, domContentLoadedEventEnd }))(performance.getEntriesByType('navigation')[0]))",
        )
        .await;
        let nav: Value = serde_json::from_str(nav.as_str().unwrap_or("{}")).unwrap_or_default();
        let rows = evaluate(person, RESULT_ROWS).await.as_u64().unwrap_or(0) as usize;
        let loaded_ms = poll(
            person,
            LOADED,
            |v| {
                v.as_f64()
                    .filter(|ms| *ms >= -2.0 && *ms != -1.0)
                    .map(|ms| if ms < 0.0 { f64::NAN } else { ms })
            },
            &format!("the record-loaded mark (run {run})"),
        )
        .await;
        let status = person.text(".sync-status").await;
        assert!(status.starts_with("Offline"), "the reloaded page is offline, not {status:?}");
        opens.push(Open {
            ms,
            loaded_ms,
            html_ms: nav["responseEnd"].as_f64().unwrap_or(f64::NAN),
            dom_content_loaded_ms: nav["domContentLoadedEventEnd"].as_f64().unwrap_or(f64::NAN),
            rows,
            prompt_ms,
        });
    }
    // Let the last load finish its work before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak_rss_mb = rss.peak_mb();
    let peak_pss_mb = rss.peak_pss_mb();
    person
        .page
        .execute(cdp_performance::EnableParams::default())
        .await
        .expect("performance domain");
    let metrics =
        person.page.execute(cdp_performance::GetMetricsParams::default()).await.expect("metrics");
    let metric = |name: &str| {
        metrics.result.metrics.iter().find(|m| m.name == name).map_or(f64::NAN, |m| m.value)
    };
    let wasm = evaluate(person, "import('/app.js').then((m) => m.default()).then((w) => w.memory.buffer.byteLength).catch(() => -1)").await;
    person.go_online().await;
    Measured {
        opens,
        peak_rss_mb,
        peak_pss_mb,
        js_heap_mb: metric("JSHeapUsedSize") / 1048576.0,
        wasm_memory_mb: wasm.as_f64().filter(|b| *b >= 0.0).map_or(f64::NAN, |b| b / 1048576.0),
        dom_nodes: metric("Nodes"),
    }
}

/// Clicks "Download my record" and answers, once the app hands the file's
/// Blob to the browser: milliseconds since the click, the Blob's bytes and
/// the Bundle's entries. The click's handler builds the Bundle at once.
const DOWNLOAD: &str = "new Promise((ok) => {
    const button = [...document.querySelectorAll('button')].find((b) => b.textContent.includes('Download my record'));
    const original = URL.createObjectURL;
    let start;
    URL.createObjectURL = (blob) => {
        const ms = performance.now() - start;
        URL.createObjectURL = original;
        blob.text().then((text) => ok(JSON.stringify({ ms, bytes: blob.size, resources: JSON.parse(text).entry.length })));
        return original.call(URL, blob);
    };
    start = performance.now();
    button.click();
})";

/// "Download my record" offline, `runs` times: prints a `download` line.
async fn measure_download(person: &Person, record: &str, runs: usize) {
    person.go_offline().await;
    person.wait_for(".sync-status", "Offline").await;
    person.tab("Summary & download").await;
    person.wait_for("button", "Download my record").await;
    let mut ms = Vec::new();
    let (mut bytes, mut resources) = (0, 0);
    for run in 0..runs {
        let answer =
            poll(person, DOWNLOAD, |v| v.as_str().map(str::to_owned), &format!("download {run}"))
                .await;
        let answer: Value = serde_json::from_str(&answer).expect("the download's figures");
        ms.push(answer["ms"].as_f64().expect("ms"));
        (bytes, resources) =
            (answer["bytes"].as_u64().unwrap_or(0), answer["resources"].as_u64().unwrap_or(0));
    }
    person.go_online().await;
    person.tab("Results").await;
    let runs_ms: Vec<f64> = ms.iter().map(|m| round(*m, 1)).collect();
    ms.sort_by(f64::total_cmp);
    let fields = [
        ("scenario", json!("download")),
        ("record", json!(record)),
        ("p50_ms", json!(round(ms[ms.len() / 2], 1))),
        ("max_ms", json!(round(ms[ms.len() - 1], 1))),
        ("runs_ms", json!(runs_ms)),
        ("bytes", json!(bytes)),
        ("resources", json!(resources)),
    ];
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
    println!("{{{}}}", body.join(","));
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    }
}

fn print_line(
    record: &str,
    counts: Vec<(&str, Value)>,
    m: &Measured,
    idb: (u64, u64),
    runs: usize,
) {
    let mut ms: Vec<f64> = m.opens.iter().map(|o| o.ms).collect();
    ms.sort_by(f64::total_cmp);
    let p50 = median(ms.clone());
    let mut fields: Vec<(&str, Value)> =
        vec![("scenario", json!("cold-offline-open")), ("record", json!(record))];
    fields.extend(counts);
    fields.extend([
        ("p50_ms", json!(round(p50, 1))),
        ("max_ms", json!(round(*ms.last().expect("at least one run"), 1))),
        ("runs", json!(runs)),
        ("runs_ms", json!(m.opens.iter().map(|o| round(o.ms, 1)).collect::<Vec<_>>())),
        ("loaded_p50_ms", json!(round(median(m.opens.iter().map(|o| o.loaded_ms).collect()), 1))),
        ("loaded_ms", json!(m.opens.iter().map(|o| round(o.loaded_ms, 1)).collect::<Vec<_>>())),
        ("html_ms", json!(m.opens.iter().map(|o| round(o.html_ms, 1)).collect::<Vec<_>>())),
        (
            "dom_content_loaded_ms",
            json!(m.opens.iter().map(|o| round(o.dom_content_loaded_ms, 1)).collect::<Vec<_>>()),
        ),
        ("rows_at_mark", json!(m.opens.iter().map(|o| o.rows).collect::<Vec<_>>())),
        (
            "unlock_prompt_ms",
            json!(m.opens.iter().filter_map(|o| Some(round(o.prompt_ms?, 1))).collect::<Vec<_>>()),
        ),
        (
            "after_unlock_ms",
            json!(
                m.opens
                    .iter()
                    .filter_map(|o| Some(round(o.ms - o.prompt_ms?, 1)))
                    .collect::<Vec<_>>()
            ),
        ),
        ("idb_docs", json!(idb.0)),
        ("idb_mb", json!(round(idb.1 as f64 / 1048576.0, 2))),
        ("peak_rss_mb", json!(round(m.peak_rss_mb, 0))),
        ("peak_pss_mb", json!(round(m.peak_pss_mb, 0))),
        ("js_heap_mb", json!(round(m.js_heap_mb, 1))),
        ("wasm_memory_mb", json!(round(m.wasm_memory_mb, 1))),
        ("dom_nodes", json!(m.dom_nodes)),
    ]);
    // Keys in this order (serde_json's own maps sort them).
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
    println!("{{{}}}", body.join(","));
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

async fn evaluate(person: &Person, script: &str) -> Value {
    person
        .page
        .evaluate(script)
        .await
        .map(|v| v.value().cloned().unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

/// Evaluates `script` until `accept` takes its answer.
async fn poll<T>(
    person: &Person,
    script: &str,
    accept: impl Fn(&Value) -> Option<T>,
    what: &str,
) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(found) = accept(&evaluate(person, script).await) {
            return found;
        }
        if Instant::now() > deadline {
            let shot = e2e::screenshot(&person.page, &format!("open-bench {what}")).await;
            panic!("no {what} within {LIMIT:?}; screenshot at {}", shot.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the device holds at least `n` lab results; returns how many.
async fn wait_for_results(person: &Person, n: usize) -> usize {
    poll(
        person,
        RESULTS_HELD,
        |v| v.as_u64().map(|r| r as usize).filter(|r| *r >= n),
        &format!("{n} results"),
    )
    .await
}

/// Waits until the stored documents stop growing (the app writes them to
/// IndexedDB after each sync message); returns (documents, bytes).
async fn wait_for_idb_to_settle(person: &Person) -> (u64, u64) {
    let read = || async {
        let v = evaluate(person, IDB_DOCS).await;
        let v: Value = serde_json::from_str(v.as_str().unwrap_or("{}")).unwrap_or_default();
        (v["docs"].as_u64().unwrap_or(0), v["bytes"].as_u64().unwrap_or(0))
    };
    let deadline = Instant::now() + LIMIT;
    let mut last = read().await;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = read().await;
        let status = person.text(".sync-status").await;
        if now == last
            && now.0 > 0
            && !status.contains("waiting")
            && person.text(".progress").await.is_empty()
        {
            return now;
        }
        assert!(Instant::now() < deadline, "IndexedDB still changing after {LIMIT:?}");
        last = now;
    }
}

/// Samples the memory of Chromium's whole process tree (browser,
/// renderers, GPU, utility) and keeps the peaks: every 50 ms the sum of
/// the processes' resident sizes (`peak_rss_mb`, which counts the pages of
/// Chromium's binary once per process that maps them: most of it), every
/// 200 ms the sum of their proportional sizes (`peak_pss_mb`: each shared
/// page split between the processes that share it, so the tree's real
/// share of the machine's memory).
struct RssSampler {
    peak_kb: Arc<AtomicU64>,
    peak_pss_kb: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(root: u32) -> Self {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let peak_pss_kb = Arc::new(AtomicU64::new(0));
        let (peak, peak_pss) = (peak_kb.clone(), peak_pss_kb.clone());
        let task = tokio::spawn(async move {
            for tick in 0u64.. {
                let tree = tree_memory_kb(root, tick % 4 == 0);
                peak.fetch_max(tree.0, Ordering::Relaxed);
                peak_pss.fetch_max(tree.1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak_kb, peak_pss_kb, task }
    }

    fn reset(&self) {
        self.peak_kb.store(0, Ordering::Relaxed);
        self.peak_pss_kb.store(0, Ordering::Relaxed);
    }

    fn peak_mb(&self) -> f64 {
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }

    fn peak_pss_mb(&self) -> f64 {
        self.peak_pss_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// Resident and (with `pss`, else 0) proportional memory (kB) of a process
/// and all its descendants, from /proc.
fn tree_memory_kb(root: u32, pss: bool) -> (u64, u64) {
    let mut procs: Vec<(u32, u32, u64)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return (0, 0) };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        };
        procs.push((pid, field("PPid:").unwrap_or(0) as u32, field("VmRSS:").unwrap_or(0)));
    }
    let pss_kb = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Pss:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let mut tree = vec![root];
    let (mut total, mut total_pss) = (0, 0);
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for (pid, ppid, rss) in &procs {
            if *pid == parent {
                total += rss;
                if pss {
                    total_pss += pss_kb(*pid);
                }
            }
            if *ppid == parent {
                tree.push(*pid);
            }
        }
        i += 1;
    }
    (total, total_pss)
}
