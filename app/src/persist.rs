//! This device's copy, sealed with the device's data key (`vault`, over
//! IndexedDB): each document's saved bytes (and the first screen's
//! `summary`), and small JSON values by name
//! (`me`, `documents`, `confirmed`, `undelivered`, `removed`, `pins`, `recent`,
//! `downloads`, `last_synced`, `seen_results`). Writes are spawned and not awaited: the replicas in
//! memory are the truth, these are what the next start reads. Knows nothing
//! of replicas or sync: callers pass bytes and values.

use std::cell::{Cell, RefCell};

use automerge::ChangeHash;
use js_sys::{Array, Reflect, Uint8Array};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{DocId, PatientId};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::json::Json;
use crate::state::{Notice, Ui};
use crate::vault;
use shared::api::{Decode, DocumentInfo, Encode, Me};
use shared::vec_map::VecMap;

thread_local! {
    /// Open once `load` has run; without IndexedDB writes are dropped.
    static OPEN: Cell<bool> = const { Cell::new(false) };
    /// The server's answer about the signed-in user, as kept.
    static ME: RefCell<String> = const { RefCell::new(String::new()) };
}

/// What a previous visit left on this device.
#[derive(Default)]
pub struct Stored {
    pub me: Option<Me>,
    pub docs: Vec<DocumentInfo>,
    pub last_synced: Option<String>,
    /// Per document, the heads the server last confirmed holding.
    pub confirmed: VecMap<DocId, Vec<ChangeHash>>,
    pub undelivered: Vec<String>,
    /// Documents whose copies were deleted (access ended) that the server
    /// has not yet been told about.
    pub removed: Vec<DocId>,
    /// Signed out offline, the server not yet told.
    pub logout_owed: bool,
    /// Each document's saved bytes, by id (read only when someone was
    /// signed in).
    pub bytes: VecMap<String, Vec<u8>>,
    /// Download times (ms) not yet reported to the server (`download.rs`).
    pub downloads: Vec<f64>,
    /// A copy is here, sealed under a passkey: nothing was read.
    pub sealed: bool,
    /// Clinic staff: patients pinned, and recently opened.
    pub pins: Vec<PatientId>,
    pub recent: Vec<PatientId>,
    /// When the person last opened Results on this device.
    pub seen_results: String,
}

/// Opens this device's copy and reads it, unless it is sealed under a
/// passkey (then `read` once a sign-in or `vault::unlock` opened it).
pub async fn load() -> Stored {
    let Ok(sealed) = vault::open().await else { return Stored::default() };
    OPEN.set(true);
    let mut stored = if sealed.as_f64() == Some(1.0) {
        Stored { sealed: true, ..Stored::default() }
    } else {
        read().await
    };
    let owed = JsFuture::from(vault::flag(LOGOUT_OWED, None)).await;
    stored.logout_owed = owed.ok().and_then(|v| v.as_string()).is_some_and(|v| v == "1");
    stored
}

/// A sign-out owed to the server outlives the copy (and its key): a plain
/// flag, nothing about anyone.
const LOGOUT_OWED: &str = "logout_owed";

/// Reads everything stored.
pub async fn read() -> Stored {
    let mut stored = Stored::default();
    let Ok(all) = vault::read().await else { return stored };
    let values = Reflect::get(&all, &"kv".into()).unwrap_or(JsValue::UNDEFINED);
    let kv = |key: &str| Reflect::get(&values, &key.into()).ok().and_then(|v| v.as_string());
    let parsed = |text: Option<String>| text.and_then(|t| Json::parse(&t));
    let me = kv("me");
    ME.set(me.clone().unwrap_or_default());
    stored.me = parsed(me).and_then(|j| Me::decode(&j));
    stored.docs =
        parsed(kv("documents")).and_then(|j| Vec::<DocumentInfo>::decode(&j)).unwrap_or_default();
    stored.last_synced = kv("last_synced");
    stored.seen_results = kv(SEEN_RESULTS).unwrap_or_default();
    stored.confirmed = kv("confirmed").map(|j| parse_confirmed(&j)).unwrap_or_default();
    stored.undelivered = parsed(kv("undelivered"))
        .map(|j| j.items().iter().filter_map(|i| i.js().as_string()).collect())
        .unwrap_or_default();
    stored.removed =
        parsed(kv("removed")).and_then(|j| Vec::<DocId>::decode(&j)).unwrap_or_default();
    let patients = |key| parsed(kv(key)).and_then(|j| Vec::<PatientId>::decode(&j));
    stored.pins = patients(PINS).unwrap_or_default();
    stored.recent = patients(RECENT).unwrap_or_default();
    stored.downloads = parsed(kv("downloads"))
        .map(|j| j.items().iter().filter_map(|i| i.js().as_f64()).collect())
        .unwrap_or_default();
    if stored.me.is_some() {
        let docs: Array = Reflect::get(&all, &"docs".into()).unwrap_or_default().unchecked_into();
        // Inserted one by one, not collected (see `parse_confirmed`).
        for pair in docs.iter() {
            let pair: Array = pair.unchecked_into();
            if let Some(id) = pair.get(0).as_string() {
                stored.bytes.insert(id, pair.get(1).unchecked_into::<Uint8Array>().to_vec());
            }
        }
    }
    stored
}

