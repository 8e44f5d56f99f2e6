//! `open-bench --staff [--patients 5000] [--quick] [--runs N]` (issue 17
//! part 2): a provider at a clinic with thousands of consenting patients
//! signs in on a fresh browser, the device takes its offline set, goes
//! offline and reloads.
//!
//! The patients are stored in bulk (`testkit::clinic::seed_clinic`), with
//! every `WORK_EVERY`th having an appointment today, a refill request or
//! an unread message. Printed, one JSON line:
//! - `first_screen_ms`: from the click on "Create a passkey" (the sign-up
//!   that signs the provider in) until the patient list shows its first
//!   row (from the server);
//! - `offline_set_ready_ms`: from the same click until the offline set is
//!   synced ("last synced" shows: every listed document confirmed), and
//!   the documents stored then (`idb_docs`, `idb_mb`);
//! - `offline_reload_ms` per run and their `p50`: navigation start to the
//!   first row of the list from this device's copy, network off (the shell
//!   from the service worker);
//! - memory (docs/benchmarks.md, "What the renderer's memory is"):
//!   `peak_rss_mb` and `peak_pss_mb` (Chromium's whole process tree, from
//!   sign-in to the end: browser, GPU, utility and renderer processes;
//!   the RSS sum counts Chromium's shared binary once per process, the PSS
//!   sum splits it); the page's renderer, found by a marker it allocates:
//!   `renderer_rss_mb` (resident, shared code included), `renderer_private_mb`
//!   (its private footprint, anonymous pages and swap: what Chromium's task
//!   manager shows) right after the reloads and `renderer_private_gc_mb`
//!   after a garbage collection of the page; `online_private_mb` and
//!   `online_wasm_memory_mb` the same page signed in and synced, before
//!   going offline; `blank_renderer_rss_mb` and `blank_private_mb` (the
//!   renderer of an `about:blank` page opened in the same browser right
//!   after, collected too: Chromium's own share of a renderer);
//!   `js_heap_mb` and `js_heap_gc_mb` (CDP `JSHeapUsedSize`), `wasm_memory_mb`.

use std::time::Instant;

use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::performance as cdp_performance;
use chromiumoxide::cdp::js_protocol::heap_profiler;
use chrono::DateTime;
use e2e::{Browser, wait_for_service_worker};
use serde_json::{Value, json};
use server::storage::Backend;
use testkit::clinic::seed_clinic;
use testkit::{TestDatabase, TestServer};

use super::{RssSampler, evaluate, poll, round, wait_for_idb_to_settle};

/// Records when the patient list first shows a row, on every new document:
/// `window.__listed` (ms since navigation start).
const WATCH_LIST: &str = "new MutationObserver((_, o) => {
    if (document.querySelector('.patients li')) { window.__listed = performance.now(); o.disconnect(); }
}).observe(document, { childList: true, subtree: true });";

/// The bytes of the app's WASM memory (the instance the page started:
/// `init` returns it once it has one).
const WASM_MEMORY: &str = "import('/app.js').then((m) => m.default()).then((w) => w.memory.buffer.byteLength).catch(() => -1)";

const LISTED: &str = "window.__listed ?? -1";

