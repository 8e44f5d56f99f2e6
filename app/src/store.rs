//! The app's state: the local replicas (inside a `SyncClient`), the signed-in
//! user, and the signals the views read.
//!
//! Replicas and the database handle are not `Send`, so they live in a
//! thread-local `Core`; views read them through `with_core` after reading the
//! `version` signal, which every change bumps. Signals are never set while the
//! core is borrowed.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, ChangeHash, ROOT, ReadDoc};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::policy::{Principal, Role};
use shared::record::RecordError;
use shared::schema::{ClinicalRecord, Demographics, MessageThread, PatientRecord};
use shared::sync::{Progress, SyncClient};
use shared::{ClinicId, DocId, DocKind, PatientId};
use wasm_bindgen::JsValue;
use web_sys::IdbDatabase;

use crate::api::{self, ApiError, Consent, DocInfo, Me};
use crate::json::Json;
use crate::{idb, logic, sync};

pub struct Core {
    pub client: SyncClient,
    pub kinds: BTreeMap<DocId, DocKind>,
    pub me: Option<Me>,
    pub principal: Option<Principal>,
    actor: Option<ActorId>,
    pub db: Option<IdbDatabase>,
    /// Per document, the heads the server last confirmed holding (kept
    /// across reloads): what lies beyond them is waiting to be sent.
    confirmed: BTreeMap<DocId, Vec<ChangeHash>>,
}

thread_local! {
    static CORE: RefCell<Core> = RefCell::new(Core {
        client: SyncClient::new(random_peer_id()),
        kinds: BTreeMap::new(),
        me: None,
        principal: None,
        actor: None,
        db: None,
        confirmed: BTreeMap::new(),
    });
    static UI: Cell<Option<Ui>> = const { Cell::new(None) };
}

pub fn with_core<R>(f: impl FnOnce(&Core) -> R) -> R {
    CORE.with_borrow(f)
}

pub fn with_core_mut<R>(f: impl FnOnce(&mut Core) -> R) -> R {
    CORE.with_borrow_mut(f)
}

/// What the views show, as signals.
#[derive(Clone, Copy)]
pub struct Ui {
    pub me: RwSignal<Option<Me>>,
    pub docs: RwSignal<Vec<DocInfo>>,
    /// Bumped on every change to any replica.
    pub version: RwSignal<u64>,
    pub online: RwSignal<bool>,
    pub connected: RwSignal<bool>,
    pub progress: RwSignal<Progress>,
    pub last_synced: RwSignal<Option<String>>,
    /// Errors that need attention (a refused change, a sync failure).
    pub banner: RwSignal<Option<String>>,
    pub session_expired: RwSignal<bool>,
    /// Local data has been read (or there was none).
    pub started: RwSignal<bool>,
    pub consents: RwSignal<Vec<Consent>>,
    /// Changes the server refused for good because the patient withdrew
    /// consent, described ("Message: ..."), kept until the person dismisses
    /// them so their text is not lost.
    pub undelivered: RwSignal<Vec<String>>,
}

pub fn ui() -> Ui {
    UI.get().expect("ui signals are set up at start")
}

pub fn init_ui() -> Ui {
    let online = web_sys::window().map(|w| w.navigator().on_line()).unwrap_or(true);
    let ui = Ui {
        me: RwSignal::new(None),
        docs: RwSignal::new(Vec::new()),
        version: RwSignal::new(0),
        online: RwSignal::new(online),
        connected: RwSignal::new(false),
        progress: RwSignal::new(Progress::default()),
        last_synced: RwSignal::new(None),
        banner: RwSignal::new(None),
        session_expired: RwSignal::new(false),
        started: RwSignal::new(false),
        consents: RwSignal::new(Vec::new()),
        undelivered: RwSignal::new(Vec::new()),
    };
    UI.set(Some(ui));
    ui
}

fn random_peer_id() -> String {
    // A fresh id per device session, as automerge-repo peers use.
    format!("portal-{}", uuid::Uuid::now_v7().simple())
}

pub fn now() -> String {
    String::from(js_sys::Date::new_0().to_iso_string())
}

pub fn bump() {
    let ui = ui();
    ui.progress.set(progress());
    ui.version.update(|v| *v += 1);
}