fn save_kv(key: &'static str, json: String) {
    if OPEN.get() {
        let _ = vault::put(false, key, json.as_bytes());
    }
}

/// `/api/me` as the server sent it.
/// Keeps the server's answer about the signed-in user; false when it is
/// the one kept already (nothing changed).
pub fn save_me(answer: &Json) -> bool {
    let text = answer.stringify();
    if ME.with_borrow(|kept| *kept == text) {
        return false;
    }
    ME.set(text.clone());
    save_kv("me", text);
    true
}

pub fn save_documents(docs: &[DocumentInfo]) {
    save_kv("documents", docs.to_vec().encode::<Json>().stringify());
}

pub fn save_last_synced(at: &str) {
    save_kv("last_synced", at.to_owned());
}

const SEEN_RESULTS: &str = "seen_results";

pub fn save_seen_results(at: &str) {
    save_kv(SEEN_RESULTS, at.to_owned());
}

pub fn save_undelivered(lines: &[String]) {
    save_kv(
        "undelivered",
        Json::array(lines.iter().map(|l| Json::from(JsValue::from(l.as_str())))).stringify(),
    );
}

pub fn save_logout_owed(owed: bool) {
    if OPEN.get() {
        let _ = vault::flag(LOGOUT_OWED, Some(if owed { "1" } else { "0" }.to_owned()));
    }
}

pub fn save_removed(docs: &[DocId]) {
    save_kv("removed", docs.to_vec().encode::<Json>().stringify());
}

pub const PINS: &str = "pins";
pub const RECENT: &str = "recent";

/// Clinic staff's pinned (`PINS`) or recently opened (`RECENT`) patients.
pub fn save_patients(key: &'static str, patients: &[PatientId]) {
    save_kv(key, patients.to_vec().encode::<Json>().stringify());
}

pub fn save_downloads(times: &[f64]) {
    save_kv(
        "downloads",
        Json::array(times.iter().map(|t| Json::from(JsValue::from(*t)))).stringify(),
    );
}

/// The confirmed heads as `{"<doc id>": ["<change hash>", ...], ...}`.
pub fn save_confirmed(confirmed: &VecMap<DocId, Vec<ChangeHash>>) {
    let ids: Vec<String> = confirmed.keys().map(DocId::to_string).collect();
    let members: Vec<(&str, JsValue)> = ids
        .iter()
        .zip(confirmed.values())
        .map(|(id, heads)| {
            (
                id.as_str(),
                Json::array(heads.iter().map(|h| Json::from(JsValue::from(h.to_string()))))
                    .js()
                    .clone(),
            )
        })
        .collect();
    save_kv("confirmed", Json::object(&members).stringify());
}

/// Inserted one by one: collecting into a map sorts first, and that sort's
/// copy for this entry type costs the WASM bundle more than half a KiB.
fn parse_confirmed(json: &str) -> VecMap<DocId, Vec<ChangeHash>> {
    let docs = Json::parse(json).map(|j| j.members()).unwrap_or_default();
    let mut confirmed = VecMap::new();
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

/// Writes a document's saved bytes; says so if the device cannot.
pub fn save_doc(ui: Ui, id: DocId, bytes: Vec<u8>) {
    if !OPEN.get() {
        return;
    }
    let stored = vault::put(true, &id.to_string(), &bytes);
    spawn_local(async move {
        if JsFuture::from(stored).await.ok() != Some(JsValue::TRUE) {
            ui.notice.set(Some(Notice::StorageFull));
        }
    });
}

/// Keeps the first screen's summary (`summary`): not a document, and
/// nothing is lost if it cannot be kept, so a failure says nothing.
pub fn save_summary(bytes: Vec<u8>) {
    if OPEN.get() {
        let _ = vault::put(true, crate::summary::NAME, &bytes);
    }
}

/// Deletes documents' stored copies from this device.
pub fn forget_docs(ids: Vec<DocId>) {
    if OPEN.get() {
        for id in ids {
            let _ = vault::remove(&id.to_string());
        }
    }
}

/// Deletes everything stored on this device, the data key included (the
/// next sign-in makes a new one).
pub async fn clear() {
    ME.take();
    if OPEN.get() {
        let _ = vault::clear().await;
    }
}
