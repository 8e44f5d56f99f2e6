//! This device's copy in IndexedDB (through `idb.rs`): each document's
//! saved bytes, and small JSON values under `kv` keys (`me`, `documents`,
//! `confirmed`, `undelivered`, `last_synced`, `downloads`). Writes are spawned and not
//! awaited: the replicas in memory are the truth, these are what the next
//! start reads. Knows nothing of replicas or sync: callers pass bytes and
//! values.

use std::cell::RefCell;
use std::collections::BTreeMap;

use automerge::ChangeHash;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::DocId;
use wasm_bindgen::JsValue;
use web_sys::IdbDatabase;

use crate::idb;
use crate::json::Json;
use crate::state::{Notice, Ui};
use shared::api::{Decode, DocumentInfo, Encode, Me};

thread_local! {
    /// Open once the stored copy has been read (`load`); writes before then
    /// (there are none) or without IndexedDB are dropped.
    static DB: RefCell<Option<IdbDatabase>> = const { RefCell::new(None) };
}

/// What a previous visit left on this device.
#[derive(Default)]
pub struct Stored {
    pub me: Option<Me>,
    pub docs: Vec<DocumentInfo>,
    pub last_synced: Option<String>,
    /// Per document, the heads the server last confirmed holding.
    pub confirmed: BTreeMap<DocId, Vec<ChangeHash>>,
    pub undelivered: Vec<String>,
    /// Documents whose copies were deleted (access ended) that the server
    /// has not yet been told about.
    pub removed: Vec<DocId>,
    /// Signed out offline, the server not yet told.
    pub logout_owed: bool,
    /// Download times (ms) not yet reported to the server (`download.rs`).
    pub downloads: Vec<f64>,
    /// Each document's saved bytes, by id (read only when someone was
    /// signed in).
    pub bytes: BTreeMap<String, Vec<u8>>,
}

/// Opens IndexedDB and reads everything stored; from then on writes go to it.
pub async fn load() -> Stored {
    request_persistence();
    let mut stored = Stored::default();
    let Ok(db) = idb::open().await else { return stored };
    let kv = |key: &'static str| {
        let db = db.clone();
        async move { idb::get_kv(&db, key).await.ok().flatten() }
    };
    let parsed = |text: Option<String>| text.and_then(|t| Json::parse(&t));
    stored.me = parsed(kv("me").await).and_then(|j| Me::decode(&j));
    stored.docs = parsed(kv("documents").await)
        .and_then(|j| Vec::<DocumentInfo>::decode(&j))
        .unwrap_or_default();
    stored.last_synced = kv("last_synced").await;
    stored.confirmed = kv("confirmed").await.map(|j| parse_confirmed(&j)).unwrap_or_default();
    stored.undelivered = parsed(kv("undelivered").await)
        .map(|j| j.items().iter().filter_map(|i| i.js().as_string()).collect())
        .unwrap_or_default();
    stored.logout_owed = kv("logout_owed").await.is_some_and(|v| v == "1");
    stored.removed =
        parsed(kv("removed").await).and_then(|j| Vec::<DocId>::decode(&j)).unwrap_or_default();
    stored.downloads = parsed(kv("downloads").await)
        .map(|j| j.items().iter().filter_map(|i| i.js().as_f64()).collect())
        .unwrap_or_default();
    if stored.me.is_some() {
        // Inserted one by one, not collected (see `parse_confirmed`).
        for (id, bytes) in idb::all_docs(&db).await.unwrap_or_default() {
            stored.bytes.insert(id, bytes);
        }
    }
    DB.set(Some(db));
    stored
}

fn db() -> Option<IdbDatabase> {
    DB.with_borrow(Clone::clone)
}

fn save_kv(key: &'static str, json: String) {
    if let Some(db) = db() {
        spawn_local(async move {
            let _ = idb::put_kv(&db, key, &json).await;
        });
    }
}

/// `/api/me` as the server sent it.
pub fn save_me(answer: &Json) {
    save_kv("me", answer.stringify());
}

pub fn save_documents(docs: &[DocumentInfo]) {
    save_kv("documents", docs.to_vec().encode::<Json>().stringify());
}

pub fn save_last_synced(at: &str) {
    save_kv("last_synced", at.to_owned());
}

pub fn save_undelivered(lines: &[String]) {
    save_kv(
        "undelivered",
        Json::array(lines.iter().map(|l| Json::from(JsValue::from(l.as_str())))).stringify(),
    );
}

pub fn save_logout_owed(owed: bool) {
    save_kv("logout_owed", if owed { "1" } else { "0" }.to_owned());
}

pub fn save_removed(docs: &[DocId]) {
    save_kv("removed", docs.to_vec().encode::<Json>().stringify());
}

pub fn save_downloads(times: &[f64]) {
    save_kv(
        "downloads",
        Json::array(times.iter().map(|t| Json::from(JsValue::from(*t)))).stringify(),
    );
}

/// The confirmed heads as `{"<doc id>": ["<change hash>", ...], ...}`.
pub fn save_confirmed(confirmed: &BTreeMap<DocId, Vec<ChangeHash>>) {
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

/// Writes a document's saved bytes; says so if the device cannot.
pub fn save_doc(ui: Ui, id: DocId, bytes: Vec<u8>) {
    let Some(db) = db() else { return };
    spawn_local(async move {
        if idb::put_doc(&db, &id.to_string(), &bytes).await.is_err() {
            ui.notice.set(Some(Notice::StorageFull));
        }
    });
}

/// Deletes documents' stored copies from this device.
pub fn forget_docs(ids: Vec<DocId>) {
    let Some(db) = db().filter(|_| !ids.is_empty()) else { return };
    spawn_local(async move {
        for id in ids {
            let _ = idb::delete_doc(&db, &id.to_string()).await;
        }
    });
}

/// Deletes everything stored on this device.
pub async fn clear() {
    if let Some(db) = db() {
        let _ = idb::clear(&db).await;
    }
}

/// Asks the browser not to evict this origin's storage (Safari may, after
/// a week without a visit).
fn request_persistence() {
    if let Some(window) = web_sys::window()
        && let Ok(storage) = js_sys::Reflect::get(&window.navigator(), &"storage".into())
        && !storage.is_undefined()
    {
        let storage: web_sys::StorageManager = wasm_bindgen::JsCast::unchecked_into(storage);
        let _ = storage.persist();
    }
}
