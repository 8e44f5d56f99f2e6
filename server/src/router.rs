//! Every route the server answers, in one place.

use axum::Router;
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::{AppState, sync};
use crate::handlers::{health, web};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::get))
        .route("/sync", get(sync::upgrade))
        // The web app: index.html, JS glue, WASM, service worker. Any other
        // path gets index.html so the client-side router can take it.
        .fallback_service(web::service(&state.static_dir))
        // Paths and statuses only: no URL carries patient data or secrets.
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
