//! One sync connection: frames in, validated and committed changes, frames out.
//!
//! Frames that arrive together are handled as one batch: their changes are
//! validated document by document and committed in one transaction, and only
//! then is anything acknowledged (a sync reply advertising the new heads) or
//! relayed. A catch-up of many documents therefore costs a few transactions,
//! not one per document.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, PatchLog};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{FutureExt, SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use shared::sync::{PROTOCOL_VERSION, WireMessage, decode_doc_id, encode_doc_id};
use shared::{Denial, DocId, DocKind, Principal, check_patches};
use tokio::sync::broadcast::error::RecvError;

mod session;

use super::SyncPeer;
use super::hub::{Canonical, Commit, Hub, Locked};
use crate::AppState;
use crate::storage::{AuditEvent, NewChunk, Store, StoreError, UserRecord};

/// Most frames handled as one batch.
const MAX_BATCH: usize = 1024;
/// Flood limit: frames per window; a client over it is disconnected.
const MAX_FRAMES_PER_WINDOW: u32 = 50_000;
const WINDOW: Duration = Duration::from_secs(10);

/// Why a connection is being closed.
struct Close {
    code: u16,
    reason: String,
}

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

impl From<StoreError> for Close {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "sync: storage failed; nothing in this batch was acknowledged");
        Self::new(1011, "the server could not store changes; nothing from this batch was acknowledged, please retry")
    }
}

struct Connection {
    state: AppState,
    user: UserRecord,
    session_id: String,
    principal: Principal,
    peer_id: Option<String>,
    readable: HashMap<DocId, DocKind>,
    states: HashMap<DocId, sync::State>,
    /// Actor ids known to belong to this user.
    own_actors: HashSet<String>,
    window_start: Instant,
    frames_in_window: u32,
}

pub async fn run(state: AppState, peer: SyncPeer, socket: WebSocket) {
    let Some(principal) = peer.user.principal() else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let hub = state.hub.clone();
    let mut changes = hub.subscribe();
    let mut access = hub.subscribe_access();
    // Subscribed before anything is read, so no ending is missed; the
    // session is re-checked with the others on this instance (`watch_sessions`).
    let mut ended = hub.subscribe_ended();
    let open = session::register(&hub, &peer.session_id);
    let readable = match readable_documents(&state.store, &peer.user).await {
        Ok(readable) => readable,
        Err(error) => {
            let close = Close::from(error);
            let _ = sink.send(close_message(&close)).await;
            return;
        }
    };
    let mut conn = Connection {
        state,
        user: peer.user,
        session_id: peer.session_id,
        principal,
        peer_id: None,
        readable,
        states: HashMap::new(),
        own_actors: HashSet::new(),
        window_start: Instant::now(),
        frames_in_window: 0,
    };
    tracing::info!(user = %conn.user.id, documents = conn.readable.len(), "sync connection opened");
    let outcome = loop {
        let result = tokio::select! {
            // An ended session first: its socket closes before anything more
            // is read or sent. Then access changes: once consent is revoked,
            // nothing more of that record goes out, not even a change already
            // queued.
            biased;
            end = ended.recv() => conn.session_ended(end).await.map(|()| Vec::new()),
            _ = access.recv() => conn.refresh_access().await.map(|()| Vec::new()),
            changed = changes.recv() => match changed {
                Ok(id) => conn.push(&hub, &[id]).await,
                Err(RecvError::Lagged(_)) => {
                    let all: Vec<DocId> = conn.states.keys().copied().collect();
                    conn.push(&hub, &all).await
                }
                Err(RecvError::Closed) => break None,
            },
            frame = stream.next() => {
                let Some(frame) = frame else { break None };
                let mut batch = vec![frame];
                while batch.len() < MAX_BATCH {
                    match stream.next().now_or_never() {
                        Some(Some(frame)) => batch.push(frame),
                        _ => break,
                    }
                }
                if let Some(open) = &open {
                    open.active();
                }
                // A session ended while these frames arrived: none of them is applied.
                if let Some(close) = conn.ended_meanwhile(&mut ended) {
                    break Some(close);
                }
                conn.handle_batch(&hub, batch).await
            }
        };
        match result {
            Ok(outgoing) => {
                if send_all(&mut sink, outgoing).await.is_err() {
                    break None;
                }
            }
            Err(close) => break Some(close),
        }
    };
    if let Some(close) = outcome {
        tracing::info!(user = %conn.user.id, code = close.code, reason = %close.reason, "sync connection closed by server");
        let _ = sink.send(Message::Binary(WireMessage::Error { message: close.reason.clone() }.encode().into())).await;
        let _ = sink.send(close_message(&close)).await;
    } else {
        tracing::info!(user = %conn.user.id, "sync connection closed");
    }
}

