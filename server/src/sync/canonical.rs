//! The server's copy of one document, exactly as committed to storage,
//! with the sizes compaction and the cache budget need and the sync
//! messages it generated lately.

use std::collections::HashMap;

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash, ReadDoc};

/// The server's copy of a document, exactly as committed to storage. Only
/// the hub changes it (`Hub::commit`, `Hub::catch_up`).
pub(crate) struct Canonical {
    pub(super) doc: Automerge,
    /// The document's stored sequence number this copy holds everything up to.
    pub(crate) seq: i64,
    /// Stored sizes, for compaction.
    pub(crate) snapshot_bytes: usize,
    pub(crate) incremental_bytes: usize,
    /// Sync messages generated from this copy, see `sync_message`.
    memo: SyncMemo,
}

/// Most sync states remembered per document, and the largest message kept:
/// fan-out messages carry a change or two; a whole-document message for one
/// replica catching up is not worth keeping in memory.
pub(super) const MEMO_STATES: usize = 16;
pub(super) const MEMO_MAX_BYTES: usize = 16 * 1024;

/// Memory of a loaded document: a base (an Automerge document holding only
/// its genesis change takes about 15.5 KB), per operation and per change,
/// and the bytes of its operations' values on top (values are held as
/// encoded, so a document of long strings is mostly its values). Measured
/// with a counting allocator in `server/tests/doc_estimate.rs`, which keeps
/// the estimate at or above what documents of several shapes take and
/// below twice that: a record with 20 results (450 operations, 21 changes)
/// takes 34-38.5 KB; an operation 12-40 bytes besides its value (a nested
/// result's keys cost more than a flat string's), a change 140-220.
const DOC_BYTES: usize = 18 * 1024;
const OP_BYTES: usize = 40;
const CHANGE_BYTES: usize = 256;

/// Roughly what `doc` takes in memory (see `DOC_BYTES`).
pub fn estimated_doc_bytes(doc: &Automerge) -> usize {
    let stats = doc.stats();
    DOC_BYTES
        + usize::try_from(stats.num_ops).unwrap_or(usize::MAX / 4) * OP_BYTES
        + usize::try_from(stats.num_changes).unwrap_or(usize::MAX / 4) * CHANGE_BYTES
        + doc.value_bytes()
}

/// Sync messages already generated for the document at `heads`, by the
/// sync state they were generated from, with the state that followed.
#[derive(Default)]
struct SyncMemo {
    heads: Vec<ChangeHash>,
    by_state: HashMap<sync::State, (sync::State, Option<Vec<u8>>)>,
}

impl SyncMemo {
    pub(super) fn bytes(&self) -> usize {
        self.by_state.values().map(|(_, m)| 256 + m.as_ref().map_or(0, Vec::len)).sum()
    }
}

