//! A connection's session and consent: the socket closes when its session
//! ends (told at once on this instance; found by the instance's periodic
//! check otherwise, `ended::watch_sessions`), and changes for a record whose
//! consent was withdrawn are refused by name.

use shared::api::AuditAction;
use std::sync::Arc;

use automerge::{ReadDoc, sync};
use shared::sync::{WireMessage, decode_doc_id, encode_doc_id, scan_sync_message};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{Close, Connection};
use crate::auth::EndReason;
use crate::auth::SESSION_IDLE;
use crate::storage::AuditEvent;
use crate::sync::TEST_SESSION;
use crate::sync::ended::{CLOSE_SESSION_ENDED, Ended, OpenSocket};
use crate::sync::hub::Hub;

/// The rule named when a change is refused because consent was withdrawn.
pub const CONSENT_RULE: &str = "consent";
/// What the person is told when a change of theirs reaches a record after
/// its patient withdrew their clinic's access.
pub const CONSENT_WITHDRAWN: &str = "Not delivered: the patient has withdrawn your clinic's access to their record, \
                                     so nothing more can be added to it from your clinic (rule consent).";

/// Registers this connection's session with the instance's periodic check
/// (`watch_sessions`); test identities have no session row and are left out.
pub(super) fn register(hub: &Hub, session: &str) -> Option<OpenSocket> {
    (session != TEST_SESSION).then(|| hub.open_sessions().opened(session))
}

fn closed(reason: EndReason) -> Close {
    Close::new(CLOSE_SESSION_ENDED, reason.message())
}

impl Connection {
    /// A broadcast of ended sessions: the close, if this connection's is one.
    /// If some broadcasts were missed (lagged), the session row decides.
    pub(super) async fn session_ended(
        &self,
        end: Result<Arc<Ended>, RecvError>,
    ) -> Result<(), Close> {
        match end {
            Ok(ended) if ended.sessions.contains(&self.session_id) => Err(closed(ended.reason)),
            Err(RecvError::Lagged(_)) if self.session_id != TEST_SESSION => {
                let idle = i64::try_from(SESSION_IDLE.as_millis()).unwrap_or(i64::MAX);
                if self.state.store.session_live(&self.session_id, idle, self.state.now()).await? {
                    Ok(())
                } else {
                    Err(closed(EndReason::Expired))
                }
            }
            Ok(_) | Err(_) => Ok(()),
        }
    }

    /// Whether this connection's session ended while frames were arriving.
    pub(super) fn ended_meanwhile(&self, ended: &mut Receiver<Arc<Ended>>) -> Option<Close> {
        loop {
            match ended.try_recv() {
                Ok(end) => {
                    if end.sessions.contains(&self.session_id) {
                        return Some(closed(end.reason));
                    }
                }
                // Lagged: some endings were missed; be safe and close, the
                // client reconnects if its session is in fact live.
                Err(TryRecvError::Lagged(_)) => return Some(closed(EndReason::Expired)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
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
        let (Ok(id), Ok(message)) = (decode_doc_id(document_id), sync::Message::decode(data))
        else {
            return Ok(None);
        };
        if message.changes.is_empty() && message.heads.is_empty() {
            return Ok(None);
        }
        let Some(document) = self.state.store.withdrawn_document(&self.user, id).await? else {
            return Ok(None);
        };
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
            action: AuditAction::ChangeRefused,
            patient: Some(document.kind.patient()),
            doc: Some(id),
            detail: "rule consent: the patient withdrew this clinic's access",
        };
        self.state.store.audit(&event, self.state.now()).await?;
        Ok(Some(WireMessage::ChangeRejected {
            sender_id: hub.peer_id().to_owned(),
            target_id: self.peer_id.clone().unwrap_or_default(),
            document_id: encode_doc_id(id),
            rule: CONSENT_RULE.to_owned(),
            message: CONSENT_WITHDRAWN.to_owned(),
        }))
    }
}