pub async fn run(patients: usize, runs: usize) {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = TestServer::start(&db, e2e::app_dist()).await;
    let users = server::demo::seed(&app.store).await.expect("seed demo data");
    let okafor = users.iter().find(|u| u.name.contains("Okafor")).expect("a provider");
    let now = DateTime::from_timestamp_millis(app.clock.now_ms()).expect("a time");
    let seeding = Instant::now();
    let seeded = seed_clinic(
        &app.store,
        (okafor.clinics[0], "Riverside Family Practice"),
        (okafor.id, okafor.name),
        patients,
        now,
    )
    .await
    .expect("seed the clinic");
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let work = seeded.iter().filter(|s| s.work).count();

    let mut browser = Browser::launch().await;
    let rss = RssSampler::start(browser.pid().expect("Chromium's process id"));
    let (link, _) = server::auth::accounts::issue_enrollment(
        &app.store,
        &app.base_url,
        okafor.id,
        None,
        app.clock.now_ms(),
    )
    .await
    .expect("enrollment link");
    let person = browser.person("Okafor").await;
    person
        .page
        .execute(AddScriptToEvaluateOnNewDocumentParams::new(WATCH_LIST))
        .await
        .expect("watch the list");
    person.page.goto(link).await.expect("open the enrollment link");
    person.wait_for("h2", "Create your passkey").await;
    rss.reset();
    evaluate(&person, "window.__clicked = performance.now()").await;
    person.click("button", "Create a passkey").await;
    let listed = poll(&person, LISTED, |v| v.as_f64().filter(|ms| *ms >= 0.0), "the list").await;
    let clicked = evaluate(&person, "window.__clicked").await.as_f64().unwrap_or(f64::NAN);
    let first_screen_ms = listed - clicked;
    person.wait_for(".sync-status", "last synced").await;
    let ready = evaluate(&person, "performance.now()").await.as_f64().unwrap_or(f64::NAN);
    let offline_set_ready_ms = ready - clicked;
    wait_for_service_worker(&person.page).await;
    let (idb_docs, idb_bytes) = wait_for_idb_to_settle(&person).await;
    // Signed in and synced, before going offline: the page that took the
    // offline set (its renderer is found after the reloads, which keep it).
    let online = renderers(browser.pid().expect("Chromium's process id"));
    let online_wasm = evaluate(&person, WASM_MEMORY).await;

    person.go_offline().await;
    person.wait_for(".sync-status", "Offline").await;
    let mut reloads = Vec::new();
    for run in 0..runs {
        person.page.reload().await.expect("reload");
        let ms = poll(
            &person,
            LISTED,
            |v| v.as_f64().filter(|ms| *ms >= 0.0),
            &format!("the list offline (run {run})"),
        )
        .await;
        let status = person.text(".sync-status").await;
        assert!(status.starts_with("Offline"), "the reloaded page is offline, not {status:?}");
        reloads.push(ms);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    person.page.execute(cdp_performance::EnableParams::default()).await.expect("performance");
    let metrics =
        person.page.execute(cdp_performance::GetMetricsParams::default()).await.expect("metrics");
    let metric = |name: &str| {
        metrics.result.metrics.iter().find(|m| m.name == name).map_or(f64::NAN, |m| m.value)
    };
    let wasm = evaluate(&person, WASM_MEMORY).await;
    let root = browser.pid().expect("Chromium's process id");
    // The page's renderer as the reloads left it, then after a garbage
    // collection: the back-to-back reloads leave each old document's heap,
    // DOM and WASM instance behind until V8 collects them, which Chromium
    // does by itself within 10-30 s of idle (watched: 105 MB private before,
    // 54 after); collecting at once makes the figure independent of timing.
    let as_is = renderers(root);
    collect_garbage(&person.page).await;
    let collected = renderers(root);
    let js_heap_gc = heap_used(&person.page).await;
    let app_renderer = renderer_of(&person.page, root).await;
    let page_in = |snapshot: &[Renderer]| {
        snapshot.iter().find(|r| r.pid == app_renderer).copied().unwrap_or_default()
    };
    let (app_as_is, app_collected) = (page_in(&as_is), page_in(&collected));
    // The same for an empty page, in the same browser and run: what of
    // the renderer's memory is Chromium's own and what is the app's.
    let blank = browser.open("about:blank").await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    collect_garbage(&blank).await;
    let blank_snapshot = renderers(root);
    let blank_renderer = renderer_of(&blank, root).await;
    let blank_mem =
        blank_snapshot.iter().find(|r| r.pid == blank_renderer).copied().unwrap_or_default();
    let _ = blank.close().await;
    let runs_ms: Vec<f64> = reloads.iter().map(|m| round(*m, 1)).collect();
    reloads.sort_by(f64::total_cmp);
    let fields: Vec<(&str, Value)> = vec![
        ("scenario", json!("staff-open")),
        ("patients", json!(patients)),
        ("work_patients", json!(work)),
        ("seed_seconds", json!(round(seed_seconds, 2))),
        ("first_screen_ms", json!(round(first_screen_ms, 1))),
        ("offline_set_ready_ms", json!(round(offline_set_ready_ms, 1))),
        ("idb_docs", json!(idb_docs)),
        ("idb_mb", json!(round(idb_bytes as f64 / 1048576.0, 2))),
        ("offline_reload_p50_ms", json!(round(reloads[reloads.len() / 2], 1))),
        ("offline_reload_max_ms", json!(round(reloads[reloads.len() - 1], 1))),
        ("runs_ms", json!(runs_ms)),
        ("peak_rss_mb", json!(round(rss.peak_mb(), 0))),
        ("peak_pss_mb", json!(round(rss.peak_pss_mb(), 0))),
        ("renderer_rss_mb", json!(mb(app_as_is.rss_kb))),
        ("renderer_private_mb", json!(mb(app_as_is.private_kb))),
        ("renderer_private_gc_mb", json!(mb(app_collected.private_kb))),
        ("blank_renderer_rss_mb", json!(mb(blank_mem.rss_kb))),
        ("blank_private_mb", json!(mb(blank_mem.private_kb))),
        ("online_private_mb", json!(mb(page_in(&online).private_kb))),
        ("online_wasm_memory_mb", json!(wasm_mb(&online_wasm))),
        ("js_heap_mb", json!(round(metric("JSHeapUsedSize") / 1048576.0, 1))),
        ("js_heap_gc_mb", json!(round(js_heap_gc / 1048576.0, 1))),
        ("wasm_memory_mb", json!(wasm_mb(&wasm))),
    ];
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
    println!("{{{}}}", body.join(","));
    rss.stop();
    browser.close().await;
    app.stop().await;
}

fn wasm_mb(bytes: &Value) -> f64 {
    bytes.as_f64().filter(|b| *b >= 0.0).map_or(f64::NAN, |b| round(b / 1048576.0, 1))
}

fn mb(kb: u64) -> f64 {
    round(kb as f64 / 1024.0, 1)
}

/// A renderer process's memory (kB): `rss_kb` resident, which counts the
/// pages of Chromium's binary and libraries every Chromium process shares
/// (about 100-125 MB of a renderer's); `private_kb` its anonymous resident
/// pages and swap, the memory only it holds: Chromium's own "private
/// memory footprint", the figure its task manager shows.
#[derive(Clone, Copy, Default)]
struct Renderer {
    pid: u32,
    rss_kb: u64,
    private_kb: u64,
}

/// A full garbage collection in the page's main V8 isolate.
async fn collect_garbage(page: &chromiumoxide::Page) {
    page.execute(heap_profiler::CollectGarbageParams::default()).await.expect("collect garbage");
    // Freed ArrayBuffers and WASM memories are unmapped by a task after
    // the collection.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
}

async fn heap_used(page: &chromiumoxide::Page) -> f64 {
    let metrics =
        page.execute(cdp_performance::GetMetricsParams::default()).await.expect("metrics");
    metrics.result.metrics.iter().find(|m| m.name == "JSHeapUsedSize").map_or(f64::NAN, |m| m.value)
}

/// The renderer that runs `page`: CDP does not tell a page's process, so
/// the page holds a 64 MiB array for a moment and the renderer whose
/// private memory grew by most of it is the page's. The array is released
/// again (measure before asking).
async fn renderer_of(page: &chromiumoxide::Page, root: u32) -> u32 {
    let before = renderers(root);
    page.evaluate("window.__mark = new Uint8Array(64 << 20).fill(1); 0")
        .await
        .expect("mark the renderer");
    let after = renderers(root);
    let _ = page.evaluate("delete window.__mark").await;
    let grown = |r: &Renderer| {
        let was = before.iter().find(|b| b.pid == r.pid).map_or(0, |b| b.private_kb);
        r.private_kb.saturating_sub(was)
    };
    let marked = after.iter().max_by_key(|r| grown(r)).expect("a renderer");
    assert!(grown(marked) > 32 * 1024, "no renderer grew by the page's 64 MiB marker");
    marked.pid
}

/// Chromium's renderer processes under `root` (the browser process): those
/// of pages and workers, without the browser's own WebUI ones (headless
/// Chromium runs an omnibox popup in two).
fn renderers(root: u32) -> Vec<Renderer> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut procs: Vec<(u32, u32, Renderer, bool)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let renderer =
            cmdline.contains("--type=renderer") && !cmdline.contains("--top-chrome-webui");
        let memory = Renderer {
            pid,
            rss_kb: field("VmRSS:"),
            private_kb: field("RssAnon:") + field("VmSwap:"),
        };
        procs.push((pid, field("PPid:") as u32, memory, renderer));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    procs.iter().filter(|p| p.3 && tree.contains(&p.0)).map(|p| p.2).collect()
}
