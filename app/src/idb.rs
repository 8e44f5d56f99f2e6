//! A small IndexedDB wrapper: one database, two object stores.
//! - `docs`: each document's `Automerge::save()` bytes, keyed by doc id;
//! - `kv`: small JSON values (the /api/me answer, the document list).

use js_sys::{Array, Promise, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransactionMode};

const NAME: &str = "patient-portal";
const DOCS: &str = "docs";
const KV: &str = "kv";

/// Waits for a request's success (its result) or error.
async fn done(request: &IdbRequest) -> Result<JsValue, JsValue> {
    let promise = Promise::new(&mut |resolve, reject| {
        let r = request.clone();
        let ok = Closure::once_into_js(move || {
            let _ = resolve.call1(&JsValue::NULL, &r.result().unwrap_or(JsValue::UNDEFINED));
        });
        let fail = Closure::once_into_js(move || {
            let _ = reject.call1(&JsValue::NULL, &JsValue::from_str("IndexedDB request failed"));
        });
        request.set_onsuccess(Some(ok.unchecked_ref()));
        request.set_onerror(Some(fail.unchecked_ref()));
    });
    JsFuture::from(promise).await
}

pub async fn open() -> Result<IdbDatabase, JsValue> {
    let factory =
        web_sys::window().and_then(|w| w.indexed_db().ok().flatten()).ok_or("no IndexedDB")?;
    let request: IdbOpenDbRequest = factory.open_with_u32(NAME, 1)?;
    let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        let Some(target) = event.target() else { return };
        let request: IdbOpenDbRequest = target.unchecked_into();
        if let Ok(result) = request.result() {
            let db: IdbDatabase = result.unchecked_into();
            let names = db.object_store_names();
            for store in [DOCS, KV] {
                if !names.contains(store) {
                    let _ = db.create_object_store(store);
                }
            }
        }
    });
    request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db = done(&request).await?;
    drop(upgrade);
    Ok(db.unchecked_into())
}

fn store(
    db: &IdbDatabase,
    name: &str,
    mode: IdbTransactionMode,
) -> Result<web_sys::IdbObjectStore, JsValue> {
    db.transaction_with_str_and_mode(name, mode)?.object_store(name)
}

pub async fn put_doc(db: &IdbDatabase, id: &str, bytes: &[u8]) -> Result<(), JsValue> {
    let value = Uint8Array::from(bytes);
    let request = store(db, DOCS, IdbTransactionMode::Readwrite)?
        .put_with_key(&value, &JsValue::from_str(id))?;
    done(&request).await.map(|_| ())
}

pub async fn delete_doc(db: &IdbDatabase, id: &str) -> Result<(), JsValue> {
    let request = store(db, DOCS, IdbTransactionMode::Readwrite)?.delete(&JsValue::from_str(id))?;
    done(&request).await.map(|_| ())
}

/// Every stored document as (id, bytes).
pub async fn all_docs(db: &IdbDatabase) -> Result<Vec<(String, Vec<u8>)>, JsValue> {
    let store = store(db, DOCS, IdbTransactionMode::Readonly)?;
    let keys: Array = done(&store.get_all_keys()?).await?.unchecked_into();
    let values: Array = done(&store.get_all()?).await?.unchecked_into();
    Ok(keys
        .iter()
        .zip(values.iter())
        .filter_map(|(k, v)| Some((k.as_string()?, v.dyn_into::<Uint8Array>().ok()?.to_vec())))
        .collect())
}

pub async fn put_kv(db: &IdbDatabase, key: &str, json: &str) -> Result<(), JsValue> {
    let request = store(db, KV, IdbTransactionMode::Readwrite)?
        .put_with_key(&JsValue::from_str(json), &JsValue::from_str(key))?;
    done(&request).await.map(|_| ())
}

pub async fn get_kv(db: &IdbDatabase, key: &str) -> Result<Option<String>, JsValue> {
    let request = store(db, KV, IdbTransactionMode::Readonly)?.get(&JsValue::from_str(key))?;
    Ok(done(&request).await?.as_string())
}

/// Forgets everything (sign-out on a shared device).
pub async fn clear(db: &IdbDatabase) -> Result<(), JsValue> {
    for name in [DOCS, KV] {
        done(&store(db, name, IdbTransactionMode::Readwrite)?.clear()?).await?;
    }
    Ok(())
}