/// Sync progress. Documents synced and total come from the sync client;
/// changes waiting are counted against the heads the server last confirmed,
/// so they stay right while offline and across reloads (the client's own
/// count starts afresh with every connection).
pub fn progress() -> Progress {
    with_core(|core| {
        let mut progress = core.client.progress();
        progress.pending_changes = core
            .client
            .ids()
            .filter(|id| !core.client.is_synced(*id))
            .map(|id| {
                let doc = core.client.doc(id).expect("tracked");
                match core.confirmed.get(&id) {
                    Some(heads) if heads.iter().all(|h| doc.get_change_by_hash(h).is_some()) => {
                        doc.get_changes(heads).len()
                    }
                    // Never confirmed: count this session's own changes.
                    _ => core.actor.as_ref().map_or(0, |a| {
                        doc.get_changes(&[]).iter().filter(|c| c.actor_id() == a).count()
                    }),
                }
            })
            .sum();
        progress
    })
}

/// Records the heads of every document the server has confirmed.
pub fn note_confirmed() {
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
        changed.then(|| confirmed_json(core))
    });
    if let Some(json) = changed {
        save_kv("confirmed", &json);
    }
}

/// The confirmed heads as `{"<doc id>": ["<change hash>", ...], ...}`.
fn confirmed_json(core: &Core) -> String {
    let ids: Vec<String> = core.confirmed.keys().map(DocId::to_string).collect();
    let members: Vec<(&str, JsValue)> = ids
        .iter()
        .zip(core.confirmed.values())
        .map(|(id, heads)| {
            (
                id.as_str(),
                Json::array(heads.iter().map(|h| Json::from(JsValue::from(h.to_string()))))
                    .js()
                    .clone(),
            )
        })
        .collect();
    Json::object(&members).stringify()
}

/// Inserted one by one: collecting into a map sorts first, and that sort's
/// copy for this entry type costs the WASM bundle more than half a KiB.
fn parse_confirmed(json: &str) -> BTreeMap<DocId, Vec<ChangeHash>> {
    let docs = Json::parse(json).map(|j| j.members()).unwrap_or_default();
    let mut confirmed = BTreeMap::new();
    for (id, heads) in docs {
        let heads = heads
            .items()
            .iter()
            .map(|h| h.js().as_string()?.parse().ok())
            .collect::<Option<Vec<_>>>();
        if let (Ok(id), Some(heads)) = (id.parse(), heads) {
            confirmed.insert(id, heads);
        }
    }
    confirmed
}

/// Whether the server holds this entry: its document is synced, or the
/// entry was already in the document when the server last confirmed it.
pub fn entry_confirmed(doc: DocId, collection: &str, entry: &str) -> bool {
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
        let Some((_, coll)) = d.get_at(ROOT, collection, heads).ok().flatten() else {
            return false;
        };
        d.get_at(&coll, entry, heads).ok().flatten().is_some()
    })
}

fn principal_of(me: &Me) -> Option<Principal> {
    let clinics: Vec<ClinicId> = me.clinics.iter().map(|c| c.id).collect();
    let role = match me.role.as_str() {
        "patient" => Role::Patient { patient: me.patient_id? },
        "caregiver" => Role::Caregiver { patient: me.patient_id?, may_message: me.may_message },
        "provider" => Role::Provider { clinics },
        "admin" => Role::ClinicAdmin { clinic: *clinics.first()? },
        _ => return None,
    };
    let clinic_names = me.clinics.iter().map(|c| (c.id, c.name.clone())).collect();
    Some(Principal { user: me.user_id, role, name: me.display_name.clone(), clinic_names })
}

fn load_doc(bytes: Option<&[u8]>, actor: Option<&ActorId>) -> Automerge {
    let mut doc = bytes.and_then(|b| Automerge::load(b).ok()).unwrap_or_default();
    if let Some(actor) = actor {
        doc.set_actor(actor.clone());
    }
    doc
}

/// Tracks the listed documents (loading stored bytes where there are any).
fn track(core: &mut Core, docs: &[DocInfo], stored: &BTreeMap<String, Vec<u8>>) {
    for info in docs {
        core.kinds.insert(info.id, info.kind);
        if !core.client.contains(info.id) {
            let doc =
                load_doc(stored.get(&info.id.to_string()).map(Vec::as_slice), core.actor.as_ref());
            core.client.insert(info.id, doc);
        }
    }
}

