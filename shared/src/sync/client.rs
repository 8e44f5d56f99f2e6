//! A replica's side of sync: many documents over one connection, pipelined.

use std::collections::BTreeMap;

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};
use serde_bytes::ByteBuf;

use super::wire::{PROTOCOL_VERSION, WireError, WireMessage, decode_doc_id, encode_doc_id};
use crate::ids::DocId;

/// Everything a replica syncs: its documents and, per connection, the
/// Automerge sync state of each.
#[derive(Debug)]
pub struct SyncClient {
    peer_id: String,
    server: Option<String>,
    docs: BTreeMap<DocId, Tracked>,
}

#[derive(Debug)]
struct Tracked {
    doc: Automerge,
    state: sync::State,
}

/// What came of one incoming message.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    /// Messages to send back.
    pub outgoing: Vec<WireMessage>,
    /// Documents whose content changed.
    pub changed: Vec<DocId>,
    /// Documents the server does not have or will not show.
    pub unavailable: Vec<DocId>,
    /// Documents whose changes were refused, with the server's explanation.
    /// They have been reset and are being loaded again from the server.
    pub rejected: Vec<(DocId, String)>,
}

/// How far a sync has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: usize,
    /// Documents whose heads the server has confirmed it holds.
    pub synced: usize,
    /// Local changes the server has not yet confirmed.
    pub pending_changes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the server sent a corrupt sync message: {0}")]
    Corrupt(String),
    #[error("the server reported an error: {0}")]
    Server(String),
}

impl SyncClient {
    pub fn new(peer_id: impl Into<String>) -> Self {
        Self { peer_id: peer_id.into(), server: None, docs: BTreeMap::new() }
    }

    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Starts tracking a document. An empty document asks the server for a
    /// whole copy (one snapshot rather than change by change).
    pub fn insert(&mut self, id: DocId, doc: Automerge) {
        self.docs.insert(id, Tracked { doc, state: sync::State::new() });
    }

    /// Stops tracking a document (the server will never take its changes),
    /// returning the local copy.
    pub fn remove(&mut self, id: DocId) -> Option<Automerge> {
        self.docs.remove(&id).map(|tracked| tracked.doc)
    }

    pub fn contains(&self, id: DocId) -> bool {
        self.docs.contains_key(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = DocId> + '_ {
        self.docs.keys().copied()
    }

    pub fn doc(&self, id: DocId) -> Option<&Automerge> {
        self.docs.get(&id).map(|t| &t.doc)
    }

    /// For local edits; call `outgoing` afterwards to send them.
    pub fn doc_mut(&mut self, id: DocId) -> Option<&mut Automerge> {
        self.docs.get_mut(&id).map(|t| &mut t.doc)
    }

    /// The first message on a new connection. Sync states start afresh, as
    /// the Automerge sync protocol requires for a new peer session.
    pub fn connect(&mut self) -> WireMessage {
        self.server = None;
        for tracked in self.docs.values_mut() {
            tracked.state = sync::State::new();
        }
        WireMessage::Join {
            sender_id: self.peer_id.clone(),
            supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
        }
    }

    /// Sync messages for every document with something to say, all at once:
    /// a catch-up of many documents is pipelined, not one round trip each.
    pub fn outgoing(&mut self) -> Vec<WireMessage> {
        let Some(server) = self.server.clone() else { return Vec::new() };
        let peer = self.peer_id.clone();
        self.docs
            .iter_mut()
            .filter_map(|(id, tracked)| tracked.message(*id, &peer, &server))
            .collect()
    }

    pub fn receive(&mut self, message: WireMessage) -> Result<Received, SyncError> {
        let mut received = Received::default();
        match message {
            WireMessage::Peer { sender_id, .. } => {
                self.server = Some(sender_id);
                received.outgoing = self.outgoing();
            }
            WireMessage::Sync { document_id, data, .. }
            | WireMessage::Request { document_id, data, .. } => {
                let id = decode_doc_id(&document_id)?;
                let (Some(server), Some(tracked)) = (self.server.clone(), self.docs.get_mut(&id))
                else {
                    return Ok(received);
                };
                let message =
                    sync::Message::decode(&data).map_err(|e| SyncError::Corrupt(e.to_string()))?;
                let before = tracked.doc.get_heads();
                tracked
                    .doc
                    .receive_sync_message(&mut tracked.state, message)
                    .map_err(|e| SyncError::Corrupt(e.to_string()))?;
                if tracked.doc.get_heads() != before {
                    received.changed.push(id);
                }
                received.outgoing.extend(tracked.message(id, &self.peer_id, &server));
            }
            WireMessage::DocUnavailable { document_id, .. } => {
                received.unavailable.push(decode_doc_id(&document_id)?);
            }
            WireMessage::ChangeRejected { document_id, message, .. } => {
                let id = decode_doc_id(&document_id)?;
                if self.docs.contains_key(&id) {
                    self.insert(id, Automerge::new());
                    received.changed.push(id);
                    received.outgoing.extend(self.outgoing_for(id));
                }
                received.rejected.push((id, message));
            }
            WireMessage::Error { message } => return Err(SyncError::Server(message)),
            WireMessage::Join { .. } => {}
        }
        Ok(received)
    }

    fn outgoing_for(&mut self, id: DocId) -> Option<WireMessage> {
        let server = self.server.clone()?;
        let peer = self.peer_id.clone();
        self.docs.get_mut(&id)?.message(id, &peer, &server)
    }

    /// Documents confirmed, and changes waiting. Counting changes walks the
    /// history of unconfirmed documents: for a cheap check in a loop use
    /// `synced_count`.
    pub fn progress(&self) -> Progress {
        let pending_changes = self
            .docs
            .values()
            .filter(|t| !t.confirmed())
            .map(|t| t.doc.get_changes(&t.state.shared_heads).len())
            .sum();
        Progress { total: self.docs.len(), synced: self.synced_count(), pending_changes }
    }

    /// Documents whose heads the server has confirmed.
    pub fn synced_count(&self) -> usize {
        self.docs.values().filter(|t| t.confirmed()).count()
    }

    /// Whether the server has confirmed holding everything in this document.
    pub fn is_synced(&self, id: DocId) -> bool {
        self.docs.get(&id).is_some_and(Tracked::confirmed)
    }
}

impl Tracked {
    fn message(&mut self, id: DocId, peer: &str, server: &str) -> Option<WireMessage> {
        // Send changes one by one (a V1 message), never the whole document:
        // Automerge sends a saved document once the changes are a third of
        // it, and the server refuses document chunks from clients (it cannot
        // bound what they inflate to; see `inbound`).
        self.state.their_capabilities = None;
        let message = self.doc.generate_sync_message(&mut self.state)?;
        let (sender_id, target_id, document_id) =
            (peer.to_owned(), server.to_owned(), encode_doc_id(id));
        let data = ByteBuf::from(message.encode());
        Some(if self.doc.get_heads().is_empty() {
            WireMessage::Request { sender_id, target_id, document_id, data }
        } else {
            WireMessage::Sync { sender_id, target_id, document_id, data }
        })
    }

    fn confirmed(&self) -> bool {
        let mut ours: Vec<ChangeHash> = self.doc.get_heads();
        let Some(theirs) = &self.state.their_heads else { return false };
        let mut theirs = theirs.clone();
        ours.sort();
        theirs.sort();
        !ours.is_empty() && ours == theirs
    }
}
