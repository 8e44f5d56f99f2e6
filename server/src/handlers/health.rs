//! `GET /healthz`: is the server up, can it reach its database, and (with
//! several instances on PostgreSQL) does it hear the others' changes. A load
//! balancer takes an instance that answers 503 out of rotation.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;
use crate::sync::{CacheStats, ClusterStatus, HEARTBEAT_TIMEOUT};

#[derive(Serialize)]
pub struct Health {
    /// `ok`, or `unavailable` (with status 503).
    status: &'static str,
    database: &'static str,
    version: &'static str,
    /// Why the instance is unavailable; ids and states only.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'static str>,
    /// The connection that hears other instances (PostgreSQL only).
    #[serde(skip_serializing_if = "Option::is_none")]
    listener: Option<ListenerHealth>,
    /// Canonical documents in memory: how many, their estimated bytes, the
    /// budget (`--doc-cache-mb`) and how many were dropped to stay in it.
    documents: CacheStats,
}

#[derive(Serialize)]
pub struct ListenerHealth {
    listening: bool,
    /// Milliseconds since the database last answered on the listening
    /// connection; `null` before it first did.
    last_heartbeat_ms: Option<u64>,
    reconnects: u64,
}

pub async fn get(State(state): State<AppState>) -> Response {
    // A database whose network flow died never answers: bound the wait so
    // the check itself answers, within the load balancer's own timeout.
    let reachable =
        matches!(tokio::time::timeout(HEARTBEAT_TIMEOUT, state.store.ping()).await, Ok(Ok(())));
    let cluster: Option<ClusterStatus> = state.hub.cluster_status().map(|status| *status.borrow());
    let now = Instant::now();
    let problem = if !reachable {
        Some("the database does not answer")
    } else if cluster.is_some_and(|c| !c.hearing(now)) {
        Some(
            "not listening to other instances: their changes and access changes reach this one late",
        )
    } else {
        None
    };
    let health = Health {
        status: if problem.is_some() { "unavailable" } else { "ok" },
        database: state.store.backend().name(),
        version: env!("CARGO_PKG_VERSION"),
        problem,
        listener: cluster.map(|c| ListenerHealth {
            listening: c.listening,
            last_heartbeat_ms: c.last_heartbeat.map(|at| {
                u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX)
            }),
            reconnects: c.reconnects(),
        }),
        documents: state.hub.cache_stats(),
    };
    let status = if problem.is_some() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(health)).into_response()
}
