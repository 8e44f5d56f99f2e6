//! Patched in (see PATCHED.md): the changes this document committed, as
//! their bytes, kept so that sending them does not build them again.
//!
//! A transaction's commit encodes its change (its hash is that of the
//! bytes) and upstream then drops the bytes; a sync message that sends the
//! change later rebuilds it from the operation set (`ChangeCollector`),
//! most of what a device catching up after a day offline spends to send.
//! A change's bytes never change, so a kept one is always right; what is
//! not kept (changes loaded or received, a clone's, ones pushed out by the
//! size bound) is built as upstream does.

use std::collections::{HashMap, VecDeque};

use crate::{Change, ChangeHash};

/// The most bytes of changes a document keeps; the oldest go first.
const MAX_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub(crate) struct LocalChanges {
    by_hash: HashMap<ChangeHash, Change>,
    order: VecDeque<ChangeHash>,
    bytes: usize,
}

/// A copy starts with none: it is only a cache, and a server clones a
/// document for every batch it judges.
impl Clone for LocalChanges {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl LocalChanges {
    pub(crate) fn keep(&mut self, change: Change) {
        let hash = change.hash();
        self.bytes += change.raw_bytes().len();
        match self.by_hash.insert(hash, change) {
            Some(same) => self.bytes -= same.raw_bytes().len(),
            None => self.order.push_back(hash),
        }
        while self.bytes > MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(gone) = self.by_hash.remove(&oldest) {
                self.bytes -= gone.raw_bytes().len();
            }
        }
    }

    /// The bytes of the changes kept.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The changes `hashes` names, in that order, if every one is kept.
    pub(crate) fn all(&self, hashes: &[ChangeHash]) -> Option<Vec<Change>> {
        if self.by_hash.is_empty() {
            return None;
        }
        hashes.iter().map(|hash| self.by_hash.get(hash).cloned()).collect()
    }
}
