//! Builds the patient list's index (`storage::IndexRow`) for documents
//! stored before it existed: a database made before migration 0008, or
//! one an operator asked to reindex (`portal reindex`). Runs in the
//! background once the server serves; until it is done, a patient not yet
//! reached is missing from the staff patient list's search and today's
//! work, nothing else. Progress is stored per page, so a restart resumes.

use std::sync::Arc;

use super::Hub;
use super::summary;
use crate::storage::StoreError;

/// Documents per step: one read of storage, one transaction of rows.
const PAGE: usize = 200;

/// Runs the backfill if one is pending; logs counts only (no patient data).
pub async fn backfill_index(hub: Arc<Hub>) {
    match run(&hub).await {
        Ok(0) => {}
        Ok(documents) => tracing::info!(documents, "patient list index built"),
        Err(error) => {
            tracing::warn!(%error, "patient list index backfill stopped; it resumes at the next start");
        }
    }
}

async fn run(hub: &Hub) -> Result<usize, StoreError> {
    let store = hub.store();
    let Some(mut after) = store.index_backfill().await? else { return Ok(0) };
    tracing::info!("building the patient list index from stored documents");
    let mut done = 0;
    loop {
        let page = store.documents_after(&after, PAGE).await?;
        let Some(last) = page.last() else { break };
        // Read and written under the documents' locks, so a change
        // committed here meanwhile cannot be overwritten by an older row.
        let locked = hub.lock_all(page.iter().map(|d| d.id)).await?;
        let rows: Vec<_> = page
            .iter()
            .zip(&locked)
            .filter_map(|(doc, (_, guard))| {
                guard.as_ref().map(|canonical| summary::summarize(doc.kind, &canonical.doc))
            })
            .flatten()
            .collect();
        // Rebuilt from stored documents, the rows carry no time of their
        // own: they rank after any work written from now on.
        store.write_index(&rows, 0).await?;
        drop(locked);
        done += page.len();
        after = last.id.to_string();
        store.set_index_backfill(Some(&after)).await?;
    }
    store.set_index_backfill(None).await?;
    Ok(done)
}
