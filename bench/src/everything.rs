//! `portal-bench everything [--quick] [--runs 20] [--database-url postgres://...]`:
//! `GET /fhir/R4/Patient/{id}/$everything` for a long record over real HTTP.
//! The demo data set gets five years of Maria Santos's history
//! (`testkit::add_history`: 2,000 results in panels, 100 prescriptions,
//! 500 messages; a year, 400, 20 and 100 with `--quick`), then her session
//! asks for everything `runs` times in a row. Each call is timed from the
//! request until the last byte of the Bundle has arrived. The first call
//! is reported apart (its documents are already in the server's memory,
//! since the history was written through the hub); p50 and p99 are over
//! the calls after it, nearest rank, so with 20 calls p99 is the slowest.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use server::storage::NewSession;
use testkit::{History, TestServer};

use crate::{fail, fresh_database, round3};

pub struct EverythingPlan {
    pub history: History,
    pub runs: usize,
}

pub async fn everything(plan: EverythingPlan, postgres: Option<String>) {
    let db = fresh_database(postgres).await;
    let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
    let users = server::demo::seed(&app.store).await.expect("seed demo data");
    let maria = users.iter().find(|u| u.name == "Maria Santos").expect("Maria in the demo data");
    let patient = maria.patient.expect("Maria is a patient");
    let written = Instant::now();
    testkit::add_history(&app.hub, plan.history).await.expect("add the long history");
    let history_seconds = written.elapsed().as_secs_f64();

    // Maria's session, made directly in storage as an operator tool would
    // (the benchmark measures reading, not signing in).
    let cookie = server::auth::new_secret();
    let now = app.clock.now_ms();
    let actor = uuid::Uuid::now_v7().simple().to_string();
    assert!(app.store.bind_actor(&actor, maria.id, now).await.expect("bind actor"));
    let session = NewSession {
        id: &uuid::Uuid::now_v7().to_string(),
        token_hash: &server::auth::hash_secret(&cookie),
        user: maria.id,
        actor_id: &actor,
        expires_at: now + 3_600_000,
        passkey: None,
    };
    app.store.create_session(&session, now).await.expect("session");

    let url = format!("{}/fhir/R4/Patient/{patient}/$everything", app.base_url);
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(plan.runs);
    let mut first_ms = 0.0;
    let (mut bytes, mut resources) = (0, 0);
    for run in 0..=plan.runs {
        let started = Instant::now();
        let response = client
            .get(&url)
            .header("cookie", format!("portal_session={cookie}"))
            .send()
            .await
            .expect("$everything answers");
        if !response.status().is_success() {
            fail(&format!("$everything answered {}", response.status()));
        }
        let body = response.bytes().await.expect("the Bundle arrives");
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if run == 0 {
            first_ms = ms;
            let bundle: serde_json::Value = serde_json::from_slice(&body).expect("a JSON Bundle");
            resources = bundle["entry"].as_array().map_or(0, Vec::len);
        } else {
            times.push(ms);
        }
        bytes = body.len();
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        round3(
            times
                .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(f64::NAN),
        )
    };
    let line = json!({
        "scenario": "everything",
        "database": app.store.backend().name(),
        "years": plan.history.years,
        "results": plan.history.results,
        "prescriptions": plan.history.prescriptions,
        "messages": plan.history.messages,
        "resources": resources,
        "bytes": bytes,
        "runs": plan.runs,
        "first_ms": round3(first_ms),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "history_write_seconds": round3(history_seconds),
    });
    app.stop().await;
    db.drop_database().await;
    println!("{line}");
}
