//! `GET /healthz`: is the server up and can it reach its database.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::{AppState, Error};

#[derive(Serialize)]
pub struct Health {
    status: &'static str,
    database: &'static str,
    version: &'static str,
}

pub async fn get(State(state): State<AppState>) -> Result<Json<Health>, Error> {
    state.store.ping().await?;
    Ok(Json(Health { status: "ok", database: state.store.backend().name(), version: env!("CARGO_PKG_VERSION") }))
}