fn close_message(close: &Close) -> Message {
    Message::Close(Some(CloseFrame { code: close.code, reason: close.reason.clone().into() }))
}

async fn send_all(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    outgoing: Vec<WireMessage>,
) -> Result<(), axum::Error> {
    if outgoing.is_empty() {
        return Ok(());
    }
    for message in outgoing {
        sink.feed(Message::Binary(message.encode().into())).await?;
    }
    sink.flush().await
}

/// A document's incoming sync messages, decoded.
struct Incoming {
    kind: DocKind,
    messages: Vec<sync::Message>,
}

impl Connection {
    async fn handle_batch(
        &mut self,
        hub: &Hub,
        frames: Vec<Result<Message, axum::Error>>,
    ) -> Result<Vec<WireMessage>, Close> {
        let mut outgoing = Vec::new();
        let mut incoming: BTreeMap<DocId, Incoming> = BTreeMap::new();
        for frame in frames {
            self.count_frame()?;
            let bytes = match frame {
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Text(_)) => return Err(Close::new(1003, "sync frames must be binary CBOR")),
                Ok(Message::Close(_)) => return Err(Close::new(1000, "closed by client")),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Err(error) => return Err(Close::new(1009, format!("unreadable frame: {error}"))),
            };
            let message =
                WireMessage::decode(&bytes).map_err(|error| Close::new(1007, format!("malformed sync frame: {error}")))?;
            match message {
                WireMessage::Join { sender_id, supported_protocol_versions } => {
                    if !supported_protocol_versions.iter().any(|v| v == PROTOCOL_VERSION) {
                        return Err(Close::new(1002, format!("unsupported protocol; this server speaks version {PROTOCOL_VERSION}")));
                    }
                    outgoing.push(WireMessage::Peer {
                        sender_id: hub.peer_id().to_owned(),
                        target_id: sender_id.clone(),
                        selected_protocol_version: PROTOCOL_VERSION.into(),
                    });
                    self.peer_id = Some(sender_id);
                }
                WireMessage::Request { document_id, data, .. } | WireMessage::Sync { document_id, data, .. } => {
                    let Some(peer) = &self.peer_id else {
                        return Err(Close::new(1008, "send join before sync messages"));
                    };
                    // Unknown, malformed and forbidden ids all look alike.
                    let Some((id, kind)) =
                        decode_doc_id(&document_id).ok().and_then(|id| Some((id, *self.readable.get(&id)?)))
                    else {
                        // Changes for a record whose consent was withdrawn are
                        // refused by name and audited, not left pending.
                        if let Some(refused) = self.consent_withdrawn(hub, &document_id, &data).await? {
                            outgoing.push(refused);
                            continue;
                        }
                        outgoing.push(WireMessage::DocUnavailable {
                            sender_id: hub.peer_id().to_owned(),
                            target_id: peer.clone(),
                            document_id,
                        });
                        continue;
                    };
                    let message = sync::Message::decode(&data)
                        .map_err(|_| Close::new(1007, format!("corrupt Automerge sync message for document {document_id}")))?;
                    incoming.entry(id).or_insert_with(|| Incoming { kind, messages: Vec::new() }).messages.push(message);
                }
                // Clients have nothing to tell the server with these.
                WireMessage::DocUnavailable { .. }
                | WireMessage::Peer { .. }
                | WireMessage::ChangeRejected { .. }
                | WireMessage::Error { .. } => {}
            }
        }
        if !incoming.is_empty() {
            outgoing.extend(self.apply(hub, incoming).await?);
        }
        Ok(outgoing)
    }

    fn count_frame(&mut self) -> Result<(), Close> {
        if self.window_start.elapsed() > WINDOW {
            self.window_start = Instant::now();
            self.frames_in_window = 0;
        }
        self.frames_in_window += 1;
        if self.frames_in_window > MAX_FRAMES_PER_WINDOW {
            return Err(Close::new(1008, "too many messages; slow down and reconnect"));
        }
        Ok(())
    }

    /// Validates, commits and answers the sync messages of a batch.
    async fn apply(&mut self, hub: &Hub, incoming: BTreeMap<DocId, Incoming>) -> Result<Vec<WireMessage>, Close> {
        let mut outgoing = Vec::new();
        // First sync of a document on this connection: audited as a read.
        let mut read = Vec::new();
        for (id, Incoming { kind, .. }) in &incoming {
            if !self.states.contains_key(id) {
                read.push((*id, kind.patient()));
            }
        }
        // Locked in DocId order, so connections never deadlock; those not
        // held yet are loaded with one read.
        let mut locked: Vec<(DocId, Locked)> = hub.lock_all(incoming.keys().copied()).await?;
        let mut jobs = Vec::new();
        for ((id, Incoming { kind, messages }), (_, guard)) in incoming.into_iter().zip(&mut locked) {
            let Some(canonical) = guard.as_mut() else {
                outgoing.push(self.unavailable(hub, id));
                continue;
            };
            let state = self.states.entry(id).or_default();
            if messages.iter().all(|m| m.changes.is_empty()) {
                // Heads and Bloom filters only: nothing to validate or store.
                for message in messages {
                    canonical.doc.receive_sync_message(state, message).map_err(|_| corrupt(id))?;
                }
            } else {
                let room = canonical.incremental_room();
                jobs.push(Job { id, kind, fork: canonical.doc.clone(), room, state: std::mem::take(state), messages });
            }
        }
        let mut chunks = BTreeMap::new();
        let mut forks = HashMap::new();
        let mut replies = HashMap::new();
        for checked in check_in_parallel(jobs, &self.principal).await {
            let id = checked.id;
            let verdict = checked.verdict.ok_or_else(|| corrupt(id))?;
            self.states.insert(id, checked.state);
            let verdict = match self.check_actors(&checked.actors).await? {
                Ok(()) => verdict.map_err(|denial| (denial.rule.code(), denial.to_string())),
                Err(forged) => Err(forged),
            };
            match verdict {
                Ok(()) => {
                    replies.insert(id, checked.reply);
                    if let Some(chunk) = checked.chunk {
                        chunks.insert(id, chunk);
                        forks.insert(id, checked.fork);
                    }
                }
                Err((rule, message)) => {
                    tracing::warn!(user = %self.user.id, doc = %id, rule, "sync: change rejected");
                    // Forget what this connection claimed to have sent: the
                    // client resets the document and syncs it from scratch.
                    self.states.insert(id, sync::State::new());
                    outgoing.push(WireMessage::ChangeRejected {
                        sender_id: hub.peer_id().to_owned(),
                        target_id: self.peer_id.clone().unwrap_or_default(),
                        document_id: encode_doc_id(id),
                        rule: rule.to_owned(),
                        message,
                    });
                }
            }
        }
        // Durable first: nothing is acknowledged or relayed before this commit.
        // A snapshot holds everything the copy it was made from held.
        let held: HashMap<DocId, i64> = locked.iter().filter_map(|(id, guard)| Some((*id, guard.as_ref()?.seq))).collect();
        let batch: Vec<NewChunk<'_>> = chunks
            .iter()
            .map(|(id, chunk)| NewChunk { doc: *id, data: &chunk.data, snapshot_through: chunk.snapshot.then(|| held[id]) })
            .collect();
        // Audited in the same transaction: each document read, each change accepted.
        let mut events: Vec<AuditEvent<'_>> =
            read.iter().map(|(id, patient)| self.audit_event("document_read", *id, *patient)).collect();
        for id in chunks.keys() {
            events.push(self.audit_event("change_accepted", *id, self.readable[id].patient()));
        }
        let seqs = hub.store().store_audited(&batch, &events).await?;
        let mut stored: HashMap<DocId, (i64, &Chunk)> = chunks.iter().zip(seqs).map(|((id, chunk), seq)| (*id, (seq, chunk))).collect();
        let mut commits = Vec::new();
        for (id, guard) in &mut locked {
            if let (Some(canonical), Some(fork)) = (guard.as_mut(), forks.remove(id)) {
                canonical.doc = fork;
                let (seq, chunk) = stored.remove(id).expect("one chunk per changed document");
                commits.push(Commit { id: *id, canonical, seq, bytes: chunk.data.len(), snapshot: chunk.snapshot });
            }
        }
        let changed: Vec<DocId> = commits.iter().map(|commit| commit.id).collect();
        hub.committed(commits).await?;
        for (id, guard) in &mut locked {
            let Some(canonical) = guard.as_mut() else { continue };
            let reply = match replies.remove(id) {
                Some(prepared) => prepared.map(|message| sync_frame(hub, &self.peer_id, *id, message)),
                None => sync_message(hub, &self.peer_id, *id, canonical, self.states.entry(*id).or_default()),
            };
            outgoing.extend(reply);
        }
        for id in changed {
            hub.changed(id);
        }
        Ok(outgoing)
    }

    /// Every change must be signed by one of the sender's own actor ids. An
    /// actor id seen for the first time is bound to its sender; one bound to
    /// someone else is a forgery.
    async fn check_actors(&mut self, actors: &BTreeSet<String>) -> Result<Result<(), (&'static str, String)>, Close> {
        for actor in actors {
            if self.own_actors.contains(actor) {
                continue;
            }
            if self.state.store.bind_actor(actor, self.user.id).await? {
                self.own_actors.insert(actor.clone());
            } else {
                return Ok(Err((
                    "forged-actor",
                    "changes were signed with an actor id that belongs to another user (rule forged-actor)".into(),
                )));
            }
        }
        Ok(Ok(()))
    }

    /// Sends this connection what it lacks of documents changed elsewhere.
    async fn push(&mut self, hub: &Hub, ids: &[DocId]) -> Result<Vec<WireMessage>, Close> {
        let mut outgoing = Vec::new();
        for id in ids {
            // Only documents this replica has asked for and may still read.
            if !self.readable.contains_key(id) {
                continue;
            }
            let Some(state) = self.states.get_mut(id) else { continue };
            let mut guard = hub.lock(*id).await?;
            if let Some(canonical) = guard.as_mut() {
                outgoing.extend(sync_message(hub, &self.peer_id, *id, canonical, state));
            }
        }
        Ok(outgoing)
    }

    /// Re-reads what the user may read; documents no longer readable stop syncing at once.
    async fn refresh_access(&mut self) -> Result<(), Close> {
        self.readable = readable_documents(&self.state.store, &self.user).await?;
        let readable = &self.readable;
        self.states.retain(|id, _| readable.contains_key(id));
        Ok(())
    }

    fn audit_event(&self, action: &'static str, doc: DocId, patient: shared::PatientId) -> AuditEvent<'_> {
        AuditEvent {
            user: Some(self.user.id),
            session: Some(&self.session_id),
            action,
            patient: Some(patient),
            doc: Some(doc),
            detail: "",
        }
    }

    fn unavailable(&self, hub: &Hub, id: DocId) -> WireMessage {
        WireMessage::DocUnavailable {
            sender_id: hub.peer_id().to_owned(),
            target_id: self.peer_id.clone().unwrap_or_default(),
            document_id: encode_doc_id(id),
        }
    }
}

