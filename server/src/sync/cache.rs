//! The hub's canonical documents in memory, within a byte budget.
//!
//! A document is loaded from storage when a connection or writer first
//! locks it, and stays while it is used. Once the documents held outgrow
//! the budget (`--doc-cache-mb`), the least recently used ones that nobody
//! holds are dropped, down to `LOW_WATER` of the budget, so a sweep runs
//! at most once per tenth of the budget loaded. Dropping one loses
//! nothing: storage has every change, and the next lock loads it again.
//!
//! What eviction must not break is announcing: a connection may sync a
//! document this instance no longer holds. So another instance's change
//! to a document not held here is still announced (`Hub::refresh`), and
//! the sequence number each evicted document had is remembered, so that a
//! re-read after the cluster listener was deaf (`Hub::resync`) finds the
//! evicted documents that moved on as well as the held ones.
//!
//! Sizes are estimates from Automerge's own counts and its values' bytes
//! (`Canonical::estimated_bytes`), checked against a counting allocator
//! (`server/tests/doc_estimate.rs`); the soak benchmark (`portal-bench soak`)
//! checks the budget against the process's resident memory.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use shared::DocId;
use tokio::sync::OwnedMutexGuard;

use super::canonical::Canonical;

/// A document's place in the cache: `None` inside until loaded (or when
/// storage has no such document).
pub(super) type Slot = Arc<tokio::sync::Mutex<Option<Canonical>>>;

/// The budget a sweep evicts down to, in tenths.
const LOW_WATER_TENTHS: usize = 9;

pub(super) struct DocCache {
    entries: HashMap<DocId, Entry>,
    /// Sequence numbers of documents evicted since they were last loaded.
    evicted: HashMap<DocId, i64>,
    /// Sum of the entries' estimates.
    bytes: usize,
    budget: usize,
    /// Counts uses, to order entries by their last.
    clock: u64,
}

struct Entry {
    slot: Slot,
    bytes: usize,
    used: u64,
}

/// What the cache holds, for `/healthz` and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub documents: usize,
    pub bytes: usize,
    pub budget: usize,
    pub evicted: usize,
}

impl DocCache {
    pub(super) fn new(budget: usize) -> Self {
        Self { entries: HashMap::new(), evicted: HashMap::new(), bytes: 0, budget, clock: 0 }
    }

    /// The slot for `id`, made empty if there is none, and counted as used.
    pub(super) fn slot(&mut self, id: DocId) -> Slot {
        self.clock += 1;
        let used = self.clock;
        let entry = self.entries.entry(id).or_insert_with(|| Entry {
            slot: Slot::default(),
            bytes: 0,
            used,
        });
        entry.used = used;
        entry.slot.clone()
    }

    /// The slot for `id` if the document is in memory (or being loaded).
    pub(super) fn get(&self, id: DocId) -> Option<Slot> {
        self.entries.get(&id).map(|e| e.slot.clone())
    }

    /// The documents in memory.
    pub(super) fn held(&self) -> Vec<DocId> {
        self.entries.keys().copied().collect()
    }

    /// Evicted documents and the sequence number each was evicted at.
    pub(super) fn evicted(&self) -> Vec<(DocId, i64)> {
        self.evicted.iter().map(|(id, seq)| (*id, *seq)).collect()
    }

    /// An evicted document was found to have moved on to `seq` (and was
    /// announced): remember that, so it is not announced again.
    pub(super) fn evicted_moved(&mut self, id: DocId, seq: i64) {
        if let Some(known) = self.evicted.get_mut(&id) {
            *known = seq;
        }
    }

    /// A lock on `id` was released holding a copy of `bytes` (0 for none)
    /// at `seq`: update the estimate, then sweep if over budget.
    fn released(&mut self, id: DocId, bytes: usize, loaded: bool) {
        if let Some(entry) = self.entries.get_mut(&id) {
            self.bytes = self.bytes - entry.bytes + bytes;
            entry.bytes = bytes;
        }
        if loaded {
            self.evicted.remove(&id);
        }
        if self.bytes > self.budget {
            self.sweep();
        }
    }