impl Canonical {
    pub(super) fn new(
        doc: Automerge,
        seq: i64,
        snapshot_bytes: usize,
        incremental_bytes: usize,
    ) -> Self {
        Self { doc, seq, snapshot_bytes, incremental_bytes, memo: SyncMemo::default() }
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// Roughly what this copy takes in memory, for the cache's budget: the
    /// document (`estimated_doc_bytes`), remembered sync messages, and the
    /// changes a server-side writer committed (an appointment answered, a
    /// FHIR import), which the copy keeps as bytes to send (about three
    /// times their size, with their parsed form).
    pub(crate) fn estimated_bytes(&self) -> usize {
        estimated_doc_bytes(&self.doc) + self.memo.bytes() + 3 * self.doc.local_change_bytes()
    }

    /// Takes a sync message that carries no changes (heads, needs, Bloom
    /// filters): it changes this connection's sync state, not the document.
    pub fn receive_heads(
        &mut self,
        state: &mut sync::State,
        message: sync::Message,
    ) -> Result<(), automerge::AutomergeError> {
        debug_assert!(message.changes.is_empty());
        self.doc.receive_sync_message(state, message)
    }

    pub(super) fn wants_compaction(&self) -> bool {
        self.incremental_bytes > compaction_threshold(self.snapshot_bytes)
    }

    /// How many more bytes of incremental chunks this document takes
    /// before they outgrow its snapshot; a batch of changes bigger than
    /// this is stored as a new snapshot instead (see `Commit::snapshot`).
    pub fn incremental_room(&self) -> usize {
        compaction_threshold(self.snapshot_bytes).saturating_sub(self.incremental_bytes)
    }

    /// The encoded Automerge sync message for a peer in `state` (advancing
    /// it), or `None` if there is nothing to say. `generate_sync_message` is
    /// a function of the document and the state alone, and when a change
    /// fans out, the replicas that were level with the server are all in
    /// the same state: the message is built (changes re-encoded and
    /// compressed) and encoded once per document version, not once per
    /// connection.
    pub fn sync_message(&mut self, state: &mut sync::State) -> Option<Vec<u8>> {
        let heads = self.doc.get_heads();
        if self.memo.heads != heads || self.memo.by_state.len() >= MEMO_STATES {
            self.memo.by_state.clear();
            self.memo.heads = heads;
        }
        if let Some((next, message)) = self.memo.by_state.get(state) {
            *state = next.clone();
            return message.clone();
        }
        let before = state.clone();
        let message = self.doc.generate_sync_message(state).map(|m| m.encode());
        if message.as_ref().is_none_or(|m| m.len() <= MEMO_MAX_BYTES) {
            self.memo.by_state.insert(before, (state.clone(), message.clone()));
        }
        message
    }
}

/// A document saved whole, as the server stores it in place of its chunks:
/// DEFLATE at its fastest level (vendored Automerge's `fast_deflate`). The
/// server saves a document each time a batch of changes outgrows its
/// snapshot, and the default level was about 4 % of judging a catch-up;
/// the fastest stores a snapshot about 16 % larger (a patient's record with
/// 20 results: 1.41 KB against 1.22 KB), which reads back the same.
pub(super) fn snapshot(doc: &Automerge) -> Vec<u8> {
    doc.save_with_options(automerge::SaveOptions { fast_deflate: true, ..Default::default() })
}

/// Incremental chunks are folded into a snapshot once they outgrow it.
pub(super) fn compaction_threshold(snapshot_bytes: usize) -> usize {
    snapshot_bytes.max(4096)
}

#[cfg(test)]
mod tests {
    use automerge::sync::{self, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    use super::*;

    /// A remembered message is exactly what automerge would have generated,
    /// and is forgotten once the document changes.
    #[test]
    fn remembered_sync_messages_match_generated_ones() {
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "a", 1).map(|_| ()))
            .unwrap();
        let mut canonical = Canonical::new(doc.clone(), 0, 0, 0);
        let mut replica = Automerge::new();
        let (mut ours, mut theirs) = (sync::State::new(), sync::State::new());
        // Bring one replica level, by the memo.
        for _ in 0..4 {
            if let Some(m) = replica.generate_sync_message(&mut theirs) {
                canonical.doc.receive_sync_message(&mut ours, m).unwrap();
            }
            if let Some(bytes) = canonical.sync_message(&mut ours) {
                replica
                    .receive_sync_message(&mut theirs, sync::Message::decode(&bytes).unwrap())
                    .unwrap();
            }
        }
        assert_eq!(replica.get_heads(), canonical.doc.get_heads());
        // A change: two connections in the same state get the same bytes and
        // next state as plain generation gives.
        canonical
            .doc
            .transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "b", 2).map(|_| ()))
            .unwrap();
        let mut plain = ours.clone();
        let expected = canonical.doc.generate_sync_message(&mut plain).map(|m| m.encode());
        for _ in 0..2 {
            let mut state = ours.clone();
            assert_eq!(canonical.sync_message(&mut state), expected);
            assert_eq!(state, plain);
        }
        assert_eq!(canonical.memo.by_state.len(), 1);
        canonical
            .doc
            .transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "c", 3).map(|_| ()))
            .unwrap();
        let mut state = ours.clone();
        let mut plain = ours;
        assert_eq!(
            canonical.sync_message(&mut state),
            canonical.doc.generate_sync_message(&mut plain).map(|m| m.encode())
        );
        assert_eq!(canonical.memo.by_state.len(), 1, "older versions' messages are dropped");
    }

    /// Changes a server-side writer committed are kept as bytes by the
    /// copy (the vendored Automerge's `local_change_bytes`), and count
    /// against the cache's budget; a clone keeps none.
    #[test]
    fn kept_changes_count_in_the_estimate() {
        let mut doc = Automerge::new();
        for n in 0..20 {
            doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                tx.put(ROOT, format!("k{n}"), "a value long enough to count").map(|_| ())
            })
            .unwrap();
        }
        let kept = doc.local_change_bytes();
        assert!(kept > 20 * 30, "{kept}");
        let clone = Canonical::new(doc.clone(), 0, 0, 0);
        let own = Canonical::new(doc, 0, 0, 0);
        assert_eq!(own.estimated_bytes(), clone.estimated_bytes() + 3 * kept);
    }

    /// A snapshot deflated at the fastest level is a different encoding of
    /// the same document: it loads to the same changes, and saves again as
    /// upstream would.
    #[test]
    fn a_fast_snapshot_loads_as_the_same_document() {
        let mut doc = Automerge::new();
        for n in 0..200 {
            doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                tx.put(ROOT, format!("result-{n}"), format!("glucose {n} mg/dL, in range"))
                    .map(|_| ())
            })
            .unwrap();
        }
        let (fast, default) = (snapshot(&doc), doc.save());
        assert_ne!(fast, default, "columns this long are deflated, at another level");
        let loaded = Automerge::load(&fast).unwrap();
        assert_eq!(loaded.get_heads(), doc.get_heads());
        assert_eq!(loaded.save(), default);
    }
}
