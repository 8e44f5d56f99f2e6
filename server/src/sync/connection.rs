//! One sync connection: frames in, validated and committed changes, frames out.
//!
//! Frames that arrive together are handled as one batch: their changes are
//! validated document by document and committed in one transaction, and only
//! then is anything acknowledged (a sync reply advertising the new heads) or
//! relayed. A catch-up of many documents therefore costs a few transactions,
//! not one per document, and each batch's commit runs while the next batch
//! is judged (`Connection::apply`).

use shared::api::AuditAction;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use automerge::sync;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{FutureExt, SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use shared::sync::{
    PROTOCOL_VERSION, WireMessage, decode_doc_id, encode_doc_id, scan_sync_message,
};
use shared::{DocId, DocKind, Principal};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::error::RecvError;

mod judge;
mod session;

use judge::{Checked, Job, Outcome, check_in_parallel};

use super::SyncPeer;
use super::cache::Locked;
use super::canonical::Canonical;
use super::hub::{Accepted, ConnectionId, Hub};
use crate::AppState;
use crate::storage::{AuditEvent, Author, StoreError, UserRecord};

/// Most frames handled as one batch.
const MAX_BATCH: usize = 1024;
/// Most operations judged and applied as one batch: bounds what one
/// connection makes the server hold at once (tens of MB at most).
const MAX_OPS_PER_BATCH: u64 = 100_000;
/// New actor ids one batch may bind: a device signs with one.
const MAX_NEW_ACTORS_PER_BATCH: usize = 16;
/// Times a batch is judged again after other instances wrote its documents.
const MAX_ATTEMPTS: u32 = 4;
/// What a person is told when their changes are refused for going over
/// their daily quota (rule quota).
const QUOTA_REACHED: &str = "you have added as many entries to this record today as one person may; nothing from this change was saved, try again tomorrow or contact the clinic (rule quota)";
/// Flood limit: frames per window; a client over it is disconnected.
const MAX_FRAMES_PER_WINDOW: u32 = 50_000;
const WINDOW: Duration = Duration::from_secs(10);
/// Documents a connection remembers it may not read (answers
/// `doc-unavailable` without asking storage again) before forgetting them.
const MAX_REMEMBERED_REFUSALS: usize = 10_000;
/// A device told to list again for a patient (`work_arrived`) is told again
/// for that patient only after this long, if it still lacks them.
const TELL_AGAIN: Duration = Duration::from_secs(30);
/// Documents one connection may sync (hold a sync state for). A staff
/// device keeps its offline set (at most `storage::MAX_WORK` +
/// `OfflineSet::MAX_PATIENTS` patients, a few documents each) and a
/// patient's device their own record; a client asking for more (a
/// provider's every patient, 15,000 documents at a 5,000-patient clinic)
/// is told why and disconnected, so what one connection makes the server
/// hold and push stays bounded.
pub const MAX_DOCS_PER_CONNECTION: usize = 10_000;

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
        Self::new(
            1011,
            "the server could not store changes; nothing from this batch was acknowledged, please retry",
        )
    }
}

struct Connection {
    /// Names this connection to the hub, which announces changes it
    /// committed to the other connections only.
    id: ConnectionId,
    state: AppState,
    user: UserRecord,
    session_id: String,
    principal: Principal,
    peer_id: Option<String>,
    /// What the user may read, looked up per document when first named
    /// (`ensure_access`) and forgotten when access changes.
    access: HashMap<DocId, Option<DocKind>>,
    states: HashMap<DocId, sync::State>,
    /// Actor ids known to belong to this user.
    own_actors: HashSet<String>,
    window_start: Instant,
    frames_in_window: u32,
    /// The last batch judged, committed while the next one is judged
    /// (`apply`), or settled as soon as no frame is waiting.
    pending: Option<Staged>,
    /// Patients whose new work this device was told of (`work_arrived`),
    /// and when.
    told: HashMap<shared::PatientId, Instant>,
}