/// The CPU-bound part of accepting a document's incoming changes.
struct Job {
    id: DocId,
    kind: DocKind,
    /// A copy of the canonical document the changes are applied to.
    fork: Automerge,
    /// `Canonical::incremental_room` of the document.
    room: usize,
    state: sync::State,
    messages: Vec<sync::Message>,
}

struct Checked {
    id: DocId,
    fork: Automerge,
    state: sync::State,
    /// `None` when the sync messages were corrupt.
    verdict: Option<Result<(), Denial>>,
    /// Actor ids of the new changes.
    actors: BTreeSet<String>,
    /// The new changes as one storage chunk, if there are any and they are allowed.
    chunk: Option<Chunk>,
    /// The answer to the sender once the changes are committed.
    reply: Option<sync::Message>,
}

/// What a document's accepted changes are stored as.
struct Chunk {
    data: Vec<u8>,
    /// The whole document, replacing its stored chunks.
    snapshot: bool,
}

impl Job {
    fn run(mut self, who: &Principal) -> Checked {
        let before = self.fork.get_heads();
        let mut applied = true;
        let mut log = PatchLog::active();
        for message in self.messages {
            applied &= self.fork.receive_sync_message_log_patches(&mut self.state, message, &mut log).is_ok();
        }
        let verdict = applied.then(|| check_patches(&self.fork, &before, self.fork.make_patches(&mut log), &self.kind, who));
        // Metadata only: decoding whole changes costs as much as saving them.
        let changes = self.fork.get_changes_meta(&before);
        let actors = changes.iter().map(|c| c.actor.to_hex_string()).collect();
        let accepted = matches!(verdict, Some(Ok(())));
        let chunk = (accepted && !changes.is_empty()).then(|| {
            let changes = self.fork.save_after(&before);
            // Changes that would outgrow the stored snapshot are stored as a
            // new snapshot instead, replacing the chunks (compaction in the
            // same transaction, made here on all cores).
            if changes.len() > self.room { Chunk { data: self.fork.save(), snapshot: true } } else { Chunk { data: changes, snapshot: false } }
        });
        // Prepared here, on all cores, but sent only once the changes are committed.
        // The sender waits for our heads to know its changes are stored. A
        // heads-only message from it later in the same batch can make
        // Automerge believe we already told it them, and stay silent; so
        // the acknowledgement is always sent.
        let reply = accepted
            .then(|| {
                self.state.last_sent_heads.clear();
                self.fork.generate_sync_message(&mut self.state)
            })
            .flatten();
        Checked { id: self.id, fork: self.fork, state: self.state, verdict, actors, chunk, reply }
    }
}

