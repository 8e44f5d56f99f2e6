//! Several server instances on one PostgreSQL database.
//!
//! Each instance publishes, after commit, the ids of documents it changed
//! (`NOTIFY portal_docs`), that access changed (`NOTIFY portal_access`) and
//! the clinic and patient of new work stored (`NOTIFY portal_work`, for
//! staff devices that lack the patient: `Hub::subscribe_work`), and listens
//! for the others'. Payloads carry the sender's instance id and ids only,
//! never content. What the listener hears goes to the hub
//! as a `Heard` event over a channel (this module knows nothing of the hub):
//! the hub reads the new chunks from storage (`Hub::refresh`) and announces
//! them to its own connections through the local broadcast, exactly like its
//! own commits.
//!
//! Notifications sent while the listening connection is down are lost, so
//! after every (re)connection the listener reports `Heard::Missed`: the hub
//! compares the stored sequence numbers of the documents it holds with its
//! own, re-reads those that moved on (`Hub::resync`), and makes every
//! connection recompute access.
//!
//! A connection can also die silently (a firewall forgets an idle flow, a
//! network partition): nothing fails, nothing arrives. So the listener
//! sends a heartbeat on its own connection every `HEARTBEAT_INTERVAL` and
//! gives the connection up when one goes unanswered for
//! `HEARTBEAT_TIMEOUT`; it then re-reads at once, keeps re-reading every
//! `DEAF_POLL` until it listens again, and `/healthz` answers 503 meanwhile
//! so the load balancer sends new people elsewhere. For access, a
//! notification is only the fast path: a deaf instance does not wait to
//! hear of a revocation, it re-reads access within `DEAF_POLL`.
//!
//! On SQLite there is one process and none of this runs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use shared::{ClinicId, DocId, PatientId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::storage::{Listener, MAX_PAYLOAD, Notification, Store, StoreError};

const DOCS: &str = "portal_docs";
const ACCESS: &str = "portal_access";
const WORK: &str = "portal_work";
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often the listening connection proves it is alive: a round trip on
/// that connection (`Listener::heartbeat`). A connection whose network flow
/// died silently (an idle-flow timeout, a partition) raises no error and
/// delivers nothing; only an unanswered heartbeat shows it. The cost is one
/// `SELECT 1` per instance every 2 s.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// How long a heartbeat (or a new listening connection) may take before
/// the connection counts as dead. `SELECT 1` on an idle dedicated
/// connection answers in about a millisecond; 3 s leaves room for a loaded
/// database without reconnecting on every hiccup.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest an instance goes without hearing from the database on its
/// listening connection before it counts as deaf: a flow that dies just
/// after a heartbeat is noticed when the next one (2 s later) goes
/// unanswered for 3 s. Notifications sent in that window are lost and
/// re-read (`Hub::resync`) once it is noticed.
pub const DEAF_AFTER: Duration = HEARTBEAT_INTERVAL.saturating_add(HEARTBEAT_TIMEOUT);
/// While not listening, how often access and documents are re-read from
/// storage instead (`poll_while_deaf`). With the re-read when a dead
/// connection is noticed, an instance acts on a consent revocation it was
/// not told of within 5 s (plus the queries' time).
pub const DEAF_POLL: Duration = Duration::from_secs(5);

/// The listener's state, as `/healthz` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// `LISTEN` is in place and the last heartbeat was answered.
    pub listening: bool,
    /// How many times the listening connection was opened (1 + reconnects).
    pub connections: u64,
    /// When the database last answered on the listening connection.
    pub last_heartbeat: Option<Instant>,
}

impl ClusterStatus {
    pub fn reconnects(&self) -> u64 {
        self.connections.saturating_sub(1)
    }

    /// Whether this instance hears other instances' changes as they happen:
    /// listening, and heard from the database within `DEAF_AFTER` (which
    /// also catches a listener task that stopped without saying so).
    pub fn hearing(&self, now: Instant) -> bool {
        self.listening
            && self.last_heartbeat.is_some_and(|at| now.saturating_duration_since(at) <= DEAF_AFTER)
    }
}

enum Event {
    Document(DocId),
    Access,
    Work(ClinicId, PatientId),
}

/// What the listener heard from other instances, for the hub to act on.
#[derive(Debug)]
pub enum Heard {
    /// Another instance committed changes to these documents.
    Documents(Vec<DocId>),
    /// Another instance changed consent or membership.
    Access,
    /// Another instance stored new work of these patients at these clinics.
    Work(Vec<(ClinicId, PatientId)>),
    /// Announcements may have been lost (the listener (re)connected, or is
    /// not listening): re-read access and every held document. `done`, if
    /// given, is answered when the re-read has finished.
    Missed { done: Option<oneshot::Sender<()>> },
}

/// The publishing and listening tasks; they stop when this is dropped.
pub struct Cluster {
    events: mpsc::UnboundedSender<Event>,
    status: watch::Receiver<ClusterStatus>,
    hold: watch::Sender<bool>,
    _stop: oneshot::Sender<()>,
}

