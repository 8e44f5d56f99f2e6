//! The local replicas: every document on this device inside a `SyncClient`,
//! what the server last confirmed of each, incoming sync applied, and local
//! edits checked with the write policy before they are kept.
//!
//! Replicas are not `Send`, so they live in a thread-local `Core`; views
//! read them (through `reads.rs`) after reading the `version` signal, which
//! every change bumps. Signals are never set while the core is borrowed.
//!
//! Frames go out through `sync::send`; `sync` hands incoming frames to
//! `receive` through the function `session` gave it, so `sync` imports
//! nothing from here.

mod unsent;

use crate::i18n::{t, tf};
use std::cell::{Cell, RefCell};

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, ChangeHash, ROOT, ReadDoc};
use leptos::prelude::*;
use shared::policy::Principal;
use shared::record::RecordError;
use shared::schema::Collection;
use shared::sync::{Progress, SyncClient, WireMessage, decode_doc_id};
use shared::{DocId, DocKind, PatientId};

pub use self::unsent::{dismiss_undelivered, undeliverable, unsent};
use crate::persist::{self, Stored};
use crate::state::{Notice, Ui};
use crate::sync;
use shared::api::DocumentInfo;
use shared::vec_map::VecMap;

pub struct Core {
    pub client: SyncClient,
    pub kinds: VecMap<DocId, DocKind>,
    pub principal: Option<Principal>,
    actor: Option<ActorId>,
    /// Per document, the heads the server last confirmed holding (kept
    /// across reloads): what lies beyond them is waiting to be sent.
    confirmed: VecMap<DocId, Vec<ChangeHash>>,
    /// Documents whose copies this device deleted (access ended) that the
    /// server has not yet been told about (kept across reloads).
    removed: Vec<DocId>,
}