/// Stops syncing documents the user may no longer read (access taken
/// away) that hold nothing unsent. One with changes the server has not
/// confirmed stays until the server refuses them by name
/// (`undeliverable`), so nothing written is dropped silently; so do the
/// other documents of its patient, to name whose record it was.
fn untrack_settled(core: &mut Core, docs: &[DocInfo]) -> Vec<DocId> {
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

/// Deletes documents' stored copies from this device.
fn forget_docs(ids: Vec<DocId>) {
    let Some(db) = with_core(|c| c.db.clone()).filter(|_| !ids.is_empty()) else { return };
    spawn_local(async move {
        for id in ids {
            let _ = idb::delete_doc(&db, &id.to_string()).await;
        }
    });
}

fn set_me(core: &mut Core, me: &Me) {
    core.principal = principal_of(me);
    core.actor = logic::hex(&me.actor_id).map(|b| ActorId::from(b.as_slice()));
    if let Some(actor) = &core.actor {
        let ids: Vec<DocId> = core.client.ids().collect();
        for id in ids {
            if let Some(doc) = core.client.doc_mut(id) {
                doc.set_actor(actor.clone());
            }
        }
    }
    core.me = Some(me.clone());
}

/// Opens local storage, shows what is there, then refreshes from the server.
pub async fn start() {
    let ui = ui();
    request_persistence();
    let db = idb::open().await.ok();
    let mut cached_me: Option<Me> = None;
    let mut cached_docs: Vec<DocInfo> = Vec::new();
    if let Some(db) = &db {
        let cached = |text: Option<String>| text.and_then(|t| Json::parse(&t));
        cached_me =
            cached(idb::get_kv(db, "me").await.ok().flatten()).and_then(|j| Me::from_json(&j));
        cached_docs = cached(idb::get_kv(db, "documents").await.ok().flatten())
            .and_then(|j| j.items().iter().map(DocInfo::from_json).collect())
            .unwrap_or_default();
        let last = idb::get_kv(db, "last_synced").await.ok().flatten();
        ui.last_synced.set(last);
        let confirmed = idb::get_kv(db, "confirmed")
            .await
            .ok()
            .flatten()
            .map(|j| parse_confirmed(&j))
            .unwrap_or_default();
        let undelivered =
            idb::get_kv(db, "undelivered").await.ok().flatten().and_then(|t| Json::parse(&t));
        ui.undelivered.set(
            undelivered
                .map(|j| j.items().iter().filter_map(|i| i.js().as_string()).collect())
                .unwrap_or_default(),
        );
        with_core_mut(|core| core.confirmed = confirmed);
        if cached_me.is_some() {
            // Inserted one by one, not collected (see `parse_confirmed`).
            let mut stored = BTreeMap::new();
            for (id, bytes) in idb::all_docs(db).await.unwrap_or_default() {
                stored.insert(id, bytes);
            }
            with_core_mut(|core| {
                set_me(core, cached_me.as_ref().expect("checked"));
                track(core, &cached_docs, &stored);
            });
        }
    }
    with_core_mut(|core| core.db = db);
    if let Some(me) = &cached_me {
        ui.me.set(Some(me.clone()));
        ui.docs.set(cached_docs);
        bump();
    }
    ui.started.set(true);
    refresh().await;
}

/// Fetches the signed-in user and the document list, then syncs. Without a
/// network the local copies stay in use.
pub async fn refresh() {
    let ui = ui();
    match api::me().await {
        Ok(me) => {
            let previous = ui.me.get_untracked();
            if previous.as_ref().is_some_and(|p| p.user_id != me.user_id) {
                forget_local().await;
            }
            ui.session_expired.set(false);
            save_kv("me", &me.to_json().stringify());
            with_core_mut(|core| set_me(core, &me));
            ui.me.set(Some(me));
            match api::documents().await {
                Ok(docs) => {
                    save_kv(
                        "documents",
                        &Json::array(docs.iter().copied().map(DocInfo::to_json)).stringify(),
                    );
                    let gone = with_core_mut(|core| {
                        track(core, &docs, &BTreeMap::new());
                        untrack_settled(core, &docs)
                    });
                    forget_docs(gone);
                    ui.docs.set(docs);
                    bump();
                }
                Err(ApiError::SessionExpired) => ui.session_expired.set(true),
                Err(e) => {
                    ui.banner.set(Some(format!("Could not refresh the list of records: {e}")))
                }
            }
            sync::connect();
        }
        Err(ApiError::SessionExpired) => {
            if ui.me.get_untracked().is_some() {
                ui.session_expired.set(true);
            }
        }
        // Offline, or no API: keep whatever is local.
        Err(_) => {
            if ui.me.get_untracked().is_some() {
                sync::connect();
            }
        }
    }
}

fn save_kv(key: &'static str, json: &str) {
    let json = json.to_owned();
    if let Some(db) = with_core(|c| c.db.clone()) {
        spawn_local(async move {
            let _ = idb::put_kv(&db, key, &json).await;
        });
    }
}

pub fn record_synced() {
    let at = now();
    save_kv("last_synced", &at);
    ui().last_synced.set(Some(at));
}

/// Writes a document's saved bytes to IndexedDB.
pub fn persist(id: DocId) {
    let Some((db, bytes)) = with_core(|c| Some((c.db.clone()?, c.client.doc(id)?.save()))) else {
        return;
    };
    spawn_local(async move {
        if idb::put_doc(&db, &id.to_string(), &bytes).await.is_err() {
            ui().banner.set(Some(
                "This device could not store a change (storage full?). Stay online until it syncs."
                    .into(),
            ));
        }
    });
}

/// Signs out: ends the session and forgets this device's copies. The
/// socket is closed first, so its closing is not taken for an ended session.
pub async fn sign_out() {
    sync::disconnect();
    let _ = api::logout().await;
    forget_local().await;
    let ui = ui();
    ui.me.set(None);
    ui.docs.set(Vec::new());
    ui.session_expired.set(false);
    bump();
}

/// The server refused this document's changes because the patient withdrew
/// consent: it will never take them. The document stops syncing and leaves
/// this device, but what the person wrote in it and the server never
/// confirmed is kept, described, in `Ui::undelivered` (and IndexedDB) until
/// they dismiss it.
pub fn undeliverable(id: DocId) {
    let ui = ui();
    let lines = with_core_mut(|core| {
        // Whose record, from their demographics if this device has them.
        let patient = core.kinds.remove(&id)?.patient();
        let record = core
            .client
            .doc(DocKind::PatientRecord { patient }.doc_id())
            .and_then(hydrate_patient_record);
        let name = record.map(|r| {
            [r.demographics.given, r.demographics.family]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        });
        let confirmed = core.confirmed.remove(&id);
        let doc = core.client.remove(id)?;
        let lines = unconfirmed_entries(&doc, confirmed.as_deref().unwrap_or_default());
        let lines: Vec<String> = match name.filter(|n| !n.is_empty()) {
            Some(name) => {
                lines.into_iter().map(|line| format!("{name}'s record · {line}")).collect()
            }
            None => lines,
        };
        // The patient's other documents, kept to name them, can go now too.
        let gone = untrack_settled(core, &ui.docs.get_untracked());
        Some((lines, gone))
    });
    let Some((lines, gone)) = lines else { return };
    forget_docs(gone);
    ui.docs.update(|docs| docs.retain(|d| d.id != id));
    ui.undelivered.update(|list| list.extend(lines));
    save_kv(
        "documents",
        &Json::array(ui.docs.get_untracked().into_iter().map(DocInfo::to_json)).stringify(),
    );
    save_kv(
        "undelivered",
        &Json::array(
            ui.undelivered.get_untracked().into_iter().map(|l| Json::from(JsValue::from(l))),
        )
        .stringify(),
    );
    let json = with_core(confirmed_json);
    save_kv("confirmed", &json);
    forget_docs(vec![id]);
    bump();
}

/// Forgets the undelivered changes once the person has dealt with them.
pub fn dismiss_undelivered() {
    ui().undelivered.set(Vec::new());
    save_kv("undelivered", "[]");
}

/// Entries in `doc` that were not there at `confirmed` (what the server
/// last confirmed holding), as "Kind: text" in the person's own words.
fn unconfirmed_entries(doc: &Automerge, confirmed: &[ChangeHash]) -> Vec<String> {
    let known =
        !confirmed.is_empty() && confirmed.iter().all(|h| doc.get_change_by_hash(h).is_some());
    let mut lines = Vec::new();
    for collection in doc.keys(ROOT) {
        let Some((automerge::Value::Object(_), coll)) =
            doc.get(ROOT, collection.as_str()).ok().flatten()
        else {
            continue;
        };
        for entry in doc.keys(&coll) {
            let before =
                known && doc.get_at(&coll, entry.as_str(), confirmed).ok().flatten().is_some();
            let Some((automerge::Value::Object(_), obj)) =
                doc.get(&coll, entry.as_str()).ok().flatten().filter(|_| known && !before)
            else {
                continue;
            };
            let text = ["body", "note", "display", "substance", "vaccine", "reason"]
                .iter()
                .find_map(|field| doc.get(&obj, *field).ok().flatten()?.0.into_string().ok())
                .unwrap_or_default();
            lines.push(format!("{}: {text}", logic::collection_label(&collection)));
        }
    }
    if lines.is_empty() {
        lines.push("A change to a record (status or details)".into());
    }
    lines
}

async fn forget_local() {
    let db = with_core_mut(|core| {
        core.client = SyncClient::new(random_peer_id());
        core.kinds.clear();
        core.me = None;
        core.principal = None;
        core.actor = None;
        core.confirmed.clear();
        core.db.clone()
    });
    if let Some(db) = db {
        let _ = idb::clear(&db).await;
    }
}

fn request_persistence() {
    if let Some(window) = web_sys::window()
        && let Ok(storage) = js_sys::Reflect::get(&window.navigator(), &"storage".into())
        && !storage.is_undefined()
    {
        let storage: web_sys::StorageManager = wasm_bindgen::JsCast::unchecked_into(storage);
        let _ = storage.persist();
    }
}

/// Applies a local edit: runs `f` in one Automerge transaction, checks the
/// result with the write policy (the same check the server makes), keeps and
/// sends it if allowed, and otherwise puts the document back as it was.
pub fn edit(
    id: DocId,
    f: impl FnOnce(&mut Transaction<'_>, &Principal, &str) -> Result<(), RecordError>,
) -> Result<(), String> {
    let at = now();
    let result = with_core_mut(|core| {
        let principal = core.principal.clone().ok_or("Sign in to make changes.")?;
        let kind = *core.kinds.get(&id).ok_or("This record is not on this device.")?;
        let doc = core.client.doc_mut(id).ok_or("This record is not on this device.")?;
        if doc.get_heads().is_empty() {
            return Err(
                "This record has not been downloaded yet. Try again once it has synced.".to_owned()
            );
        }
        let saved = doc.clone();
        let mut tx = doc.transaction();
        if let Err(e) = f(&mut tx, &principal, &at) {
            tx.rollback();
            return Err(format!("The change could not be made: {e}"));
        }
        tx.commit_with(CommitOptions::default().with_time(js_sys::Date::now() as i64));
        if let Err(denial) = shared::check_edit(&saved, doc, &kind, &principal) {
            // Undo: back to the copy from before the change.
            *doc = saved;
            return Err(format!("Not saved: {denial}"));
        }
        Ok(())
    });
    if result.is_ok() {
        persist(id);
        sync::flush();
        bump();
    }
    result
}

/// Everything on this device about one patient.
#[derive(Clone, Default)]
pub struct PatientData {
    pub clinical: Vec<(DocId, ClinicId, ClinicalRecord)>,
    pub record: Option<(DocId, PatientRecord)>,
    pub threads: Vec<(DocId, ClinicId, MessageThread)>,
}

impl PatientData {
    pub fn clinic_record(&self, clinic: ClinicId) -> Option<&ClinicalRecord> {
        self.clinical.iter().find(|c| c.1 == clinic).map(|c| &c.2)
    }
}

fn hydrate<T: autosurgeon::Hydrate>(doc: &Automerge) -> Option<T> {
    doc.get(ROOT, "kind").ok().flatten()?;
    shared::read::hydrate(doc).ok()
}

/// A patient record, tolerating demographics that were never filled in (the
/// genesis change creates an empty map, which autosurgeon will not hydrate
/// into `Option` fields).
fn hydrate_patient_record(doc: &Automerge) -> Option<PatientRecord> {
    doc.get(ROOT, "kind").ok().flatten()?;
    let refill_requests = shared::read::hydrate_root_prop(doc, "refill_requests").ok()?;
    let mut demographics = Demographics::default();
    if let Some((_, obj)) = doc.get(ROOT, "demographics").ok().flatten() {
        let field = |key: &str| -> Option<String> {
            match doc.get(&obj, key).ok().flatten()? {
                (automerge::Value::Scalar(s), _) => s.as_str().map(str::to_owned),
                _ => None,
            }
        };
        demographics = Demographics {
            family: field("family"),
            given: field("given"),
            birth_date: field("birth_date"),
            phone: field("phone"),
            email: field("email"),
        };
    }
    Some(PatientRecord { demographics, refill_requests })
}

/// The documents' heads a [`PatientData`] was read at.
type HeadsKey = (PatientId, Vec<(DocId, Vec<ChangeHash>)>);

thread_local! {
    /// The last patient data read, with the heads it was read at: every view
    /// of a page reads the same data, and hydrating a long record (years of
    /// results and messages) costs far more than cloning it.
    static LAST_READ: RefCell<Option<(HeadsKey, PatientData)>> = const { RefCell::new(None) };
}

pub fn patient_data(patient: PatientId) -> PatientData {
    let key: HeadsKey = with_core(|core| {
        let heads = core
            .kinds
            .iter()
            .filter(|(_, kind)| kind.patient() == patient)
            .filter_map(|(id, _)| Some((*id, core.client.doc(*id)?.get_heads())))
            .collect();
        (patient, heads)
    });
    if let Some(data) = LAST_READ
        .with_borrow(|last| last.as_ref().filter(|(k, _)| *k == key).map(|(_, d)| d.clone()))
    {
        return data;
    }
    let data = read_patient_data(patient);
    LAST_READ.set(Some((key, data.clone())));
    data
}

fn read_patient_data(patient: PatientId) -> PatientData {
    with_core(|core| {
        let mut data = PatientData::default();
        for (id, kind) in &core.kinds {
            if kind.patient() != patient {
                continue;
            }
            let Some(doc) = core.client.doc(*id) else { continue };
            match *kind {
                DocKind::ClinicalRecord { clinic, .. } => {
                    if let Some(r) = hydrate(doc) {
                        data.clinical.push((*id, clinic, r));
                    }
                }
                DocKind::PatientRecord { .. } => {
                    data.record = hydrate_patient_record(doc).map(|r| (*id, r))
                }
                DocKind::MessageThread { clinic, .. } => {
                    if let Some(t) = hydrate(doc) {
                        data.threads.push((*id, clinic, t));
                    }
                }
            }
        }
        data
    })
}

/// All values a field holds: more than one when two devices changed it
/// concurrently. Shown side by side for review instead of silently picking one.
pub fn field_values(doc: DocId, collection: &str, entry: &str, field: &str) -> Vec<String> {
    with_core(|core| {
        let Some(doc) = core.client.doc(doc) else { return Vec::new() };
        let Some((_, coll)) = doc.get(ROOT, collection).ok().flatten() else { return Vec::new() };
        let Some((_, obj)) = doc.get(&coll, entry).ok().flatten() else { return Vec::new() };
        doc.get_all(&obj, field)
            .unwrap_or_default()
            .into_iter()
            .map(|(value, _)| match value.into_string().map_err(|v| v.to_string()) {
                Ok(s) | Err(s) => s,
            })
            .collect()
    })
}

/// A clinic's name, from the user's clinics, consents or any entry's provenance.
pub fn clinic_name(clinic: ClinicId, data: Option<&PatientData>) -> String {
    let ui = ui();
    if let Some(c) = ui.me.with_untracked(|m| {
        m.as_ref().and_then(|m| m.clinics.iter().find(|c| c.id == clinic).cloned())
    }) {
        return c.name;
    }
    if let Some(c) =
        ui.consents.with_untracked(|cs| cs.iter().find(|c| c.clinic_id == clinic).cloned())
        && !c.clinic_name.is_empty()
    {
        return c.clinic_name;
    }
    if let Some(data) = data
        && let Some(record) = data.clinic_record(clinic)
    {
        let names = record
            .reports
            .values()
            .map(|r| &r.provenance)
            .chain(record.observations.values().map(|o| &o.provenance))
            .chain(record.prescriptions.values().map(|p| &p.provenance))
            .chain(record.allergies.values().map(|p| &p.provenance))
            .chain(record.appointments.values().map(|p| &p.provenance))
            .chain(record.immunizations.values().map(|p| &p.provenance));
        if let Some(p) = names.into_iter().next() {
            return p.clinic_name.clone();
        }
    }
    "Clinic".into()
}

/// Gives documents that were replaced (reset or started from genesis) this
/// session's actor id again.
pub fn reset_actors(ids: &[DocId]) {
    with_core_mut(|core| {
        let Some(actor) = core.actor.clone() else { return };
        for id in ids {
            if let Some(doc) = core.client.doc_mut(*id) {
                doc.set_actor(actor.clone());
            }
        }
    });
}
