//! A replica's side of sync: many documents over one connection, pipelined.

use crate::vec_map::VecMap;

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash, ReadDoc};
use serde_bytes::ByteBuf;

use super::wire::{PROTOCOL_VERSION, WireError, WireMessage, decode_doc_id, encode_doc_id};
use crate::ids::DocId;

/// Everything a replica syncs: its documents and, per connection, the
/// Automerge sync state of each.
#[derive(Debug)]
pub struct SyncClient {
    peer_id: String,
    server: Option<String>,
    /// Sorted by id (a vector map: a staff device's few thousand documents
    /// cost a memmove to add, and no B-tree code in the WASM bundle).
    docs: VecMap<DocId, Tracked>,
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
    /// Each is back at what the server was last known to hold (see
    /// `Tracked::reset`) and syncs again from there.
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
    /// Automerge's own words for what is wrong are for developers, not
    /// for the person reading the notice; leaving them out also keeps
    /// Automerge's error texts out of the web app.
    #[error("the server sent a sync message this device could not read")]
    Corrupt,
    #[error("the server reported an error: {0}")]
    Server(String),
}

impl SyncClient {
    pub fn new(peer_id: impl Into<String>) -> Self {
        Self { peer_id: peer_id.into(), server: None, docs: VecMap::new() }
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

    /// The server is known to hold `heads` of this document (it confirmed
    /// them on an earlier visit): a refusal before it says anything on the
    /// next connection goes back to them, not to a blank record.
    pub fn held_by_server(&mut self, id: DocId, heads: &[ChangeHash]) {
        let Some(tracked) = self.docs.get_mut(&id) else { return };
        if heads.iter().all(|h| tracked.doc.get_change_by_hash(h).is_some()) {
            tracked.state.shared_heads = heads.to_vec();
        }
    }

    /// The first message on a new connection. Sync states start afresh, as
    /// the Automerge sync protocol requires for a new peer session, except
    /// for the heads the server is known to hold (what Automerge keeps of a
    /// persisted sync state): the record only grows, so they still hold,
    /// and a refusal that comes before the server's first answer goes back
    /// to them rather than to a blank record.
    pub fn connect(&mut self) -> WireMessage {
        self.server = None;
        for tracked in self.docs.values_mut() {
            let shared_heads = std::mem::take(&mut tracked.state.shared_heads);
            tracked.state = sync::State::new();
            tracked.state.shared_heads = shared_heads;
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
                let message = sync::Message::decode(&data).map_err(|_| SyncError::Corrupt)?;
                let before = tracked.doc.get_heads();
                tracked
                    .doc
                    .receive_sync_message(&mut tracked.state, message)
                    .map_err(|_| SyncError::Corrupt)?;
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
                if let Some(tracked) = self.docs.get_mut(&id) {
                    tracked.reset();
                    received.changed.push(id);
                    received.outgoing.extend(self.outgoing_for(id));
                }
                received.rejected.push((id, message));
            }
            WireMessage::Error { message } => return Err(SyncError::Server(message)),
            // Not about a document: the caller lists again (the app's
            // `replicas::receive`).
            WireMessage::Join { .. } | WireMessage::ListChanged => {}
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

    /// After a refusal: the document goes back to the heads the server
    /// last told this connection it holds (`shared_heads`), dropping the
    /// refused changes and every later local change (they depend on them),
    /// and keeping everything the server holds. A reset to an empty
    /// document instead blanked the record until the server sent it whole
    /// again, and a second refusal of changes already in flight then found
    /// nothing to go back to. The server forgot this connection's sync
    /// state when it refused, so ours starts afresh too, except that it
    /// still knows the server holds those heads (the record only grows), so
    /// the next message asks only for what lies beyond them.
    fn reset(&mut self) {
        // Rebuilt from the changes it keeps rather than with `fork_at`,
        // which costs the WASM bundle about 2 KB more.
        let kept = &self.state.shared_heads;
        let known = kept.iter().all(|h| self.doc.get_change_by_hash(h).is_some());
        let beyond: Vec<ChangeHash> = match known {
            true => self.doc.get_changes(kept).iter().map(automerge::Change::hash).collect(),
            false => Vec::new(),
        };
        let mut doc = Automerge::new();
        let mut changes = self.doc.get_changes(&[]);
        changes.retain(|c| !beyond.contains(&c.hash()));
        if !known || doc.apply_changes(changes).is_err() {
            doc = Automerge::new();
        }
        doc.set_actor(self.doc.get_actor().clone());
        self.state = sync::State::new();
        self.state.shared_heads = doc.get_heads();
        self.doc = doc;
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

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT};

    use super::*;

    /// The server's part for one document: its copy and a sync state per
    /// peer. It refuses every change signed by `refused` the way the portal
    /// refuses one that breaks the write policy: nothing is applied, the
    /// peer's sync state is forgotten and `change-rejected` is sent.
    struct Server {
        doc: Automerge,
        states: std::collections::BTreeMap<String, sync::State>,
        refused: Option<ActorId>,
    }

    impl Server {
        fn receive(&mut self, from: &str, message: WireMessage) -> Vec<WireMessage> {
            let (document_id, data) = match message {
                WireMessage::Join { sender_id, .. } => {
                    self.states.remove(&sender_id);
                    return vec![WireMessage::Peer {
                        sender_id: "server".into(),
                        target_id: sender_id,
                        selected_protocol_version: PROTOCOL_VERSION.into(),
                    }];
                }
                WireMessage::Sync { document_id, data, .. }
                | WireMessage::Request { document_id, data, .. } => (document_id, data),
                other => panic!("a client does not send {other:?}"),
            };
            let message = sync::Message::decode(&data).unwrap();
            let refused =
                message.changes.iter().flat_map(super::super::inbound::change_chunks).any(
                    |chunk| {
                        let change = automerge::Change::try_from(chunk).unwrap();
                        Some(change.actor_id()) == self.refused.as_ref()
                    },
                );
            let state = self.states.entry(from.to_owned()).or_default();
            if refused {
                *state = sync::State::new();
                return vec![WireMessage::ChangeRejected {
                    sender_id: "server".into(),
                    target_id: from.into(),
                    document_id,
                    rule: "refill-status".into(),
                    message: "refused".into(),
                }];
            }
            self.doc.receive_sync_message(state, message).unwrap();
            let reply = self.doc.generate_sync_message(state);
            reply
                .map(|m| WireMessage::Sync {
                    sender_id: "server".into(),
                    target_id: from.into(),
                    document_id,
                    data: ByteBuf::from(m.encode()),
                })
                .into_iter()
                .collect()
        }
    }

    fn id() -> DocId {
        crate::schema::DocKind::PatientRecord { patient: crate::ids::PatientId::mint() }.doc_id()
    }

    /// Delivers messages both ways until both sides are quiet, checking
    /// `each` after every message the client takes in.
    fn pump(
        server: &mut Server,
        client: &mut SyncClient,
        first: Vec<WireMessage>,
        mut each: impl FnMut(&SyncClient, &Received),
    ) -> Vec<(DocId, String)> {
        let peer = client.peer_id().to_owned();
        let mut to_server = first;
        let mut rejected = Vec::new();
        for _ in 0..50 {
            if to_server.is_empty() {
                return rejected;
            }
            let mut to_client = Vec::new();
            for message in to_server.drain(..) {
                to_client.extend(server.receive(&peer, message));
            }
            for message in to_client {
                let received = client.receive(message).unwrap();
                each(client, &received);
                to_server.extend(received.outgoing.iter().cloned());
                rejected.extend(received.rejected);
            }
        }
        panic!("sync did not settle");
    }

    /// A server whose record holds a refill request ("requested") and a
    /// client "a" that has synced it.
    fn synced() -> (DocId, Server, SyncClient) {
        let id = id();
        let mut server = Server {
            doc: Automerge::new(),
            states: std::collections::BTreeMap::new(),
            refused: None,
        };
        put_status(&mut server.doc, "requested");
        let mut a = SyncClient::new("a");
        a.insert(id, Automerge::new());
        let join = a.connect();
        pump(&mut server, &mut a, vec![join], |_, _| {});
        (id, server, a)
    }

    /// The server's refusal of client "a"'s changes to `id`.
    fn rejection(id: DocId) -> WireMessage {
        WireMessage::ChangeRejected {
            sender_id: "server".into(),
            target_id: "a".into(),
            document_id: encode_doc_id(id),
            rule: "refill-status".into(),
            message: "refused".into(),
        }
    }

    fn put_status(doc: &mut Automerge, status: &str) {
        let mut tx = doc.transaction();
        tx.put(ROOT, "status", status).unwrap();
        tx.commit();
    }

    fn statuses(doc: &Automerge) -> Vec<String> {
        doc.get_all(ROOT, "status")
            .unwrap()
            .into_iter()
            .map(|(v, _)| v.into_string().unwrap_or_default())
            .collect()
    }

    /// A device that answered offline what another device had answered
    /// meanwhile: the server refuses its answer. The device goes back to
    /// the server's record at once, never blank, holding the other
    /// device's answer only and nothing waiting.
    #[test]
    fn a_refused_change_goes_back_to_what_the_server_holds() {
        let (id, mut server, mut a) = synced();
        assert!(a.is_synced(id));

        // A answers offline; another device's answer reaches the server.
        let actor = ActorId::random();
        a.doc_mut(id).unwrap().set_actor(actor.clone());
        put_status(a.doc_mut(id).unwrap(), "approved");
        let mut other = server.doc.fork();
        put_status(&mut other, "denied");
        server.doc.merge(&mut other).unwrap();
        server.refused = Some(actor.clone());

        let join = a.connect();
        let mut blank = false;
        let rejected = pump(&mut server, &mut a, vec![join], |client, _| {
            blank |= client.doc(id).unwrap().get_heads().is_empty();
        });
        assert_eq!(rejected, [(id, "refused".to_owned())]);
        assert!(!blank, "the record was blank after the refusal");
        let doc = a.doc(id).unwrap();
        assert_eq!(statuses(doc), ["denied"]);
        assert_eq!(doc.get_heads(), server.doc.get_heads());
        assert_eq!(doc.get_actor(), &actor, "the device keeps writing as itself");
        assert!(a.is_synced(id));
        assert_eq!(a.progress().pending_changes, 0);
    }

    /// A refusal that arrives before the server's first answer on a new
    /// connection (the device sent its offline answer at once) goes back to
    /// what the server held when the device last heard from it, never to a
    /// blank record; so does one after a reload, from the heads stored then.
    #[test]
    fn a_refusal_first_thing_on_a_new_connection_keeps_the_record() {
        let peer = WireMessage::Peer {
            sender_id: "server".into(),
            target_id: "a".into(),
            selected_protocol_version: PROTOCOL_VERSION.into(),
        };
        let (id, _, mut a) = synced();
        let held = a.doc(id).unwrap().get_heads();
        put_status(a.doc_mut(id).unwrap(), "approved");

        // Reconnected.
        a.connect();
        a.receive(peer.clone()).unwrap();
        a.receive(rejection(id)).unwrap();
        assert_eq!(statuses(a.doc(id).unwrap()), ["requested"]);

        // Reloaded: a new client from the stored bytes and confirmed heads.
        let mut reloaded = SyncClient::new("a");
        let mut doc = a.doc(id).unwrap().fork();
        put_status(&mut doc, "approved");
        reloaded.insert(id, doc);
        reloaded.held_by_server(id, &held);
        reloaded.connect();
        reloaded.receive(peer).unwrap();
        reloaded.receive(rejection(id)).unwrap();
        assert_eq!(statuses(reloaded.doc(id).unwrap()), ["requested"]);
        assert_eq!(reloaded.doc(id).unwrap().get_heads(), held);
    }

    /// Messages already in flight may carry the refused change again and
    /// be refused again: the second reset keeps what the first kept.
    #[test]
    fn a_second_refusal_keeps_the_record() {
        let (id, server, mut a) = synced();
        put_status(a.doc_mut(id).unwrap(), "approved");
        let rejection = rejection(id);
        for _ in 0..2 {
            let received = a.receive(rejection.clone()).unwrap();
            assert_eq!(received.changed, [id]);
            let doc = a.doc(id).unwrap();
            assert_eq!(statuses(doc), ["requested"]);
            assert_eq!(doc.get_heads(), server.doc.get_heads());
            assert_eq!(a.progress().pending_changes, 0);
        }
    }

    /// The vendored Automerge keeps the bytes of the changes a document
    /// committed and sends those instead of building them again (see
    /// `vendor/automerge/PATCHED.md`); a clone keeps none and builds them
    /// as upstream does. Both send the same message, byte for byte.
    #[test]
    fn kept_changes_are_sent_as_they_would_be_built() {
        let mut peer = Automerge::new();
        put_status(&mut peer, "requested");
        let mut mine = peer.fork();
        for status in ["approved", "sent", "collected"] {
            put_status(&mut mine, status);
        }
        let rebuilt = mine.clone();
        let first = peer.generate_sync_message(&mut sync::State::new()).unwrap();
        let reply = |mut doc: Automerge| {
            let mut state = sync::State::new();
            doc.receive_sync_message(&mut state, first.clone()).unwrap();
            // Changes one by one, as `Tracked::message` asks.
            state.their_capabilities = None;
            doc.generate_sync_message(&mut state).unwrap()
        };
        let (kept, built) = (reply(mine), reply(rebuilt));
        // All three, unless the peer's Bloom filter happens to claim one
        // (about 1 % each; the actor ids, so the hashes, are random).
        let changes = kept.changes.iter().flat_map(super::super::inbound::change_chunks).count();
        assert!((1..=3).contains(&changes), "{changes}");
        assert_eq!(kept.encode(), built.encode());
    }
}