thread_local! {
    static CORE: RefCell<Core> = RefCell::new(Core {
        client: SyncClient::new(random_peer_id()),
        kinds: VecMap::new(),
        principal: None,
        actor: None,
        confirmed: VecMap::new(),
        removed: Vec::new(),
    });
    /// The page's signals, given by `session::start`.
    static UI: Cell<Option<Ui>> = const { Cell::new(None) };
    /// Refusals not told yet: a refill answer refused because another
    /// device answered first waits for that answer to arrive (it comes
    /// after the refusal), so the person reads what it was.
    static REFUSED: RefCell<Vec<(DocKind, Automerge, Vec<ChangeHash>)>> = const { RefCell::new(Vec::new()) };
    /// The stored documents and their saved bytes, not loaded yet
    /// (`restore_later`): loaded by the first use of the core.
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// Documents listed and their saved bytes, by id.
type Pending = (Vec<DocumentInfo>, VecMap<String, Vec<u8>>);

pub fn with_core<R>(f: impl FnOnce(&Core) -> R) -> R {
    load_pending();
    CORE.with_borrow(f)
}

pub fn with_core_mut<R>(f: impl FnOnce(&mut Core) -> R) -> R {
    load_pending();
    CORE.with_borrow_mut(f)
}

/// Loads the documents `restore_later` left, if any.
fn load_pending() {
    if let Some((docs, bytes)) = PENDING.take() {
        CORE.with_borrow_mut(|core| track(core, &docs, &bytes));
    }
}

/// Whether every stored document is loaded (none left by `restore_later`).
pub fn loaded() -> bool {
    PENDING.with_borrow(Option::is_none)
}

/// Gives the replicas the page's signals (once, at start).
pub fn init(ui: Ui) {
    UI.set(Some(ui));
}

fn ui() -> Ui {
    UI.get().expect("replicas::init runs at start")
}

fn random_peer_id() -> String {
    // A fresh id per device session, as automerge-repo peers use.
    format!("portal-{}", uuid::Uuid::now_v7().simple())
}

pub fn now() -> String {
    String::from(js_sys::Date::new_0().to_iso_string())
}

/// Tells the views the replicas changed.
pub fn bump() {
    let ui = ui();
    ui.progress.set(progress());
    ui.version.update(|v| *v += 1);
    crate::summary::save_soon(ui);
}

/// Sync progress. Documents synced and total come from the sync client;
/// changes waiting are counted against the heads the server last confirmed,
/// so they stay right while offline and across reloads (the client's own
/// count starts afresh with every connection).
pub fn progress() -> Progress {
    with_core(|core| {
        let mut progress = core.client.progress();
        progress.pending_changes = core.client.ids().map(|id| waiting(core, id)).sum();
        progress
    })
}

/// How many of a document's changes the server has not confirmed: those
/// beyond the heads it last confirmed, or, if it never confirmed any this
/// device still has, this session's own. Counted from the changes'
/// metadata: building the changes themselves re-encodes each one, which on
/// a long record took 75 ms of every reload and of every sync message.
fn waiting(core: &Core, id: DocId) -> usize {
    let Some(doc) = core.client.doc(id).filter(|_| !core.client.is_synced(id)) else {
        return 0;
    };
    match core.confirmed.get(&id) {
        Some(heads) if *heads == doc.get_heads() => 0,
        Some(heads) if heads.iter().all(|h| doc.get_change_meta_by_hash(h).is_some()) => {
            doc.get_changes_meta(heads).len()
        }
        _ => core
            .actor
            .as_ref()
            .map_or(0, |a| doc.get_changes_meta(&[]).iter().filter(|c| *c.actor == *a).count()),
    }
}

/// Records the heads of every document the server has confirmed.
fn note_confirmed() {
    let changed = with_core_mut(|core| {
        let mut changed = false;
        let ids: Vec<DocId> = core.client.ids().filter(|id| core.client.is_synced(*id)).collect();
        for id in ids {
            let heads = core.client.doc(id).expect("tracked").get_heads();
            if core.confirmed.get(&id) != Some(&heads) {
                core.confirmed.insert(id, heads);
                changed = true;
            }
        }
        changed.then(|| core.confirmed.clone())
    });
    if let Some(confirmed) = changed {
        persist::save_confirmed(&confirmed);
    }
}

/// Whether the server holds this entry: its document is synced, or the
/// entry was already in the document when the server last confirmed it.
pub fn entry_confirmed(doc: DocId, collection: Collection, entry: &str) -> bool {
    with_core(|core| {
        if core.client.is_synced(doc) {
            return true;
        }
        let (Some(heads), Some(d)) = (core.confirmed.get(&doc), core.client.doc(doc)) else {
            return false;
        };
        if !heads.iter().all(|h| d.get_change_by_hash(h).is_some()) {
            return false;
        }
        let Some((_, coll)) = d.get_at(ROOT, collection.code(), heads).ok().flatten() else {
            return false;
        };
        d.get_at(&coll, entry, heads).ok().flatten().is_some()
    })
}

fn load_doc(bytes: Option<&[u8]>, actor: Option<&ActorId>) -> Automerge {
    let mut doc = bytes.and_then(|b| Automerge::load(b).ok()).unwrap_or_default();
    if let Some(actor) = actor {
        doc.set_actor(actor.clone());
    }
    doc
}

/// Tracks the listed documents (loading stored bytes where there are any).
fn track(core: &mut Core, docs: &[DocumentInfo], stored: &VecMap<String, Vec<u8>>) {
    for info in docs {
        core.kinds.insert(info.id, info.kind);
        if !core.client.contains(info.id) {
            let doc =
                load_doc(stored.get(&info.id.to_string()).map(Vec::as_slice), core.actor.as_ref());
            core.client.insert(info.id, doc);
            if let Some(heads) = core.confirmed.get(&info.id) {
                core.client.held_by_server(info.id, heads);
            }
        }
    }
}

/// Stops syncing documents the user may no longer read (access taken
/// away) that hold nothing unsent. One with changes the server has not
/// confirmed stays until the server refuses them by name
/// (`undeliverable`), so nothing written is dropped silently; so do the
/// other documents of its patient, to name whose record it was.
fn untrack_settled(core: &mut Core, docs: &[DocumentInfo]) -> Vec<DocId> {
    let settled = |id: &DocId| {
        let heads = core.client.doc(*id).map(Automerge::get_heads).unwrap_or_default();
        heads.is_empty() || core.confirmed.get(id) == Some(&heads)
    };
    let unlisted: Vec<DocId> =
        core.client.ids().filter(|id| !docs.iter().any(|d| d.id == *id)).collect();
    let waiting: Vec<PatientId> = unlisted
        .iter()
        .filter(|id| !settled(id))
        .filter_map(|id| Some(core.kinds.get(id)?.patient()))
        .collect();
    let gone: Vec<DocId> = unlisted
        .into_iter()
        .filter(|id| {
            settled(id) && !core.kinds.get(id).is_some_and(|k| waiting.contains(&k.patient()))
        })
        .collect();
    for id in &gone {
        core.client.remove(*id);
        core.kinds.remove(id);
        core.confirmed.remove(id);
    }
    gone
}

/// Who edits on this device: the write policy's principal and the
/// session's actor id, which every document writes with from now on.
pub fn sign_in(principal: Option<Principal>, actor: Option<ActorId>) {
    with_core_mut(|core| {
        core.principal = principal;
        core.actor = actor;
    });
    let ids: Vec<DocId> = with_core(|core| core.client.ids().collect());
    reset_actors(&ids);
}

/// Takes up what a previous visit stored: the confirmed heads, and the
/// listed documents when someone was signed in. Those load at the core's
/// first use, not here: years of results take a few hundred milliseconds
/// to load, and the first screen can show without them (`summary`).
pub fn restore_later(stored: &mut Stored) {
    with_core_mut(|core| {
        core.confirmed = std::mem::take(&mut stored.confirmed);
        core.removed = std::mem::take(&mut stored.removed);
    });
    if stored.me.is_some() {
        PENDING.set(Some((stored.docs.clone(), std::mem::take(&mut stored.bytes))));
    }
}

/// Syncs exactly the listed documents: those the user may read now, or,
/// for clinic staff, the offline set (`session::keep`). Those no longer
/// listed leave the device unless they still hold unsent changes.
pub fn list(docs: &[DocumentInfo]) {
    let gone = with_core_mut(|core| {
        track(core, docs, &VecMap::new());
        untrack_settled(core, docs)
    });
    remove_copies(gone);
    // Documents new to the list are asked for at once on an open socket.
    flush();
}

/// Deletes this device's copies of documents the user may no longer read,
/// noting them for the server (`removals_owed`), which records in the
/// patient's access log that they are gone.
fn remove_copies(gone: Vec<DocId>) {
    if gone.is_empty() {
        return;
    }
    let owed = with_core_mut(|core| {
        core.removed.extend(&gone);
        core.removed.sort();
        core.removed.dedup();
        core.removed.clone()
    });
    persist::save_removed(&owed);
    persist::forget_docs(gone);
}

/// Copies removed that the server has not been told about.
pub fn removals_owed() -> Vec<DocId> {
    with_core(|core| core.removed.clone())
}

/// The server was told about these removals.
pub fn removals_reported(docs: &[DocId]) {
    let owed = with_core_mut(|core| {
        core.removed.retain(|id| !docs.contains(id));
        core.removed.clone()
    });
    persist::save_removed(&owed);
}

/// Forgets every replica in memory (a new peer id too); the stored copy is
/// the caller's to clear.
pub fn forget_all() {
    PENDING.take();
    with_core_mut(|core| {
        core.client = SyncClient::new(random_peer_id());
        core.kinds.clear();
        core.principal = None;
        core.actor = None;
        core.confirmed.clear();
        core.removed.clear();
    });
}

/// The first message on a new connection (sync states start afresh).
pub fn join() -> WireMessage {
    with_core_mut(|c| c.client.connect())
}

/// Sends whatever local changes the server has not seen (after an edit).
fn flush() {
    let outgoing = with_core_mut(|c| c.client.outgoing());
    sync::send(&outgoing);
}

/// Applies one frame from the server, answers it, and stores what changed.
pub fn receive(frame: &[u8]) {
    let ui = ui();
    let message = match WireMessage::decode(frame) {
        Ok(message) => message,
        Err(e) => {
            ui.notice.set(Some(Notice::Unreadable(e.to_string())));
            return;
        }
    };
    // Documents not held here may be this user's now (a patient outside
    // a staff device's offline set sent the clinic work): list again.
    if matches!(message, WireMessage::ListChanged) {
        sync::relist();
        return;
    }
    // Refused because the patient withdrew consent: never deliverable, so
    // the record leaves this device and what was not delivered is listed.
    if let WireMessage::ChangeRejected { document_id, rule, .. } = &message
        && let (Ok(id), "consent") = (decode_doc_id(document_id), rule.as_str())
    {
        undeliverable(id);
        return;
    }
    // A refused document goes back to what the server holds (see
    // `SyncClient`); the copy from before says what was not saved.
    let before = match &message {
        WireMessage::ChangeRejected { document_id, .. } => decode_doc_id(document_id)
            .ok()
            .and_then(|id| with_core(|core| core.client.doc(id).cloned())),
        _ => None,
    };
    let result = with_core_mut(|core| core.client.receive(message));
    let received = match result {
        Ok(received) => received,
        Err(e) => {
            ui.notice.set(Some(Notice::SyncError(e.to_string())));
            return;
        }
    };
    sync::send(&received.outgoing);
    // Documents the server does not have yet: start them from their
    // deterministic genesis so this device can write the first entry.
    // One this device holds that is unavailable now: access to it ended,
    // so the session lists what is readable (and removes the rest).
    let mut fresh = Vec::new();
    let ended = with_core_mut(|core| {
        let mut ended = false;
        for id in &received.unavailable {
            let Some(kind) = core.kinds.get(id).copied() else { continue };
            match core.client.doc(*id).map(|d| d.get_heads().is_empty()) {
                Some(true) => {
                    core.client.insert(*id, kind.genesis());
                    fresh.push(*id);
                }
                Some(false) => ended = true,
                None => {}
            }
        }
        ended
    });
    if ended {
        sync::relist();
    }
    if !fresh.is_empty() {
        reset_actors(&fresh);
        flush();
    }
    // The server's explanation names a rule and a path: it is in the
    // server's log and audit trail; the person gets plain words.
    if let (Some(before), Some((id, _))) = (before, received.rejected.first()) {
        reset_actors(&[*id]);
        let kept = with_core_mut(|core| {
            // What the document went back to the server holds: nothing of
            // it is waiting any more.
            let kept = core.client.doc(*id)?.get_heads();
            if !kept.is_empty() {
                core.confirmed.insert(*id, kept.clone());
            }
            Some((*core.kinds.get(id)?, kept))
        });
        persist::save_confirmed(&with_core(|core| core.confirmed.clone()));
        // A refusal of changes already dropped (a second one, for a message
        // that was in flight) drops nothing more and says nothing new;
        // refusals of several documents are listed together.
        if let Some((kind, kept)) = kept.filter(|(_, kept)| *kept != before.get_heads()) {
            REFUSED.with_borrow_mut(|r| r.push((kind, before, kept)));
        }
    }
    for id in received.changed.iter().chain(&fresh) {
        save(*id);
    }
    note_confirmed();
    let progress = progress();
    // Told once what the other device did has arrived, or once in sync
    // (then in words that do not guess).
    let settled = progress.synced == progress.total;
    let told: Vec<_> = REFUSED.with_borrow_mut(|waiting| {
        let mut told = Vec::new();
        waiting.retain(|(kind, before, kept)| {
            match unsent::refused(*kind, before, kept, settled) {
                Some(refusals) => {
                    told.extend(refusals);
                    false
                }
                None => true,
            }
        });
        told
    });
    if !told.is_empty() {
        ui.notice.update(|notice| match notice {
            Some(Notice::Refused(list)) => list.extend(told),
            _ => *notice = Some(Notice::Refused(told)),
        });
    }
    if progress.total > 0 && progress.synced == progress.total && progress.pending_changes == 0 {
        let at = now();
        persist::save_last_synced(&at);
        ui.last_synced.set(Some(at));
    }
    bump();
}

/// Writes a document's saved bytes to this device's storage.
fn save(id: DocId) {
    if let Some(bytes) = with_core(|c| Some(c.client.doc(id)?.save())) {
        persist::save_doc(ui(), id, bytes);
    }
}

/// Gives documents that were replaced (reset or started from genesis) this
/// session's actor id again.
fn reset_actors(ids: &[DocId]) {
    with_core_mut(|core| {
        let Some(actor) = core.actor.clone() else { return };
        for id in ids {
            if let Some(doc) = core.client.doc_mut(*id) {
                doc.set_actor(actor.clone());
            }
        }
    });
}

/// Applies a local edit: runs `f` in one Automerge transaction, checks the
/// result with the write policy (the same check the server makes), keeps and
/// sends it if allowed, and otherwise puts the document back as it was.
pub fn edit(
    id: DocId,
    f: impl FnOnce(&mut Transaction<'_>, &Principal, &str) -> Result<(), RecordError>,
) -> Result<(), String> {
    let mut f = Some(f);
    edit_with(id, &mut |tx, who, at| f.take().map_or(Ok(()), |f| f(tx, who, at)))
}

/// [`edit`]'s body, compiled once: inlined into each of its callers it
/// cost the bundle a copy per form.
#[inline(never)]
fn edit_with(
    id: DocId,
    f: &mut dyn FnMut(&mut Transaction<'_>, &Principal, &str) -> Result<(), RecordError>,
) -> Result<(), String> {
    let at = now();
    let result = with_core_mut(|core| {
        let principal = core.principal.clone().ok_or(t("Sign in to make changes."))?;
        let kind = *core.kinds.get(&id).ok_or(t("This record is not on this device."))?;
        let doc = core.client.doc_mut(id).ok_or(t("This record is not on this device."))?;
        if doc.get_heads().is_empty() {
            return Err(t(
                "This record has not been downloaded yet. Try again once it has synced.",
            )
            .to_owned());
        }
        let saved = doc.clone();
        // A provider's edit of a thread made before work items existed adds
        // their collection first (the same change on every device).
        if matches!(principal.role, shared::Role::Provider { .. }) {
            kind.add_tasks_collection(doc);
        }
        let mut tx = doc.transaction();
        if let Err(e) = f(&mut tx, &principal, &at) {
            tx.rollback();
            *doc = saved;
            // In the person's words; Automerge's are for developers.
            return Err(match e {
                RecordError::NoEntry => {
                    t("The change could not be made: that entry is not on this device.")
                }
                _ => t("The change could not be made on this device's copy of the record."),
            }
            .into());
        }
        tx.commit_with(CommitOptions::default().with_time(js_sys::Date::now() as i64));
        if let Err(denial) = shared::check_edit(&saved, doc, &kind, &principal) {
            // Undo: back to the copy from before the change.
            *doc = saved;
            return Err(tf(
                "Not saved: {0} (rule {1}, at /{2})",
                &[&t(denial.rule.explanation()), &denial.rule.code(), &denial.path],
            ));
        }
        Ok(())
    });
    if result.is_ok() {
        save(id);
        flush();
        bump();
    }
    result
}