/// Applies and checks documents' changes on all cores: merging and checking
/// is most of the cost of a catch-up.
async fn check_in_parallel(jobs: Vec<Job>, who: &Principal) -> Vec<Checked> {
    if jobs.is_empty() {
        return Vec::new();
    }
    // Read once: it consults cgroup files, too slow to repeat per batch.
    static WORKERS: LazyLock<usize> = LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workers = *WORKERS;
    let per_worker = jobs.len().div_ceil(workers).max(1);
    let mut jobs = jobs.into_iter().peekable();
    let mut tasks = Vec::new();
    while jobs.peek().is_some() {
        let part: Vec<Job> = jobs.by_ref().take(per_worker).collect();
        let who = who.clone();
        tasks.push(tokio::task::spawn_blocking(move || part.into_iter().map(|job| job.run(&who)).collect::<Vec<_>>()));
    }
    let mut checked = Vec::new();
    for task in tasks {
        checked.extend(task.await.expect("validation task does not panic"));
    }
    checked
}

/// What `user` may read, by id; everything else answers like a missing document.
async fn readable_documents(store: &Store, user: &UserRecord) -> Result<HashMap<DocId, DocKind>, StoreError> {
    Ok(store.readable_documents(user).await?.into_iter().map(|d| (d.id, d.kind)).collect())
}

fn corrupt(id: DocId) -> Close {
    Close::new(1007, format!("corrupt Automerge changes for document {}", encode_doc_id(id)))
}

fn sync_message(hub: &Hub, peer: &Option<String>, id: DocId, canonical: &mut Canonical, state: &mut sync::State) -> Option<WireMessage> {
    Some(sync_bytes(hub, peer, id, canonical.sync_message(state)?))
}

fn sync_frame(hub: &Hub, peer: &Option<String>, id: DocId, message: sync::Message) -> WireMessage {
    sync_bytes(hub, peer, id, message.encode())
}

fn sync_bytes(hub: &Hub, peer: &Option<String>, id: DocId, data: Vec<u8>) -> WireMessage {
    WireMessage::Sync {
        sender_id: hub.peer_id().to_owned(),
        target_id: peer.clone().unwrap_or_default(),
        document_id: encode_doc_id(id),
        data: ByteBuf::from(data),
    }
}
