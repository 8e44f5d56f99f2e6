//! A connection's session and consent: the socket closes when its session
//! ends (told at once on this instance, re-checked on a timer everywhere),
//! and changes for a record whose consent was withdrawn are refused by name.

use std::sync::Arc;
use std::time::Duration;

use automerge::{ReadDoc, sync};
use shared::sync::{WireMessage, decode_doc_id, encode_doc_id, scan_sync_message};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::{Interval, MissedTickBehavior};

use super::{Close, Connection};
use crate::auth::{SESSION_IDLE, TOUCH_INTERVAL_MS};
use crate::storage::AuditEvent;
use crate::sync::TEST_SESSION;
use crate::sync::ended::{CLOSE_SESSION_ENDED, EndReason, Ended, SESSION_RECHECK};
use crate::sync::hub::Hub;

/// The rule named when a change is refused because consent was withdrawn.
pub const CONSENT_RULE: &str = "consent";
/// What the person is told when a change of theirs reaches a record after
/// its patient withdrew their clinic's access.
pub const CONSENT_WITHDRAWN: &str = "Not delivered: the patient has withdrawn your clinic's access to their record, \
                                     so nothing more can be added to it from your clinic (rule consent).";

/// Ticks every `SESSION_RECHECK`, the first after a random part of it, so
/// that connections opened together do not all query at once.
pub(super) fn recheck_timer() -> Interval {
    let first = SESSION_RECHECK.mul_f64(rand::random::<f64>()).max(Duration::from_millis(10));
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + first, SESSION_RECHECK);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}

fn closed(reason: EndReason) -> Close {
    Close::new(CLOSE_SESSION_ENDED, reason.message())
}

impl Connection {
    /// A broadcast of ended sessions: the close, if this connection's is one.
    pub(super) fn session_ended(&self, end: Result<Arc<Ended>, RecvError>) -> Option<Close> {
        match end {
            Ok(ended) => ended.sessions.contains(&self.session_id).then(|| closed(ended.reason)),
            // Missed some: the storage check decides, on the next recheck tick
            // or right now for the frames that follow (`ended_meanwhile`).
            Err(RecvError::Lagged(_)) => None,
            Err(RecvError::Closed) => None,
        }
    }

    /// Whether this connection's session ended while frames were arriving.
    pub(super) fn ended_meanwhile(&self, ended: &mut Receiver<Arc<Ended>>) -> Option<Close> {
        loop {
            match ended.try_recv() {
                Ok(end) => {
                    if let Some(close) = self.session_ended(Ok(end)) {
                        return Some(close);
                    }
                }
                // Lagged: some endings were missed; be safe and close, the
                // client reconnects if its session is in fact live.
                Err(TryRecvError::Lagged(_)) => return Some(closed(EndReason::Expired)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    /// The periodic check: the session must still be live (ended, expired
    /// or its user revoked, on any instance, closes the socket), then what
    /// the user may read is read again. `active`: the client sent frames
    /// since the last check, which counts as activity for the idle limit.
    pub(super) async fn recheck(&mut self, active: bool) -> Result<(), Close> {
        let store = &self.state.store;
        let live = if self.session_id == TEST_SESSION {
            store.user_active(self.user.id).await?
        } else {
            let idle = i64::try_from(SESSION_IDLE.as_millis()).unwrap_or(i64::MAX);
            store.session_live(&self.session_id, idle, active.then_some(TOUCH_INTERVAL_MS)).await?
        };
        if !live {
            return Err(closed(EndReason::Expired));
        }
        self.refresh_access().await
    }

    /// For a document this user may not read: a `change-rejected` naming
    /// consent (and an audit row) if the patient withdrew the consent under
    /// which they read it and the message brings changes the server lacks,
    /// either as changes or as heads it does not know (a replica's first
    /// message after reconnecting carries heads only). Otherwise `None`,
    /// and the caller answers `doc-unavailable` as for any unknown id.
    pub(super) async fn consent_withdrawn(
        &self,
        hub: &Hub,
        document_id: &str,
        data: &[u8],
    ) -> Result<Option<WireMessage>, Close> {
        // Bounded before it is parsed, like every client message; one out
        // of bounds is answered as unavailable.
        if scan_sync_message(data).is_err() {
            return Ok(None);
        }
        let (Ok(id), Ok(message)) = (decode_doc_id(document_id), sync::Message::decode(data)) else { return Ok(None) };
        if message.changes.is_empty() && message.heads.is_empty() {
            return Ok(None);
        }
        let Some(document) = self.state.store.withdrawn_document(&self.user, id).await? else { return Ok(None) };
        if message.changes.is_empty() {
            let guard = hub.lock(id).await?;
            let Some(canonical) = guard.as_ref() else { return Ok(None) };
            if message.heads.iter().all(|head| canonical.doc().get_change_by_hash(head).is_some()) {
                return Ok(None);
            }
        }
        tracing::warn!(user = %self.user.id, doc = %id, rule = CONSENT_RULE, "sync: change refused");
        let event = AuditEvent {
            user: Some(self.user.id),
            session: Some(&self.session_id),
            action: "change_refused",
            patient: Some(document.kind.patient()),
            doc: Some(id),
            detail: "rule consent: the patient withdrew this clinic's access",
        };
        self.state.store.audit(&event).await?;
        Ok(Some(WireMessage::ChangeRejected {
            sender_id: hub.peer_id().to_owned(),
            target_id: self.peer_id.clone().unwrap_or_default(),
            document_id: encode_doc_id(id),
            rule: CONSENT_RULE.to_owned(),
            message: CONSENT_WITHDRAWN.to_owned(),
        }))
    }
}