    /// Drops the least recently used documents nobody holds until the
    /// estimate is under `LOW_WATER_TENTHS` of the budget. "Nobody holds"
    /// is exact: every holder clones the slot under the same lock this
    /// runs under, so a slot whose only reference is the map's is not
    /// locked, nor about to be.
    fn sweep(&mut self) {
        let target = self.budget / 10 * LOW_WATER_TENTHS;
        let mut idle: Vec<(u64, DocId)> = self
            .entries
            .iter()
            .filter(|(_, e)| Arc::strong_count(&e.slot) == 1)
            .map(|(id, e)| (e.used, *id))
            .collect();
        idle.sort_unstable();
        for (_, id) in idle {
            if self.bytes <= target {
                break;
            }
            let entry = self.entries.remove(&id).expect("listed above");
            self.bytes -= entry.bytes;
            let seq = entry.slot.try_lock().ok().and_then(|copy| copy.as_ref().map(|c| c.seq));
            if let Some(seq) = seq {
                self.evicted.insert(id, seq);
            }
        }
    }

    pub(super) fn stats(&self) -> CacheStats {
        CacheStats {
            documents: self.entries.len(),
            bytes: self.bytes,
            budget: self.budget,
            evicted: self.evicted.len(),
        }
    }
}

/// A locked canonical document; `None` inside when no such document exists.
/// Releasing it tells the cache the copy's new size.
pub(crate) struct Locked {
    /// Always `Some` until dropped.
    guard: Option<OwnedMutexGuard<Option<Canonical>>>,
    id: DocId,
    cache: Arc<Mutex<DocCache>>,
}

impl Locked {
    pub(super) fn new(
        guard: OwnedMutexGuard<Option<Canonical>>,
        id: DocId,
        cache: Arc<Mutex<DocCache>>,
    ) -> Self {
        Self { guard: Some(guard), id, cache }
    }
}

impl Deref for Locked {
    type Target = Option<Canonical>;
    fn deref(&self) -> &Self::Target {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else { return };
        let bytes = guard.as_ref().map_or(0, Canonical::estimated_bytes);
        let loaded = guard.is_some();
        // Unlocked first, so that this document too may be evicted now.
        drop(guard);
        // A poisoned lock means a panic elsewhere already; the estimate is
        // only an estimate, so keep going.
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.released(self.id, bytes, loaded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::PatientId;
    use shared::schema::DocKind;

    fn id() -> DocId {
        DocKind::PatientRecord { patient: PatientId::mint() }.doc_id()
    }

    /// Locks `id` in `cache`, loads an empty document at `seq` into it.
    async fn load(cache: &Arc<Mutex<DocCache>>, id: DocId, seq: i64) -> Locked {
        let slot = cache.lock().unwrap().slot(id);
        let mut locked = Locked::new(slot.lock_owned().await, id, cache.clone());
        *locked = Some(Canonical::new(automerge::Automerge::new(), seq, 0, 0));
        locked
    }

    #[tokio::test]
    async fn the_least_recently_used_documents_nobody_holds_go_first_and_their_seq_is_kept() {
        let one = Canonical::new(automerge::Automerge::new(), 0, 0, 0).estimated_bytes();
        // Room for three documents.
        let cache = Arc::new(Mutex::new(DocCache::new(3 * one + one / 2)));
        let (a, b, c, d) = (id(), id(), id(), id());
        drop(load(&cache, a, 1).await);
        drop(load(&cache, b, 2).await);
        drop(load(&cache, c, 3).await);
        // `a` used again: `b` is now the least recently used.
        drop(load(&cache, a, 1).await);
        drop(load(&cache, d, 4).await);
        {
            let cache = cache.lock().unwrap();
            assert_eq!(cache.stats().documents, 3);
            assert!(cache.get(b).is_none(), "b was least recently used");
            assert_eq!(cache.evicted(), vec![(b, 2)]);
        }
        // Over budget with everything but `c` evictable: `c` stays while held.
        let held = load(&cache, c, 3).await;
        cache.lock().unwrap().budget = 0;
        drop(load(&cache, a, 1).await);
        assert!(cache.lock().unwrap().get(c).is_some(), "a held document is never evicted");
        drop(held);
        let cache = cache.lock().unwrap();
        assert_eq!(cache.stats().documents, 0);
        assert_eq!(cache.stats().bytes, 0);
        let mut evicted = cache.evicted();
        evicted.sort();
        let mut expected = vec![(a, 1), (b, 2), (c, 3), (d, 4)];
        expected.sort();
        assert_eq!(evicted, expected);
    }

    #[tokio::test]
    async fn loading_an_evicted_document_again_forgets_its_seq() {
        let cache = Arc::new(Mutex::new(DocCache::new(0)));
        let a = id();
        drop(load(&cache, a, 7).await);
        assert_eq!(cache.lock().unwrap().evicted(), vec![(a, 7)]);
        let again = load(&cache, a, 8).await;
        drop(again);
        // Evicted again at its new seq.
        assert_eq!(cache.lock().unwrap().evicted(), vec![(a, 8)]);
    }
}
