//! `/api/documents`: the documents the signed-in user may read (the read
//! policy, `storage::read_access`).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use shared::{DocId, DocKind};

use crate::auth::AuthUser;
use crate::{AppState, Error};

#[derive(Serialize)]
pub struct Document {
    id: DocId,
    #[serde(flatten)]
    kind: DocKind,
}

/// `GET /api/documents`: every document the user may read.
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<Document>>, Error> {
    let rows = state.store.readable_documents(&auth.user).await?;
    Ok(Json(rows.into_iter().map(|d| Document { id: d.id, kind: d.kind }).collect()))
}