pub async fn run(state: AppState, peer: SyncPeer, socket: WebSocket) {
    let Some(principal) = peer.user.principal() else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let hub = state.hub.clone();
    let mut changes = hub.subscribe();
    let mut access = hub.subscribe_access();
    let mut work = hub.subscribe_work();
    // Subscribed before anything is read, so no ending is missed; the
    // session is re-checked with the others on this instance (`watch_sessions`).
    let mut ended = hub.subscribe_ended();
    let open = session::register(&hub, &peer.session_id);
    let mut conn = Connection {
        id: ConnectionId::next(),
        state,
        user: peer.user,
        session_id: peer.session_id,
        principal,
        peer_id: None,
        access: HashMap::new(),
        states: HashMap::new(),
        own_actors: HashSet::new(),
        window_start: Instant::now(),
        frames_in_window: 0,
        pending: None,
        told: HashMap::new(),
    };
    tracing::info!(user = %conn.user.id, "sync connection opened");
    let outcome = loop {
        let result = tokio::select! {
            // An ended session first: its socket closes before anything more
            // is read or sent. Then access changes: once consent is revoked,
            // nothing more of that record goes out, not even a change already
            // queued.
            biased;
            // Another session's end leaves the pending batch as it is; this
            // one's closes the connection, and the batch is dropped unstored.
            end = ended.recv() => conn.session_ended(end).await.map(|()| Vec::new()),
            _ = access.recv() => conn.access_changed(&hub).await,
            changed = changes.recv() => match changed {
                // Its own changes: its answer to them carried them.
                Ok(announced) if announced.by == Some(conn.id) => Ok(Vec::new()),
                Ok(announced) => conn.push(&hub, &[announced.id]).await,
                Err(RecvError::Lagged(_)) => {
                    let all: Vec<DocId> = conn.states.keys().copied().collect();
                    conn.push(&hub, &all).await
                }
                Err(RecvError::Closed) => break None,
            },
            arrived = work.recv() => match arrived {
                Ok((clinic, patient)) => conn.work_arrived(clinic, patient).await,
                // Some were missed: a staff device lists again to be sure.
                Err(RecvError::Lagged(_)) if conn.user.role.is_staff() => {
                    Ok(vec![WireMessage::ListChanged])
                }
                Err(RecvError::Lagged(_)) => Ok(Vec::new()),
                Err(RecvError::Closed) => break None,
            },
            frame = stream.next() => {
                let Some(frame) = frame else {
                    // What was judged is stored, though it cannot be answered.
                    let _ = conn.settle_pending(&hub).await;
                    break None;
                };
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
            // No frame waiting: the last batch is committed and answered now.
            () = std::future::ready(()), if conn.pending.is_some() => conn.settle_pending(&hub).await,
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
        let _ = sink
            .send(Message::Binary(
                WireMessage::Error { message: close.reason.clone() }.encode().into(),
            ))
            .await;
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
    /// Operations their changes carry (`scan_sync_message`).
    ops: u64,
}

/// A batch locked and judged, not yet staged (`Connection::judge`).
struct Judged {
    incoming: BTreeMap<DocId, Incoming>,
    locked: BTreeMap<DocId, Locked>,
    checked: Vec<Checked>,
    /// Documents this connection syncs for the first time, audited as read.
    read: Vec<(DocId, shared::PatientId)>,
    /// How many of its documents this connection did not sync before.
    fresh: usize,
    /// Documents named that do not exist.
    unavailable: Vec<DocId>,
    /// Its share of the operations in flight (`Hub::admit_ops`), held until
    /// it is settled.
    _permit: OwnedSemaphorePermit,
}

/// A batch judged, its actor ids checked, ready to commit; it keeps its
/// documents locked until it is settled (`Connection::settle`).
struct Staged {
    incoming: BTreeMap<DocId, Incoming>,
    locked: BTreeMap<DocId, Locked>,
    checked: Vec<Checked>,
    /// The accepted copies, taken by the commit.
    accepted: Vec<Accepted>,
    read: Vec<(DocId, shared::PatientId)>,
    /// Documents written, with their patients (consent is checked on them).
    written: Vec<(DocId, shared::PatientId)>,
    /// Entries each written document gains (the daily quota).
    entries: Vec<(DocId, usize)>,
    /// Actor ids the commit binds to the user.
    actors: Vec<String>,
    /// Times judged (another instance may have written its documents).
    attempts: u32,
    fresh: usize,
    unavailable: Vec<DocId>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn handle_batch(
        &mut self,
        hub: &Hub,
        frames: Vec<Result<Message, axum::Error>>,
    ) -> Result<Vec<WireMessage>, Close> {
        let mut outgoing = Vec::new();
        let mut incoming: BTreeMap<DocId, Incoming> = BTreeMap::new();
        let mut batch_ops = 0;
        // A batch judged and committing while the next one is judged
        // (`apply`); the last one stays pending when this returns.
        let mut pending = self.pending.take();
        // Documents of `incoming` (and of the batch pending) this
        // connection does not sync yet.
        let mut fresh = pending.as_ref().map_or(0, |p| p.fresh);
        let mut messages = Vec::with_capacity(frames.len());
        for frame in frames {
            self.count_frame()?;
            let bytes = match frame {
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Text(_)) => {
                    return Err(Close::new(1003, "sync frames must be binary CBOR"));
                }
                Ok(Message::Close(_)) => return Err(Close::new(1000, "closed by client")),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Err(error) => return Err(Close::new(1009, format!("unreadable frame: {error}"))),
            };
            messages.push(
                WireMessage::decode(&bytes)
                    .map_err(|error| Close::new(1007, format!("malformed sync frame: {error}")))?,
            );
        }
        // Whether the user may read each document the batch names: one
        // indexed query for those not asked about before.
        let named: Vec<DocId> = messages
            .iter()
            .filter_map(|m| match m {
                WireMessage::Request { document_id, .. }
                | WireMessage::Sync { document_id, .. } => decode_doc_id(document_id).ok(),
                _ => None,
            })
            .collect();
        self.ensure_access(&named).await?;
        for message in messages {
            match message {
                WireMessage::Join { sender_id, supported_protocol_versions } => {
                    if !supported_protocol_versions.iter().any(|v| v == PROTOCOL_VERSION) {
                        return Err(Close::new(
                            1002,
                            format!(
                                "unsupported protocol; this server speaks version {PROTOCOL_VERSION}"
                            ),
                        ));
                    }
                    outgoing.push(WireMessage::Peer {
                        sender_id: hub.peer_id().to_owned(),
                        target_id: sender_id.clone(),
                        selected_protocol_version: PROTOCOL_VERSION.into(),
                    });
                    self.peer_id = Some(sender_id);
                }
                WireMessage::Request { document_id, data, .. }
                | WireMessage::Sync { document_id, data, .. } => {
                    let Some(peer) = &self.peer_id else {
                        return Err(Close::new(1008, "send join before sync messages"));
                    };
                    // Unknown, malformed and forbidden ids all look alike.
                    let Some((id, kind)) = decode_doc_id(&document_id)
                        .ok()
                        .and_then(|id| Some((id, self.readable(id)?)))
                    else {
                        // Changes for a record whose consent was withdrawn are
                        // refused by name and audited, not left pending.
                        if let Some(refused) =
                            self.consent_withdrawn(hub, &document_id, &data).await?
                        {
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
                    // Bounded on its bytes before Automerge parses any of it.
                    let scanned = scan_sync_message(&data).map_err(|refused| {
                        Close::new(1007, format!("{refused} (document {document_id})"))
                    })?;
                    let message = sync::Message::decode(&data).map_err(|_| {
                        Close::new(
                            1007,
                            format!("corrupt Automerge sync message for document {document_id}"),
                        )
                    })?;
                    let held = pending.as_ref().is_some_and(|p| p.incoming.contains_key(&id));
                    if !self.states.contains_key(&id) && !incoming.contains_key(&id) && !held {
                        fresh += 1;
                        if self.states.len() + fresh > MAX_DOCS_PER_CONNECTION {
                            return Err(Close::new(
                                1008,
                                format!(
                                    "one connection may sync at most {MAX_DOCS_PER_CONNECTION} records; this device asked for more"
                                ),
                            ));
                        }
                    }
                    let entry = incoming.entry(id).or_insert_with(|| Incoming {
                        kind,
                        messages: Vec::new(),
                        ops: 0,
                    });
                    entry.messages.push(message);
                    entry.ops += scanned.ops;
                    batch_ops += scanned.ops;
                    // A batch holds a bounded number of operations: what
                    // arrives beyond that is handled as the next batch.
                    if batch_ops > MAX_OPS_PER_BATCH {
                        let batch = std::mem::take(&mut incoming);
                        outgoing.extend(self.apply(hub, batch, &mut pending).await?);
                        batch_ops = 0;
                        // Those of the batch now pending are not in `states` yet.
                        fresh = pending.as_ref().map_or(0, |p| p.fresh);
                    }
                }
                // Clients have nothing to tell the server with these.
                WireMessage::DocUnavailable { .. }
                | WireMessage::Peer { .. }
                | WireMessage::ChangeRejected { .. }
                | WireMessage::Error { .. }
                | WireMessage::ListChanged => {}
            }
        }
        if !incoming.is_empty() {
            outgoing.extend(self.apply(hub, incoming, &mut pending).await?);
        }
        self.pending = pending;
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

    /// Judges the sync messages of a batch while the previous batch
    /// (`pending`) commits, then answers the previous one and leaves this
    /// one pending: the next batch's judging hides this one's commit
    /// (a few milliseconds of fsync each, with both cores idle otherwise).
    /// Nothing is answered before it is committed (`settle`), and batches
    /// commit in order. A batch naming a document the pending one holds
    /// waits for it to be settled first, so each document is judged against
    /// the record as committed, with this connection's sync state as it
    /// left the previous batch.
    async fn apply(
        &mut self,
        hub: &Hub,
        incoming: BTreeMap<DocId, Incoming>,
        pending: &mut Option<Staged>,
    ) -> Result<Vec<WireMessage>, Close> {
        let mut outgoing = Vec::new();
        if pending.as_ref().is_some_and(|p| incoming.keys().any(|id| p.incoming.contains_key(id)))
            && let Some(staged) = pending.take()
        {
            outgoing.extend(self.commit_and_settle(hub, staged).await?);
        }
        // The next batch is admitted while one is pending only if that
        // needs no waiting: never wait for permits while holding some.
        // The same for its locks: a pending batch keeps its own until it
        // is settled.
        let ops: u64 = incoming.values().map(|i| i.ops).sum();
        let admitted = pending.as_ref().and_then(|_| {
            let permit = hub.try_admit_ops(ops)?;
            Some((permit, hub.try_lock_all(incoming.keys().copied())?))
        });
        if admitted.is_none()
            && let Some(staged) = pending.take()
        {
            outgoing.extend(self.commit_and_settle(hub, staged).await?);
        }
        let judged = match (pending.take(), admitted) {
            (Some(mut staged), Some(admitted)) => {
                // Both borrow the connection only to read it.
                let (committed, judged) = tokio::join!(
                    self.commit(hub, &mut staged),
                    self.judge(hub, incoming, Some(admitted))
                );
                outgoing.extend(self.settle(hub, staged, committed).await?);
                judged?
            }
            _ => self.judge(hub, incoming, None).await?,
        };
        let staged = self.stage(judged).await?;
        outgoing.extend(staged.unavailable.iter().map(|id| self.unavailable(hub, *id)));
        *pending = Some(staged);
        Ok(outgoing)
    }

    /// Locks the documents of a batch (waiting for its share of the
    /// operations in flight first) and judges their changes on all cores.
    /// Reads the connection only: it runs while the previous batch commits.
    async fn judge(
        &self,
        hub: &Hub,
        incoming: BTreeMap<DocId, Incoming>,
        admitted: Option<(OwnedSemaphorePermit, Vec<(DocId, Locked)>)>,
    ) -> Result<Judged, Close> {
        // First sync of a document on this connection: audited as a read.
        let read: Vec<(DocId, shared::PatientId)> = incoming
            .iter()
            .filter(|(id, _)| !self.states.contains_key(id))
            .map(|(id, i)| (*id, i.kind.patient()))
            .collect();
        let fresh = read.len();
        // What the batch may make the server hold at once, across all
        // connections, is bounded: this waits for its share.
        let ops: u64 = incoming.values().map(|i| i.ops).sum();
        // Locked in DocId order, so connections never deadlock; those not
        // held yet are loaded with one read.
        let (permit, locked) = match admitted {
            Some((permit, mut locked)) => {
                hub.load_missing(&mut locked).await?;
                (permit, locked)
            }
            None => {
                let permit = hub.admit_ops(ops).await;
                (permit, hub.lock_all(incoming.keys().copied()).await?)
            }
        };
        let mut locked: BTreeMap<DocId, Locked> = locked.into_iter().collect();
        let mut unavailable = Vec::new();
        locked.retain(|id, guard| {
            let exists = guard.is_some();
            if !exists {
                unavailable.push(*id);
            }
            exists
        });
        let checked = self.judge_locked(&incoming, &mut locked).await;
        Ok(Judged { incoming, locked, checked, read, fresh, unavailable, _permit: permit })
    }

    /// Judges the changes of the locked documents on all cores; the locks
    /// stay in `locked`.
    async fn judge_locked(
        &self,
        incoming: &BTreeMap<DocId, Incoming>,
        locked: &mut BTreeMap<DocId, Locked>,
    ) -> Vec<Checked> {
        let jobs: Vec<Job> = incoming
            .iter()
            .filter_map(|(id, i)| {
                let guard = locked.remove(id)?;
                let state = self.states.get(id).cloned().unwrap_or_default();
                Some(Job { id: *id, kind: i.kind, guard, state, messages: i.messages.clone() })
            })
            .collect();
        let mut checked = check_in_parallel(jobs, &self.principal).await;
        for c in &mut checked {
            if let Some(guard) = c.guard.take() {
                locked.insert(c.id, guard);
            }
        }
        checked
    }

    /// Checks the actor ids of a judged batch and takes out what to store.
    async fn stage(&mut self, judged: Judged) -> Result<Staged, Close> {
        let Judged { incoming, locked, checked, read, fresh, unavailable, _permit } = judged;
        let mut checked = self.check_actors(checked).await?;
        // Take the accepted copies out for the hub to store and install.
        let mut accepted = Vec::new();
        let mut written = Vec::new();
        let mut entries = Vec::new();
        let mut actors = BTreeSet::new();
        for c in &mut checked {
            if let Outcome::Accepted { fork, chunk, created, touched, .. } = &mut c.outcome
                && let (Some(doc), Some(chunk)) = (fork.take(), chunk.take())
            {
                accepted.push(Accepted {
                    id: c.id,
                    kind: c.kind,
                    doc: *doc,
                    data: chunk.data,
                    snapshot: chunk.snapshot,
                    touched: Some(std::mem::take(touched)),
                });
                written.push((c.id, c.kind.patient()));
                entries.push((c.id, *created));
                actors.extend(c.new_actors.iter().cloned());
            }
        }
        Ok(Staged {
            incoming,
            locked,
            checked,
            accepted,
            read,
            written,
            entries,
            actors: actors.into_iter().collect(),
            attempts: 1,
            fresh,
            unavailable,
            _permit,
        })
    }

    /// Stores a staged batch with its audit rows (`Hub::commit`, one
    /// transaction). Reads the connection only: it runs while the next
    /// batch is judged.
    async fn commit(&self, hub: &Hub, staged: &mut Staged) -> Result<(), StoreError> {
        // Audited in the same transaction: each document read, each change accepted.
        let mut events: Vec<AuditEvent<'_>> = staged
            .read
            .iter()
            .map(|(id, patient)| self.audit_event(AuditAction::DocumentRead, *id, *patient))
            .collect();
        events.extend(
            staged
                .written
                .iter()
                .map(|(id, patient)| self.audit_event(AuditAction::ChangeAccepted, *id, *patient)),
        );
        let author = Author {
            user: &self.user,
            patients: &staged.written,
            entries: &staged.entries,
            actors: &staged.actors,
        };
        let accepted = std::mem::take(&mut staged.accepted);
        // Durable first: nothing is acknowledged or relayed before this commits.
        hub.commit(&mut staged.locked, accepted, &events, Some(author), Some(self.id)).await
    }

    /// Commits and answers the pending batch, if there is one.
    async fn settle_pending(&mut self, hub: &Hub) -> Result<Vec<WireMessage>, Close> {
        match self.pending.take() {
            Some(staged) => self.commit_and_settle(hub, staged).await,
            None => Ok(Vec::new()),
        }
    }

    /// Access changed: the pending batch is answered first, as if it had
    /// been committed before (it was judged before), then access is
    /// looked up again.
    async fn access_changed(&mut self, hub: &Hub) -> Result<Vec<WireMessage>, Close> {
        let mut outgoing = self.settle_pending(hub).await?;
        let ended = self.refresh_access().await?;
        outgoing.extend(ended.into_iter().map(|id| self.unavailable(hub, id)));
        Ok(outgoing)
    }

    async fn commit_and_settle(
        &mut self,
        hub: &Hub,
        mut staged: Staged,
    ) -> Result<Vec<WireMessage>, Close> {
        let committed = self.commit(hub, &mut staged).await;
        self.settle(hub, staged, committed).await
    }

    /// Answers a batch once its commit is known: acknowledgements and
    /// refusals, the sync states it leaves. Another instance having written
    /// some of its documents after their copies were read (`Stale`; the hub
    /// caught the copies up), it is judged again and committed again first.
    async fn settle(
        &mut self,
        hub: &Hub,
        mut staged: Staged,
        mut committed: Result<(), StoreError>,
    ) -> Result<Vec<WireMessage>, Close> {
        let mut outgoing = Vec::new();
        loop {
            match committed {
                Ok(()) => break,
                Err(StoreError::Stale(_)) if staged.attempts < MAX_ATTEMPTS => {
                    let checked = self.judge_locked(&staged.incoming, &mut staged.locked).await;
                    let attempts = staged.attempts;
                    let judged = Judged {
                        incoming: staged.incoming,
                        locked: staged.locked,
                        checked,
                        read: staged.read,
                        fresh: staged.fresh,
                        unavailable: Vec::new(),
                        _permit: staged._permit,
                    };
                    staged = self.stage(judged).await?;
                    staged.attempts = attempts + 1;
                    committed = self.commit(hub, &mut staged).await;
                }
                Err(StoreError::AccessEnded(ended)) => {
                    // Consent was revoked (perhaps through another instance)
                    // after this connection last looked: nothing is stored.
                    let others = self.refresh_access().await?;
                    for &id in &ended {
                        tracing::warn!(user = %self.user.id, doc = %id, "sync: change refused, access has ended");
                        let patient = staged.incoming.get(&id).map(|i| i.kind.patient());
                        let refused = AuditEvent {
                            user: Some(self.user.id),
                            session: Some(&self.session_id),
                            action: AuditAction::ChangeRefused,
                            patient,
                            doc: Some(id),
                            detail: "rule consent: the patient withdrew this clinic's access",
                        };
                        self.state.store.audit(&refused, self.state.now()).await?;
                        self.states.insert(id, sync::State::new());
                        outgoing.push(self.rejection(
                            hub,
                            id,
                            session::CONSENT_RULE,
                            session::CONSENT_WITHDRAWN.to_owned(),
                        ));
                    }
                    // The documents refused are named above; the others
                    // that ended with them are unavailable from now on.
                    for id in others.into_iter().filter(|id| !ended.contains(id)) {
                        outgoing.push(self.unavailable(hub, id));
                    }
                    return Ok(outgoing);
                }
                Err(StoreError::Quota(over)) => {
                    for id in over {
                        tracing::warn!(user = %self.user.id, doc = %id, "sync: change refused, daily quota reached");
                        self.states.insert(id, sync::State::new());
                        outgoing.push(self.rejection(hub, id, "quota", QUOTA_REACHED.to_owned()));
                    }
                    return Ok(outgoing);
                }
                Err(error) => return Err(error.into()),
            }
        }
        for c in staged.checked {
            self.states.insert(c.id, c.state);
            match c.outcome {
                Outcome::Heads { reply } | Outcome::Accepted { reply, .. } => {
                    outgoing.extend(reply.map(|data| sync_bytes(hub, &self.peer_id, c.id, data)))
                }
                Outcome::Rejected { rule, message } => {
                    tracing::warn!(user = %self.user.id, doc = %c.id, rule, "sync: change rejected");
                    // Forget what this connection claimed to have sent: the
                    // client resets the document and syncs it from scratch.
                    self.states.insert(c.id, sync::State::new());
                    outgoing.push(self.rejection(hub, c.id, rule, message));
                }
                Outcome::Corrupt => return Err(corrupt(c.id)),
            }
        }
        Ok(outgoing)
    }

    /// Every change must be signed by one of the sender's own actor ids. An
    /// actor id seen for the first time is bound to its sender when the
    /// batch is stored (never for a refused change), a few per batch; one
    /// bound to someone else is a forgery.
    async fn check_actors(&mut self, mut checked: Vec<Checked>) -> Result<Vec<Checked>, Close> {
        let unknown: BTreeSet<String> = checked
            .iter()
            .flat_map(|c| c.actors.iter())
            .filter(|a| !self.own_actors.contains(*a))
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(checked);
        }
        let unknown: Vec<String> = unknown.into_iter().collect();
        let owners = self.state.store.actor_owners(&unknown).await?;
        for (actor, owner) in &owners {
            if *owner == self.user.id {
                self.own_actors.insert(actor.clone());
            }
        }
        // Distinct new actor ids the batch will bind: one device's actor id
        // signing changes to many documents counts once.
        let mut fresh: HashSet<String> = HashSet::new();
        for c in &mut checked {
            let forged =
                c.actors.iter().any(|a| owners.get(a).is_some_and(|owner| *owner != self.user.id));
            let new: Vec<String> =
                c.actors.iter().filter(|a| !owners.contains_key(*a)).cloned().collect();
            let added = new.iter().filter(|a| !fresh.contains(*a)).count();
            if forged {
                c.outcome = Outcome::Rejected {
                    rule: "forged-actor",
                    message: "changes were signed with an actor id that belongs to another user (rule forged-actor)".into(),
                };
            } else if fresh.len() + added > MAX_NEW_ACTORS_PER_BATCH {
                c.outcome = Outcome::Rejected {
                    rule: "limit",
                    message: format!(
                        "changes were signed with more than {MAX_NEW_ACTORS_PER_BATCH} new actor ids at once (rule limit)"
                    ),
                };
            } else if matches!(c.outcome, Outcome::Accepted { .. }) {
                fresh.extend(new.iter().cloned());
                c.new_actors = new;
            }
        }
        Ok(checked)
    }

    fn rejection(&self, hub: &Hub, id: DocId, rule: &str, message: String) -> WireMessage {
        WireMessage::ChangeRejected {
            sender_id: hub.peer_id().to_owned(),
            target_id: self.peer_id.clone().unwrap_or_default(),
            document_id: encode_doc_id(id),
            rule: rule.to_owned(),
            message,
        }
    }

    /// Sends this connection what it lacks of documents changed elsewhere.
    async fn push(&mut self, hub: &Hub, ids: &[DocId]) -> Result<Vec<WireMessage>, Close> {
        let mut outgoing = Vec::new();
        // The pending batch holds its documents' locks and sync states:
        // settled first if it holds one of these.
        if self.pending.as_ref().is_some_and(|p| ids.iter().any(|id| p.incoming.contains_key(id))) {
            outgoing.extend(self.settle_pending(hub).await?);
        }
        for id in ids {
            // Only documents this replica has asked for and may still read.
            if self.readable(*id).is_none() {
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

    /// Open work for `patient` at `clinic` was stored (`Hub::subscribe_work`):
    /// a message, a refill or appointment request from the patient side, a
    /// booked appointment. If this user is staff of that clinic who may read
    /// the patient (the read policy, asked now) and this connection syncs
    /// none of the patient's documents, the device is told to list again
    /// (`ListChanged`, which names nobody): its offline set now has the
    /// patient (`Store::work_patients`), so To do shows the work at once and
    /// the patient opens offline. Nothing is sent to anyone else.
    async fn work_arrived(
        &mut self,
        clinic: shared::ClinicId,
        patient: shared::PatientId,
    ) -> Result<Vec<WireMessage>, Close> {
        if !self.user.role.is_staff() || !self.user.clinics.contains(&clinic) {
            return Ok(Vec::new());
        }
        if self.access.values().flatten().any(|kind| kind.patient() == patient) {
            return Ok(Vec::new());
        }
        let now = Instant::now();
        if self.told.get(&patient).is_some_and(|at| now.duration_since(*at) < TELL_AGAIN) {
            return Ok(Vec::new());
        }
        if self.state.store.readable_of_patients(&self.user, &[patient]).await?.is_empty() {
            return Ok(Vec::new());
        }
        self.told.retain(|_, at| now.duration_since(*at) < TELL_AGAIN);
        self.told.insert(patient, now);
        Ok(vec![WireMessage::ListChanged])
    }

    /// The kind of document `id` if the user may read it, as last looked up.
    fn readable(&self, id: DocId) -> Option<DocKind> {
        self.access.get(&id).copied().flatten()
    }

    /// Looks up whether the user may read those of `ids` not looked up
    /// since access last changed. Answers are kept until then; refusals
    /// only up to `MAX_REMEMBERED_REFUSALS`, so a client naming random ids
    /// cannot grow the map without bound.
    async fn ensure_access(&mut self, ids: &[DocId]) -> Result<(), Close> {
        let mut unknown: Vec<DocId> =
            ids.iter().copied().filter(|id| !self.access.contains_key(id)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        unknown.dedup();
        let readable = self.state.store.readable_among(&self.user, &unknown).await?;
        if self.access.len() + unknown.len() > MAX_REMEMBERED_REFUSALS {
            self.access.retain(|_, kind| kind.is_some());
        }
        for id in unknown {
            self.access.insert(id, None);
        }
        for row in readable {
            self.access.insert(row.id, Some(row.kind));
        }
        Ok(())
    }

    /// Access changed (consent, membership, user): forgets what was looked
    /// up and looks up again the documents this replica syncs; those no
    /// longer readable stop syncing at once and are returned: the device is
    /// told (`doc-unavailable`), so it removes its copy now rather than
    /// when it next lists its documents.
    async fn refresh_access(&mut self) -> Result<Vec<DocId>, Close> {
        self.access.clear();
        // Consents moved: the clinics a patient side may ask for
        // appointments are the principal's, so it is read again too.
        if self.user.patient.is_some()
            && let Ok(Some(user)) = self.state.store.user(self.user.id).await
            && let Some(principal) = user.principal()
        {
            self.user = user;
            self.principal = principal;
        }
        let syncing: Vec<DocId> = self.states.keys().copied().collect();
        self.ensure_access(&syncing).await?;
        let access = &self.access;
        let ended: Vec<DocId> =
            syncing.into_iter().filter(|id| !matches!(access.get(id), Some(Some(_)))).collect();
        for id in &ended {
            self.states.remove(id);
        }
        Ok(ended)
    }

    fn audit_event(
        &self,
        action: AuditAction,
        doc: DocId,
        patient: shared::PatientId,
    ) -> AuditEvent<'_> {
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

fn corrupt(id: DocId) -> Close {
    Close::new(1007, format!("corrupt Automerge changes for document {}", encode_doc_id(id)))
}

fn sync_message(
    hub: &Hub,
    peer: &Option<String>,
    id: DocId,
    canonical: &mut Canonical,
    state: &mut sync::State,
) -> Option<WireMessage> {
    Some(sync_bytes(hub, peer, id, canonical.sync_message(state)?))
}

fn sync_bytes(hub: &Hub, peer: &Option<String>, id: DocId, data: Vec<u8>) -> WireMessage {
    WireMessage::Sync {
        sender_id: hub.peer_id().to_owned(),
        target_id: peer.clone().unwrap_or_default(),
        document_id: encode_doc_id(id),
        data: ByteBuf::from(data),
    }
}
