//! This device's sealed store: IndexedDB and WebCrypto in `vault.js`,
//! which holds the data key and says how it is kept (its header comment);
//! `persist` reads and writes through it; the passkey ceremonies
//! (`webauthn`, also in `vault.js`) ask for the PRF output, which
//! `signed_in` uses once the server accepted the passkey.
//!
//! The key hierarchy and what an attacker reads: docs/security.md.

use crate::i18n::{n, t};
use js_sys::Promise;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/vault.js")]
extern "C" {
    /// Opens the database: 1 if the copy is sealed under a passkey.
    #[wasm_bindgen(catch)]
    pub async fn open() -> Result<JsValue, JsValue>;
    /// Everything stored, opened: `{kv: {name: text}, docs: [[id, bytes]]}`.
    #[wasm_bindgen(catch)]
    pub async fn read() -> Result<JsValue, JsValue>;
    /// Seals and stores a value (a promise of whether it was stored).
    pub fn put(doc: bool, name: &str, bytes: &[u8]) -> Promise;
    pub fn remove(name: &str) -> Promise;
    /// A small plain value (no patient data) that outlives the copy: reads
    /// it (`None`) or writes it.
    pub fn flag(name: &str, value: Option<String>) -> Promise;
    pub async fn clear();
    /// Opens a sealed copy with the passkey just used, or makes this
    /// device's key, or wraps it for this passkey too; fails if the
    /// passkey cannot open the sealed copy.
    #[wasm_bindgen(js_name = signedIn, catch)]
    async fn signed_in_js() -> Result<JsValue, JsValue>;
    /// A new key where the copy was cleared while someone stays signed in.
    #[wasm_bindgen(js_name = makeKey)]
    pub async fn make_key();
    #[wasm_bindgen(js_name = protectedByPasskey)]
    pub fn protected_by_passkey() -> bool;
    /// The passkey alone, without the server, opens the sealed copy.
    #[wasm_bindgen(js_name = unlock, catch)]
    async fn unlock_js() -> Result<JsValue, JsValue>;
}

const CANNOT_OPEN: &str = n("This passkey cannot open the copy of the record on this device.");

pub async fn signed_in() -> Result<(), String> {
    signed_in_js().await.map(|_| ()).map_err(|_| t(CANNOT_OPEN).into())
}

pub async fn unlock() -> Result<(), String> {
    unlock_js().await.map(|_| ()).map_err(|_| t(CANNOT_OPEN).into())
}
