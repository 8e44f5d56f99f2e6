//! Passkeys through `navigator.credentials`, converting between the server's
//! JSON (base64url strings, webauthn-rs) and the browser's ArrayBuffers.

use js_sys::{Array, ArrayBuffer, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::json::Json;
use crate::logic::{b64url_decode, b64url_encode};

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Replaces the base64url string at `obj[key]` with its bytes.
fn to_bytes(obj: &JsValue, key: &str) {
    if let Some(text) = get(obj, key).as_string()
        && let Some(bytes) = b64url_decode(&text)
    {
        let _ = Reflect::set(obj, &JsValue::from_str(key), &Uint8Array::from(bytes.as_slice()));
    }
}

fn credential_ids(public_key: &JsValue, list: &str) {
    if let Ok(items) = get(public_key, list).dyn_into::<Array>() {
        for item in items.iter() {
            to_bytes(&item, "id");
        }
    }
}

/// The bytes at `obj[key]` as base64url text, or `null`.
fn bytes_of(obj: &JsValue, key: &str) -> JsValue {
    match get(obj, key).dyn_into::<ArrayBuffer>() {
        Ok(buffer) => b64url_encode(&Uint8Array::new(&buffer).to_vec()).into(),
        Err(_) => JsValue::NULL,
    }
}

/// The credential as the server reads it (webauthn-rs's JSON).
fn credential_json(credential: &JsValue, response: &[(&str, JsValue)]) -> Json {
    Json::object(&[
        ("id", get(credential, "id")),
        ("rawId", bytes_of(credential, "rawId")),
        ("type", "public-key".into()),
        ("response", Json::object(response).js().clone()),
        ("extensions", Json::object(&[]).js().clone()),
    ])
}

fn error_text(error: JsValue) -> String {
    let name = get(&error, "name").as_string().unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" => "Sign-in was cancelled or timed out. Try again.".into(),
        "InvalidStateError" => "This passkey is already registered on this device.".into(),
        "SecurityError" => "Passkeys need a secure address (https or localhost).".into(),
        _ => get(&error, "message")
            .as_string()
            .unwrap_or_else(|| "The passkey could not be used.".into()),
    }
}

fn container() -> Result<web_sys::CredentialsContainer, String> {
    web_sys::window()
        .map(|w| w.navigator().credentials())
        .ok_or_else(|| "No browser window.".to_owned())
}

/// Signs in: asks the authenticator for an assertion over the server's
/// options, whose base64url fields are turned into bytes in place.
pub async fn get_assertion(options: Json) -> Result<Json, String> {
    let opts = options.js();
    let public_key = get(opts, "publicKey");
    to_bytes(&public_key, "challenge");
    credential_ids(&public_key, "allowCredentials");
    let promise = container()?.get_with_options(opts.unchecked_ref()).map_err(error_text)?;
    let credential = JsFuture::from(promise).await.map_err(error_text)?;
    if credential.is_null() {
        return Err("No passkey was chosen.".into());
    }
    let response = get(&credential, "response");
    Ok(credential_json(
        &credential,
        &[
            ("authenticatorData", bytes_of(&response, "authenticatorData")),
            ("clientDataJSON", bytes_of(&response, "clientDataJSON")),
            ("signature", bytes_of(&response, "signature")),
            ("userHandle", bytes_of(&response, "userHandle")),
        ],
    ))
}

/// Registers a new passkey over the server's creation options (changed in
/// place like `get_assertion`'s).
pub async fn create_credential(options: Json) -> Result<Json, String> {
    let opts = options.js();
    let public_key = get(opts, "publicKey");
    to_bytes(&public_key, "challenge");
    to_bytes(&get(&public_key, "user"), "id");
    credential_ids(&public_key, "excludeCredentials");
    let promise = container()?.create_with_options(opts.unchecked_ref()).map_err(error_text)?;
    let credential = JsFuture::from(promise).await.map_err(error_text)?;
    let response = get(&credential, "response");
    Ok(credential_json(
        &credential,
        &[
            ("attestationObject", bytes_of(&response, "attestationObject")),
            ("clientDataJSON", bytes_of(&response, "clientDataJSON")),
        ],
    ))
}
