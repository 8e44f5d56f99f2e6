//! What all sync connections of one server share: the canonical documents
//! (loaded from storage on first use) and the stream of accepted changes.
//!
//! Several instances may share one PostgreSQL database (`cluster.rs`): the
//! cached canonical documents then follow the database through each stored
//! chunk's per-document sequence number, and what one instance announces
//! reaches the others' connections as well.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use automerge::Automerge;
use shared::schema::Collection;
use shared::{ClinicId, DocId, DocKind, PatientId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};

use super::cache::{CacheStats, DocCache, Locked};
use super::canonical::{self, Canonical};
use super::cluster::{Cluster, ClusterStatus, Heard};
use super::ended::{Ended, OpenSessions};
use super::parallel;
use super::summary;
use crate::Clock;
use crate::auth::EndReason;
use crate::storage::{AuditEvent, Author, Backend, IndexRow, NewChunk, Store, StoreError, Writes};

/// Changes accepted into a locked document: the copy with them applied, and
/// what to store for them.
pub(crate) struct Accepted {
    pub(crate) id: DocId,
    /// What the document is (its index rows depend on it, `summary`).
    pub(crate) kind: DocKind,
    pub(crate) doc: Automerge,
    pub(crate) data: Vec<u8>,
    /// `data` is a snapshot of the whole copy, replacing the stored chunks
    /// it holds.
    pub(crate) snapshot: bool,
    /// The collections the changes write into, when the write policy
    /// placed them (`Plan`); `None` re-reads the whole index row.
    pub(crate) touched: Option<BTreeSet<Collection>>,
}

/// A connection, as the committer of changes (`Hub::commit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnectionId(u64);

impl ConnectionId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A document whose committed changes connections may lack, and the
/// connection that committed them, if one here did: its own answer carried
/// them already, so it is not sent them again (most of a catch-up's
/// announcements are the device's own changes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Announced {
    pub(crate) id: DocId,
    pub(crate) by: Option<ConnectionId>,
}

pub struct Hub {
    store: Store,
    /// The time commits are stored and audited at (the server's clock).
    clock: Clock,
    peer_id: String,
    /// The canonical documents in memory, within a byte budget.
    docs: Arc<Mutex<DocCache>>,
    changes: broadcast::Sender<Announced>,
    access: broadcast::Sender<()>,
    /// Open work of a patient at a clinic was just stored (`commit`): a
    /// staff device whose offline set lacks the patient lists again.
    work: broadcast::Sender<(ClinicId, PatientId)>,
    /// Sessions ended on this instance, whose sockets close at once.
    ended: broadcast::Sender<Arc<Ended>>,
    /// Sessions with sockets open here (re-checked by `watch_sessions`).
    open: Arc<OpenSessions>,
    /// Other instances on the same PostgreSQL database; `None` on SQLite.
    cluster: Option<Cluster>,
    /// Operations being judged and applied, across all connections.
    ops_in_flight: Arc<Semaphore>,
}

/// Operations all connections may have in flight at once: each costs memory
/// while it is judged and applied (about a hundred bytes in Automerge, more
/// in a fork's copy of its document), so this bounds what clients can make
/// the server hold, whatever their number.
pub const MAX_OPS_IN_FLIGHT: u32 = 400_000;

impl Hub {
    /// A hub for one process alone (SQLite, or tests that want no peers),
    /// holding documents in memory up to `cache_bytes` (estimated).
    pub fn new(store: Store, clock: Clock, cache_bytes: usize) -> Self {
        Self::build(store, clock, new_peer_id(), None, cache_bytes)
    }

    /// The hub a server runs with: on PostgreSQL it also publishes what it
    /// commits and listens for what other instances commit. Call from
    /// within a Tokio runtime.
    pub fn start(store: Store, clock: Clock, cache_bytes: usize) -> Arc<Self> {
        if store.backend() != Backend::Postgres {
            return Arc::new(Self::new(store, clock, cache_bytes));
        }
        let peer_id = new_peer_id();
        let (cluster, heard) = Cluster::start(store.clone(), peer_id.clone());
        let hub = Arc::new(Self::build(store, clock, peer_id, Some(cluster), cache_bytes));
        tokio::spawn(act_on_heard(Arc::downgrade(&hub), heard));
        hub
    }

