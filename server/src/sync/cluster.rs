//! Several server instances on one PostgreSQL database.
//!
//! Each instance publishes, after commit, the ids of documents it changed
//! (`NOTIFY portal_docs`) and that access changed (`NOTIFY portal_access`),
//! and listens for the others'. Payloads carry the sender's instance id and
//! document ids only, never content: a receiving instance reads the new
//! chunks from storage (`Hub::refresh`) and announces them to its own
//! connections through the local broadcast, exactly like its own commits.
//!
//! Notifications sent while the listening connection is down are lost, so
//! after every (re)connection the instance compares the stored sequence
//! numbers of the documents it holds with its own and re-reads those that
//! moved on (`Hub::resync`), and makes every connection recompute access.
//! On SQLite there is one process and none of this runs.

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;

use shared::DocId;
use tokio::sync::{mpsc, oneshot, watch};

use super::hub::Hub;
use crate::storage::{MAX_PAYLOAD, Notification, Store};

const DOCS: &str = "portal_docs";
const ACCESS: &str = "portal_access";
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether the listener is connected, and how many times it has connected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    pub listening: bool,
    pub connections: u64,
}

enum Event {
    Document(DocId),
    Access,
}

/// The publishing and listening tasks; they stop when this is dropped.
pub struct Cluster {
    events: mpsc::UnboundedSender<Event>,
    status: watch::Receiver<ClusterStatus>,
    hold: watch::Sender<bool>,
    _stop: oneshot::Sender<()>,
}

impl Cluster {
    pub fn start(store: Store, hub: Weak<Hub>, instance: String) -> Self {
        let (events, queue) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(ClusterStatus::default());
        let (hold, held) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(publish(store.clone(), instance.clone(), queue));
        tokio::spawn(listen(store, hub, instance, stopped, status_tx, held));
        Self { events, status, hold, _stop: stop }
    }

    /// Called after the change is committed.
    pub fn document_changed(&self, id: DocId) {
        let _ = self.events.send(Event::Document(id));
    }

    pub fn access_changed(&self) {
        let _ = self.events.send(Event::Access);
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
        let mut access = false;
        let mut next = Some(first);
        while let Some(event) = next {
            match event {
                Event::Document(id) => {
                    docs.insert(id);
                }
                Event::Access => access = true,
            }
            next = queue.try_recv().ok();
        }
        if access {
            if let Err(error) = store.notify(ACCESS, &instance).await {
                tracing::warn!(%error, "cluster: could not announce an access change");
            }
        }
        for payload in payloads(&instance, &docs) {
            if let Err(error) = store.notify(DOCS, &payload).await {
                // The others catch up when they next commit this document
                // or reconnect; nothing is lost from storage.
                tracing::warn!(%error, "cluster: could not announce changed documents");
            }
        }
    }
}

/// `instance\nid\nid...`, split to stay under PostgreSQL's payload limit.
fn payloads(instance: &str, docs: &BTreeSet<DocId>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for id in docs {
        let id = id.to_string();
        if !current.is_empty() && current.len() + 1 + id.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(instance);
        }
        current.push('\n');
        current.push_str(&id);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

async fn listen(
    store: Store,
    hub: Weak<Hub>,
    instance: String,
    mut stop: oneshot::Receiver<()>,
    status: watch::Sender<ClusterStatus>,
    mut held: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = held.wait_for(|hold| !hold) => {}
        }
        let connected = tokio::select! {
            _ = &mut stop => return,
            connected = store.listen(&[DOCS, ACCESS]) => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "cluster: cannot listen for other instances");
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        status.send_modify(|s| {
            s.listening = true;
            s.connections += 1;
        });
        // LISTEN is in place: whatever was announced before it is re-read.
        let Some(strong) = hub.upgrade() else { return };
        tokio::spawn(async move {
            if let Err(error) = strong.resync().await {
                tracing::error!(%error, "cluster: re-reading changed documents failed");
            }
        });
        loop {
            let next = tokio::select! {
                _ = &mut stop => return,
                next = listener.recv() => next,
            };
            match next {
                Ok(Some(notification)) => {
                    let Some(hub) = hub.upgrade() else { return };
                    received(hub, &instance, notification);
                }
                Ok(None) => {
                    tracing::warn!("cluster: lost the listening connection; reconnecting");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cluster: the listening connection failed; reconnecting");
                    break;
                }
            }
        }
        status.send_modify(|s| s.listening = false);
    }
}

fn received(hub: std::sync::Arc<Hub>, instance: &str, notification: Notification) {
    let mut lines = notification.payload.split('\n');
    if lines.next() == Some(instance) {
        // Our own: already announced here.
        return;
    }
    match notification.channel.as_str() {
        ACCESS => hub.access_changed_here(),
        DOCS => {
            let ids: Vec<DocId> = lines.filter_map(|line| line.parse().ok()).collect();
            tokio::spawn(async move {
                for id in ids {
                    if let Err(error) = hub.refresh(id).await {
                        tracing::error!(%error, doc = %id, "cluster: reading another instance's changes failed");
                    }
                }
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_carry_every_id() {
        let docs: BTreeSet<DocId> =
            (0..1000).map(|_| shared::schema::DocKind::PatientRecord { patient: shared::PatientId::mint() }.doc_id()).collect();
        let payloads = payloads("portal-x", &docs);
        assert!(payloads.len() > 1);
        let mut seen = BTreeSet::new();
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD);
            let mut lines = payload.split('\n');
            assert_eq!(lines.next(), Some("portal-x"));
            seen.extend(lines.map(|l| l.parse::<DocId>().unwrap()));
        }
        assert_eq!(seen, docs);
    }
}
