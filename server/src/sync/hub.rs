//! What all sync connections of one server share: the canonical documents
//! (loaded from storage on first use) and the stream of accepted changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use automerge::Automerge;
use shared::DocId;
use tokio::sync::{OwnedMutexGuard, broadcast};

use crate::storage::{Store, StoreError};

/// The server's copy of a document, exactly as committed to storage.
pub struct Canonical {
    pub doc: Automerge,
    /// Newest stored chunk and the stored sizes, for compaction.
    pub last_chunk: i64,
    pub snapshot_bytes: usize,
    pub incremental_bytes: usize,
}

impl Canonical {
    fn wants_compaction(&self) -> bool {
        self.incremental_bytes > self.snapshot_bytes.max(4096)
    }
}

/// A locked canonical document; `None` when no such document exists.
pub type Locked = OwnedMutexGuard<Option<Canonical>>;

pub struct Hub {
    store: Store,
    peer_id: String,
    docs: Mutex<HashMap<DocId, Arc<tokio::sync::Mutex<Option<Canonical>>>>>,
    changes: broadcast::Sender<DocId>,
    access: broadcast::Sender<()>,
}

impl Hub {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            peer_id: format!("portal-{}", uuid::Uuid::now_v7().simple()),
            docs: Mutex::default(),
            changes: broadcast::channel(16 * 1024).0,
            access: broadcast::channel(64).0,
        }
    }

    /// This server's automerge-repo peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Locks a document, loading it from storage first if needed. Callers
    /// locking several documents lock them in `DocId` order.
    pub async fn lock(&self, id: DocId) -> Result<Locked, StoreError> {
        let slot = self.docs.lock().expect("hub map lock").entry(id).or_default().clone();
        let mut guard = slot.lock_owned().await;
        if guard.is_none() {
            if let Some(stored) = self.store.load_document(id).await? {
                *guard = Some(Canonical {
                    doc: stored.to_automerge()?,
                    last_chunk: stored.last_chunk,
                    snapshot_bytes: stored.snapshot_bytes,
                    incremental_bytes: stored.incremental_bytes,
                });
            }
        }
        Ok(guard)
    }

    /// Records freshly committed chunks and folds them into a snapshot once
    /// they outgrow it, so loading stays proportional to the document's size.
    pub async fn committed(&self, id: DocId, canonical: &mut Canonical, chunk: i64, bytes: usize) -> Result<(), StoreError> {
        canonical.last_chunk = canonical.last_chunk.max(chunk);
        canonical.incremental_bytes += bytes;
        if canonical.wants_compaction() {
            let snapshot = canonical.doc.save();
            self.store.compact_document(id, &snapshot, canonical.last_chunk).await?;
            canonical.snapshot_bytes = snapshot.len();
            canonical.incremental_bytes = 0;
        }
        Ok(())
    }

    /// Announces committed changes to every connection.
    pub fn changed(&self, id: DocId) {
        // No receivers is fine: nobody else is connected.
        let _ = self.changes.send(id);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DocId> {
        self.changes.subscribe()
    }

    /// Consent or membership changed: connections recompute what they may read.
    pub fn access_changed(&self) {
        let _ = self.access.send(());
    }

    pub fn subscribe_access(&self) -> broadcast::Receiver<()> {
        self.access.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
