//! `/api/documents`: the documents the signed-in user may read (the read
//! policy, `storage::read_access`).

use axum::Json;
use axum::extract::State;
use shared::api::DocumentInfo;

use crate::auth::AuthUser;
use crate::{AppState, Error};

/// `GET /api/documents`: every document the user may read.
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<DocumentInfo>>, Error> {
    let rows = state.store.readable_documents(&auth.user).await?;
    Ok(Json(rows.into_iter().map(|d| DocumentInfo { id: d.id, kind: d.kind }).collect()))
}