impl Cluster {
    /// Starts publishing and listening; what is heard arrives on the
    /// returned receiver, which ends when this is dropped.
    pub fn start(store: Store, instance: String) -> (Self, mpsc::UnboundedReceiver<Heard>) {
        let (events, queue) = mpsc::unbounded_channel();
        let (heard, hearing) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(ClusterStatus::default());
        let (hold, held) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(publish(store.clone(), instance.clone(), queue));
        tokio::spawn(listen(store, heard, instance, stopped, status_tx, held));
        (Self { events, status, hold, _stop: stop }, hearing)
    }

    /// Called after the change is committed.
    pub fn document_changed(&self, id: DocId) {
        let _ = self.events.send(Event::Document(id));
    }

    pub fn access_changed(&self) {
        let _ = self.events.send(Event::Access);
    }

    /// Called after new work of `patient` at `clinic` is committed.
    pub fn work_arrived(&self, clinic: ClinicId, patient: PatientId) {
        let _ = self.events.send(Event::Work(clinic, patient));
    }

    pub fn status(&self) -> watch::Receiver<ClusterStatus> {
        self.status.clone()
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn hold_reconnect(&self, hold: bool) {
        let _ = self.hold.send(hold);
    }
}

/// Sends queued events, coalescing whatever queued up meanwhile: access
/// first (a revocation takes effect before more changes go out), then the
/// document ids, as few notifications as fit.
async fn publish(store: Store, instance: String, mut queue: mpsc::UnboundedReceiver<Event>) {
    while let Some(first) = queue.recv().await {
        let mut docs = BTreeSet::new();
        let mut work = BTreeSet::new();
        let mut access = false;
        let mut next = Some(first);
        while let Some(event) = next {
            match event {
                Event::Document(id) => {
                    docs.insert(id);
                }
                Event::Access => access = true,
                Event::Work(clinic, patient) => {
                    work.insert(format!("{clinic} {patient}"));
                }
            }
            next = queue.try_recv().ok();
        }
        if access && let Err(error) = store.notify(ACCESS, &instance).await {
            tracing::warn!(%error, "cluster: could not announce an access change");
        }
        if let Err(error) = announce(&store, &instance, &docs).await {
            // The others catch up when they next commit this document
            // or reconnect; nothing is lost from storage.
            tracing::warn!(%error, "cluster: could not announce changed documents");
        }
        for payload in payloads(&instance, &work) {
            if let Err(error) = store.notify(WORK, &payload).await {
                // Staff devices elsewhere see the work at their next listing.
                tracing::warn!(%error, "cluster: could not announce new work");
            }
        }
    }
}

/// Tells every instance listening on the database that `docs` changed,
/// now (a one-shot process such as `portal import` has no publishing task
/// that would outlive it); nothing on SQLite.
pub async fn announce(
    store: &Store,
    instance: &str,
    docs: &BTreeSet<DocId>,
) -> Result<(), StoreError> {
    let docs: BTreeSet<String> = docs.iter().map(ToString::to_string).collect();
    for payload in payloads(instance, &docs) {
        store.notify(DOCS, &payload).await?;
    }
    Ok(())
}

/// `instance\nline\nline...`, split to stay under PostgreSQL's payload
/// limit.
fn payloads(instance: &str, lines: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for id in lines {
        if !current.is_empty() && current.len() + 1 + id.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(instance);
        }
        current.push('\n');
        current.push_str(id);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

async fn listen(
    store: Store,
    heard: mpsc::UnboundedSender<Heard>,
    instance: String,
    mut stop: oneshot::Receiver<()>,
    status: watch::Sender<ClusterStatus>,
    mut held: watch::Receiver<bool>,
) {
    loop {
        // Deaf until LISTEN is in place: poll instead, so that access and
        // documents changed elsewhere are still re-read every `DEAF_POLL`.
        let poller = AbortOnDrop(tokio::spawn(poll_while_deaf(heard.clone(), held.clone())));
        let Some(mut listener) = connect(&store, &mut stop, &mut held).await else { return };
        drop(poller);
        status.send_modify(|s| {
            s.listening = true;
            s.connections += 1;
            s.last_heartbeat = Some(Instant::now());
        });
        // LISTEN is in place: whatever was announced before it is re-read.
        if heard.send(Heard::Missed { done: None }).is_err() {
            return;
        }
        let Some(lost) = hear(&mut listener, &heard, &instance, &mut stop, &status).await else {
            return;
        };
        status.send_modify(|s| s.listening = false);
        tracing::warn!(reason = %lost, "cluster: not listening to other instances; reconnecting");
        // What was announced since the connection died is lost, including
        // access changes: re-read now rather than at the next poll. (A dead
        // connection's listener is dropped; sqlx's UNLISTEN on it waits in
        // the background until the kernel gives up on the socket.)
        drop(listener);
        if !*held.borrow() && heard.send(Heard::Missed { done: None }).is_err() {
            return;
        }
    }
}

/// Opens the LISTEN connection, retrying with backoff; each attempt must
/// answer within `HEARTBEAT_TIMEOUT`, since a dead network can leave a
/// connection attempt waiting forever. `None` once stopped.
async fn connect(
    store: &Store,
    stop: &mut oneshot::Receiver<()>,
    held: &mut watch::Receiver<bool>,
) -> Option<Listener> {
    let mut backoff = MIN_BACKOFF;
    loop {
        tokio::select! {
            _ = &mut *stop => return None,
            _ = held.wait_for(|hold| !hold) => {}
        }
        let attempt = tokio::select! {
            _ = &mut *stop => return None,
            attempt = tokio::time::timeout(HEARTBEAT_TIMEOUT, store.listen(&[DOCS, ACCESS, WORK])) => attempt,
        };
        match attempt {
            Ok(Ok(listener)) => return Some(listener),
            Ok(Err(error)) => {
                tracing::warn!(%error, retry_in = ?backoff, "cluster: cannot listen for other instances")
            }
            Err(_) => {
                tracing::warn!(retry_in = ?backoff, "cluster: the database did not answer a new listening connection in time")
            }
        }
        tokio::select! {
            _ = &mut *stop => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Handles notifications and sends a heartbeat every `HEARTBEAT_INTERVAL`
/// until the connection is lost or stays silent for `HEARTBEAT_TIMEOUT`;
/// returns why, or `None` once stopped.
async fn hear(
    listener: &mut Listener,
    heard: &mpsc::UnboundedSender<Heard>,
    instance: &str,
    stop: &mut oneshot::Receiver<()>,
    status: &watch::Sender<ClusterStatus>,
) -> Option<String> {
    let mut next_beat = tokio::time::Instant::now() + HEARTBEAT_INTERVAL;
    loop {
        tokio::select! {
            _ = &mut *stop => return None,
            // `recv` is cancel-safe: a notification half read stays buffered.
            next = listener.recv() => match next {
                Ok(Some(notification)) => {
                    if let Some(event) = received(instance, notification) {
                        heard.send(event).ok()?;
                    }
                }
                Ok(None) => return Some("the listening connection was closed".into()),
                Err(error) => return Some(format!("the listening connection failed: {error}")),
            },
            _ = tokio::time::sleep_until(next_beat) => {
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, listener.heartbeat()).await {
                    Ok(Ok(())) => status.send_modify(|s| s.last_heartbeat = Some(Instant::now())),
                    Ok(Err(error)) => return Some(format!("the heartbeat failed: {error}")),
                    Err(_) => return Some(format!("no answer to the heartbeat within {HEARTBEAT_TIMEOUT:?}")),
                }
                next_beat = tokio::time::Instant::now() + HEARTBEAT_INTERVAL;
            }
        }
    }
}

/// While not listening: every `DEAF_POLL`, have the hub re-read what other
/// instances may have changed (access first, then documents), one pass at
/// a time. Not while a test holds the listener deaf.
async fn poll_while_deaf(heard: mpsc::UnboundedSender<Heard>, mut held: watch::Receiver<bool>) {
    loop {
        tokio::time::sleep(DEAF_POLL).await;
        if held.wait_for(|hold| !hold).await.is_err() {
            return;
        }
        let (done, finished) = oneshot::channel();
        if heard.send(Heard::Missed { done: Some(done) }).is_err() {
            return;
        }
        let _ = finished.await;
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a notification says, unless it is this instance's own (already
/// announced here) or on no channel of ours.
fn received(instance: &str, notification: Notification) -> Option<Heard> {
    let mut lines = notification.payload.split('\n');
    if lines.next() == Some(instance) {
        return None;
    }
    match notification.channel.as_str() {
        ACCESS => Some(Heard::Access),
        DOCS => Some(Heard::Documents(lines.filter_map(|line| line.parse().ok()).collect())),
        WORK => Some(Heard::Work(
            lines
                .filter_map(|line| {
                    let (clinic, patient) = line.split_once(' ')?;
                    Some((clinic.parse().ok()?, patient.parse().ok()?))
                })
                .collect(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_carry_every_id() {
        let docs: BTreeSet<String> = (0..1000)
            .map(|_| {
                shared::schema::DocKind::PatientRecord { patient: shared::PatientId::mint() }
                    .doc_id()
                    .to_string()
            })
            .collect();
        let payloads = payloads("portal-x", &docs);
        assert!(payloads.len() > 1);
        let mut seen = BTreeSet::new();
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD);
            let mut lines = payload.split('\n');
            assert_eq!(lines.next(), Some("portal-x"));
            seen.extend(lines.map(str::to_owned));
        }
        assert_eq!(seen, docs);
    }
}
