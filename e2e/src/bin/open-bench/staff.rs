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
//! - `peak_rss_mb` (Chromium's whole process tree, from sign-in to the end:
//!   browser, GPU, utility and renderer processes), `renderer_rss_mb` (the
//!   largest renderer, the page's, after the reloads),
//!   `blank_renderer_rss_mb` (the renderer of an `about:blank` page opened
//!   in the same browser right after: Chromium's own share of a renderer),
//!   `js_heap_mb` (CDP `JSHeapUsedSize`), `wasm_memory_mb`.

use std::time::Instant;

use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::performance as cdp_performance;
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
    let wasm = evaluate(&person, "import('/app.js').then((m) => m.default()).then((w) => w.memory.buffer.byteLength).catch(() => -1)").await;
    let root = browser.pid().expect("Chromium's process id");
    let renderers_before = renderers(root);
    let (app_renderer, app_kb) =
        renderers_before.iter().copied().max_by_key(|r| r.1).unwrap_or((0, 0));
    let renderer_mb = app_kb as f64 / 1024.0;
    // The same for an empty page, in the same browser and run: what of
    // the renderer's memory is Chromium's own and what is the app's.
    let blank = browser.open("about:blank").await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let after = renderers(root);
    let fresh: Vec<u64> = after
        .iter()
        .filter(|(pid, _)| !renderers_before.iter().any(|(p, _)| p == pid))
        .map(|r| r.1)
        .collect();
    // A spare renderer Chromium started earlier may host it: then the
    // largest renderer other than the app's.
    let blank_kb = fresh.into_iter().max().unwrap_or_else(|| {
        after.iter().filter(|(pid, _)| *pid != app_renderer).map(|r| r.1).max().unwrap_or(0)
    });
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
        ("renderer_rss_mb", json!(round(renderer_mb, 0))),
        ("blank_renderer_rss_mb", json!(round(blank_kb as f64 / 1024.0, 0))),
        ("js_heap_mb", json!(round(metric("JSHeapUsedSize") / 1048576.0, 1))),
        (
            "wasm_memory_mb",
            json!(
                wasm.as_f64().filter(|b| *b >= 0.0).map_or(f64::NAN, |b| round(b / 1048576.0, 1))
            ),
        ),
    ];
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
    println!("{{{}}}", body.join(","));
    rss.stop();
    browser.close().await;
    app.stop().await;
}

/// Chromium's renderer processes under `root` (the browser process) and
/// their resident memory (kB): the largest is the page's, without the
/// browser, GPU and utility processes `peak_rss_mb` adds.
fn renderers(root: u32) -> Vec<(u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut procs: Vec<(u32, u32, u64, bool)> = Vec::new();
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
        };
        let renderer = cmdline.contains("--type=renderer");
        procs.push((
            pid,
            field("PPid:").unwrap_or(0) as u32,
            field("VmRSS:").unwrap_or(0),
            renderer,
        ));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    procs.iter().filter(|p| p.3 && tree.contains(&p.0)).map(|p| (p.0, p.2)).collect()
}
