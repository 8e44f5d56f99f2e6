//! Passkeys through `navigator.credentials`: `vault.js` turns the server's
//! JSON (base64url strings, webauthn-rs) into the browser's bytes and the
//! credential back, and asks the same gesture for the passkey's PRF (which
//! opens this device's copy once the server accepts the passkey,
//! `vault::signed_in`).

use crate::i18n::ts;
use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use crate::json::Json;

#[wasm_bindgen(module = "/src/vault.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn ceremony(create: bool, options: &JsValue) -> Result<JsValue, JsValue>;
}

fn error_text(error: JsValue) -> String {
    let get = |key: &str| Reflect::get(&error, &JsValue::from_str(key)).ok()?.as_string();
    match get("name").unwrap_or_default().as_str() {
        "NotAllowedError" => ts("Sign-in was cancelled or timed out. Try again."),
        "InvalidStateError" => ts("This passkey is already registered on this device."),
        "SecurityError" => ts("Passkeys need a secure address (https or localhost)."),
        _ => get("message").unwrap_or_else(|| ts("The passkey could not be used.")),
    }
}

/// Signs in: an assertion over the server's options.
pub async fn get_assertion(options: Json) -> Result<Json, String> {
    ceremony(false, options.js()).await.map(Json::from).map_err(error_text)
}

/// Registers a new passkey over the server's creation options.
pub async fn create_credential(options: Json) -> Result<Json, String> {
    ceremony(true, options.js()).await.map(Json::from).map_err(error_text)
}