    fn build(
        store: Store,
        clock: Clock,
        peer_id: String,
        cluster: Option<Cluster>,
        cache_bytes: usize,
    ) -> Self {
        Self {
            store,
            clock,
            peer_id,
            docs: Arc::new(Mutex::new(DocCache::new(cache_bytes))),
            changes: broadcast::channel(16 * 1024).0,
            access: broadcast::channel(64).0,
            work: broadcast::channel(1024).0,
            ended: broadcast::channel(256).0,
            open: Arc::default(),
            cluster,
            ops_in_flight: Arc::new(Semaphore::new(MAX_OPS_IN_FLIGHT as usize)),
        }
    }

    /// Waits until `ops` more operations may be judged and applied; they
    /// count until the permit is dropped.
    pub async fn admit_ops(&self, ops: u64) -> OwnedSemaphorePermit {
        let ops = ops.clamp(1, u64::from(MAX_OPS_IN_FLIGHT)) as u32;
        self.ops_in_flight
            .clone()
            .acquire_many_owned(ops)
            .await
            .expect("the semaphore is never closed")
    }

    /// `ops` more operations admitted at once, or `None` if that would
    /// mean waiting: a connection holding a batch's permit admits its next
    /// batch this way, so it never waits for permits while holding some
    /// (connections doing that could each wait for the others forever).
    pub fn try_admit_ops(&self, ops: u64) -> Option<OwnedSemaphorePermit> {
        let ops = ops.clamp(1, u64::from(MAX_OPS_IN_FLIGHT)) as u32;
        self.ops_in_flight.clone().try_acquire_many_owned(ops).ok()
    }

    /// This server's automerge-repo peer id; also names the instance in
    /// notifications to other instances.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Locks a document, loading it from storage first if needed. Callers
    /// locking several documents lock them in `DocId` order (`lock_all`).
    pub(crate) async fn lock(&self, id: DocId) -> Result<Locked, StoreError> {
        let (_, guard) = self.lock_all([id]).await?.pop().expect("one document locked");
        Ok(guard)
    }

    /// Locks documents in `DocId` order, so that callers never deadlock,
    /// loading those not held yet with one read of storage.
    pub(crate) async fn lock_all(
        &self,
        ids: impl IntoIterator<Item = DocId>,
    ) -> Result<Vec<(DocId, Locked)>, StoreError> {
        let ids: BTreeSet<DocId> = ids.into_iter().collect();
        let mut locked = Vec::with_capacity(ids.len());
        for id in ids {
            let slot = self.cache().slot(id);
            locked.push((id, Locked::new(slot.lock_owned().await, id, self.docs.clone())));
        }
        self.load_missing(&mut locked).await?;
        Ok(locked)
    }

    /// Locks documents as `lock_all` does if none is locked by anyone
    /// else, without loading them (`load_missing`); `None`, holding
    /// nothing, if one is. A connection holding a batch's locks while it
    /// commits locks its next batch this way, so it never waits for locks
    /// while holding some out of order.
    pub(crate) fn try_lock_all(
        &self,
        ids: impl IntoIterator<Item = DocId>,
    ) -> Option<Vec<(DocId, Locked)>> {
        let ids: BTreeSet<DocId> = ids.into_iter().collect();
        let mut locked = Vec::with_capacity(ids.len());
        for id in ids {
            let slot = self.cache().slot(id);
            let guard = slot.try_lock_owned().ok()?;
            locked.push((id, Locked::new(guard, id, self.docs.clone())));
        }
        Some(locked)
    }

    /// Loads the locked documents not held in memory, with one read, and
    /// turns their bytes into documents on every core: at the start of a
    /// catch-up of thousands of documents this was one core's work while
    /// the other idled.
    pub(crate) async fn load_missing(
        &self,
        locked: &mut [(DocId, Locked)],
    ) -> Result<(), StoreError> {
        let missing: Vec<DocId> =
            locked.iter().filter(|(_, guard)| guard.is_none()).map(|(id, _)| *id).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let stored = self.store.load_documents(&missing).await?;
        let loaded = parallel::map(stored.into_iter().collect(), |(id, stored)| {
            let doc = stored.to_automerge();
            (
                id,
                doc.map(|doc| {
                    Canonical::new(doc, stored.seq, stored.snapshot_bytes, stored.incremental_bytes)
                }),
            )
        })
        .await;
        let mut loaded: HashMap<DocId, Result<Canonical, StoreError>> =
            loaded.into_iter().collect();
        for (id, guard) in locked.iter_mut() {
            if let Some(canonical) = loaded.remove(id) {
                **guard = Some(canonical?);
            }
        }
        Ok(())
    }

    /// The one way accepted changes enter the record, for every writer:
    /// stores them (with the batch's audit rows and, for a person's
    /// changes, the checks `Store::store_writes` makes under its locks),
    /// installs each copy, compacts what outgrew its snapshot, and announces
    /// the documents here and to other instances. Nothing is installed or
    /// announced unless everything was stored. A document another instance
    /// wrote since its copy was read fails with `StoreError::Stale`, its
    /// copy already caught up: judge the changes again and retry. `by`,
    /// the connection committing, is not told of them again.
    pub(crate) async fn commit(
        &self,
        locked: &mut BTreeMap<DocId, Locked>,
        accepted: Vec<Accepted>,
        events: &[AuditEvent<'_>],
        author: Option<Author<'_>>,
        by: Option<ConnectionId>,
    ) -> Result<(), StoreError> {
        let held = |id: &DocId| locked.get(id).and_then(|g| g.as_ref()).map(|c| c.seq);
        let chunks: Vec<NewChunk<'_>> = accepted
            .iter()
            .map(|a| NewChunk {
                doc: a.id,
                data: &a.data,
                snapshot_through: if a.snapshot { held(&a.id) } else { None },
                expected_seq: held(&a.id),
            })
            .collect();
        // The patient list's and work queue's rows, with the changes.
        let index: Vec<IndexRow> = accepted
            .iter()
            .flat_map(|a| summary::changed_rows(a.kind, a.touched.as_ref(), &a.doc))
            .collect();
        let now = self.clock.now_ms();
        let stored = self
            .store
            .store_writes(&Writes { chunks: &chunks, events, author, now, index: &index })
            .await;
        let seqs = match stored {
            Ok(seqs) => seqs,
            Err(StoreError::Stale(stale)) => {
                for id in &stale {
                    if let Some(canonical) = locked.get_mut(id).and_then(|g| g.as_mut()) {
                        self.catch_up(*id, canonical).await?;
                    }
                }
                return Err(StoreError::Stale(stale));
            }
            Err(error) => return Err(error),
        };
        drop(chunks);
        let mut compact = Vec::new();
        let mut changed = Vec::new();
        for (a, seq) in accepted.into_iter().zip(seqs) {
            let canonical = locked
                .get_mut(&a.id)
                .and_then(|g| g.as_mut())
                .expect("accepted documents are locked");
            canonical.doc = a.doc;
            if a.snapshot {
                canonical.snapshot_bytes = a.data.len();
                canonical.incremental_bytes = 0;
            } else {
                canonical.incremental_bytes += a.data.len();
            }
            canonical.seq = seq;
            if canonical.wants_compaction() {
                compact.push(a.id);
            }
            changed.push(a.id);
        }
        self.compact(locked, &compact).await?;
        for id in changed {
            self.changed(id, by);
        }
        // Open work stored for a patient at a clinic (a message, a refill
        // or appointment request, a booked appointment): the clinic's staff
        // connected here whose devices lack the patient are told to list
        // again (`connection::work_arrived`, which asks the read policy),
        // here and on other instances.
        for row in &index {
            if let IndexRow::Work { clinic, patient, value, .. } = row
                && !value.is_empty()
            {
                self.work_arrived_here(*clinic, *patient);
                if let Some(cluster) = &self.cluster {
                    cluster.work_arrived(*clinic, *patient);
                }
            }
        }
        Ok(())
    }

    /// Folds each document's chunks into a snapshot (one transaction), so
    /// loading stays proportional to its size. Sync stores a snapshot in
    /// place of a batch's changes when they would outgrow it, so this is
    /// rarely needed.
    async fn compact(
        &self,
        locked: &mut BTreeMap<DocId, Locked>,
        ids: &[DocId],
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let snapshots: Vec<(DocId, Vec<u8>, i64)> = ids
            .iter()
            .filter_map(|id| {
                locked.get(id)?.as_ref().map(|c| (*id, canonical::snapshot(&c.doc), c.seq))
            })
            .collect();
        let batch: Vec<(DocId, &[u8], i64)> =
            snapshots.iter().map(|(id, data, seq)| (*id, data.as_slice(), *seq)).collect();
        let snapshot_seqs = self.store.compact_documents(&batch, self.clock.now_ms()).await?;
        for ((id, snapshot, _), snapshot_seq) in snapshots.iter().zip(snapshot_seqs) {
            let Some(canonical) = locked.get_mut(id).and_then(|g| g.as_mut()) else { continue };
            if snapshot_seq == canonical.seq + 1 {
                canonical.seq = snapshot_seq;
            }
            canonical.snapshot_bytes = snapshot.len();
            canonical.incremental_bytes = 0;
        }
        Ok(())
    }

    /// Loads what other instances stored after this copy's sequence number.
    /// Returns whether the document changed.
    pub(super) async fn catch_up(
        &self,
        id: DocId,
        canonical: &mut Canonical,
    ) -> Result<bool, StoreError> {
        let chunks = self.store.chunks_after(id, canonical.seq).await?;
        if chunks.is_empty() {
            return Ok(false);
        }
        let before = canonical.doc.get_heads();
        for (seq, data) in chunks {
            canonical
                .doc
                .load_incremental(&data)
                .map_err(|e| StoreError::Corrupt(format!("a stored chunk does not load: {e}")))?;
            canonical.seq = canonical.seq.max(seq);
            canonical.incremental_bytes += data.len();
        }
        Ok(canonical.doc.get_heads() != before)
    }

    /// Another instance committed changes to `id`: if this instance holds
    /// the document, it reads them from storage and tells its connections.
    async fn refresh(&self, id: DocId) -> Result<(), StoreError> {
        let Some(slot) = self.cache().get(id) else {
            // Not in memory here, but a connection here may sync it (the
            // copy was evicted): it loads the document afresh when it
            // next locks it.
            let _ = self.changes.send(Announced { id, by: None });
            return Ok(());
        };
        let mut guard = slot.lock().await;
        let Some(canonical) = guard.as_mut() else { return Ok(()) };
        if self.catch_up(id, canonical).await? {
            drop(guard);
            let _ = self.changes.send(Announced { id, by: None });
        }
        Ok(())
    }

    /// After (re)connecting to other instances: anything they announced
    /// while this one was not listening is re-read. Every loaded document
    /// whose stored sequence number moved on is refreshed and announced,
    /// and connections recompute what they may read.
    async fn resync(&self) -> Result<(), StoreError> {
        let _ = self.access.send(());
        let (held, evicted) = {
            let cache = self.cache();
            (cache.held(), cache.evicted().into_iter().collect::<HashMap<_, _>>())
        };
        let ids: Vec<DocId> = held.iter().chain(evicted.keys()).copied().collect();
        let mut refreshed = 0;
        for (id, stored) in self.store.document_seqs(&ids).await? {
            let slot = self.cache().get(id);
            let moved = match slot {
                Some(slot) => slot.lock().await.as_ref().is_some_and(|c| c.seq < stored),
                None => evicted.get(&id).is_some_and(|&seq| seq < stored),
            };
            if moved {
                self.refresh(id).await?;
                self.cache().evicted_moved(id, stored);
                refreshed += 1;
            }
        }
        tracing::info!(
            documents = ids.len(),
            refreshed,
            "cluster: re-read documents changed while not listening"
        );
        Ok(())
    }

    /// Announces committed changes to every connection, here and on other
    /// instances.
    fn changed(&self, id: DocId, by: Option<ConnectionId>) {
        // No receivers is fine: nobody else is connected.
        let _ = self.changes.send(Announced { id, by });
        if let Some(cluster) = &self.cluster {
            cluster.document_changed(id);
        }
    }

    /// Announces committed documents to other instances before returning,
    /// for a process that exits right after committing (`portal import`):
    /// its hub has no publishing task to wait for.
    pub async fn announce_now(&self, ids: &[DocId]) -> Result<(), StoreError> {
        let ids: BTreeSet<DocId> = ids.iter().copied().collect();
        super::cluster::announce(&self.store, &self.peer_id, &ids).await
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Announced> {
        self.changes.subscribe()
    }

    /// Consent or membership changed: connections recompute what they may
    /// read, here and on other instances.
    pub fn access_changed(&self) {
        self.access_changed_here();
        if let Some(cluster) = &self.cluster {
            cluster.access_changed();
        }
    }

    pub(super) fn access_changed_here(&self) {
        let _ = self.access.send(());
    }

    pub fn subscribe_access(&self) -> broadcast::Receiver<()> {
        self.access.subscribe()
    }

    fn work_arrived_here(&self, clinic: ClinicId, patient: PatientId) {
        // No receivers is fine: no staff connected here.
        let _ = self.work.send((clinic, patient));
    }

    /// Open work stored for a patient at a clinic, on any instance.
    pub fn subscribe_work(&self) -> broadcast::Receiver<(ClinicId, PatientId)> {
        self.work.subscribe()
    }

    /// Sessions just ended (in storage): their sockets on this instance
    /// close now, saying why; other instances' sockets notice within
    /// `SESSION_RECHECK`.
    pub fn sessions_ended(&self, sessions: Vec<String>, reason: EndReason) {
        let _ = self.ended.send(Arc::new(Ended { sessions, reason }));
    }

    pub fn subscribe_ended(&self) -> broadcast::Receiver<Arc<Ended>> {
        self.ended.subscribe()
    }

    pub fn open_sessions(&self) -> &Arc<OpenSessions> {
        &self.open
    }

    /// Whether this instance listens to other instances, and how often it
    /// has (re)connected; `None` on SQLite.
    pub fn cluster_status(&self) -> Option<tokio::sync::watch::Receiver<ClusterStatus>> {
        self.cluster.as_ref().map(Cluster::status)
    }

    /// Tests: keep the listener from reconnecting after it lost its
    /// connection, so the recovery path can be observed.
    #[cfg(feature = "testing")]
    pub fn hold_cluster_reconnect(&self, hold: bool) {
        if let Some(cluster) = &self.cluster {
            cluster.hold_reconnect(hold);
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock commits are stored by (the server's).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// What the document cache holds.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache().stats()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, DocCache> {
        self.docs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Acts on what the cluster's listener heard from other instances. Holds
/// the hub weakly: the hub owns the cluster, whose listener feeds this
/// task, so the task ends when the hub is dropped (the channel closes).
/// Each event is handled in its own task, so a slow re-read never delays
/// the next notification.
async fn act_on_heard(hub: Weak<Hub>, mut heard: mpsc::UnboundedReceiver<Heard>) {
    while let Some(event) = heard.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        match event {
            Heard::Access => hub.access_changed_here(),
            Heard::Work(arrived) => {
                for (clinic, patient) in arrived {
                    hub.work_arrived_here(clinic, patient);
                }
            }
            Heard::Documents(ids) => {
                tokio::spawn(async move {
                    for id in ids {
                        if let Err(error) = hub.refresh(id).await {
                            tracing::error!(%error, doc = %id, "cluster: reading another instance's changes failed");
                        }
                    }
                });
            }
            Heard::Missed { done } => {
                tokio::spawn(async move {
                    if let Err(error) = hub.resync().await {
                        tracing::error!(%error, "cluster: re-reading changed documents failed");
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                });
            }
        }
    }
}

fn new_peer_id() -> String {
    format!("portal-{}", uuid::Uuid::now_v7().simple())
}
