//! Passkeys through `navigator.credentials`, converting between the server's
//! JSON (base64url strings, webauthn-rs) and the browser's ArrayBuffers.

use js_sys::{Array, ArrayBuffer, Reflect, Uint8Array};
use serde_json::{Value, json};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::logic::{b64url_decode, b64url_encode};

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Replaces the base64url string at `obj[key]` with its bytes.
fn to_bytes(obj: &JsValue, key: &str) {
    if let Some(text) = get(obj, key).as_string() {
        if let Some(bytes) = b64url_decode(&text) {
            let _ = Reflect::set(obj, &JsValue::from_str(key), &Uint8Array::from(bytes.as_slice()));
        }
    }
}

fn credential_ids(public_key: &JsValue, list: &str) {
    if let Ok(items) = get(public_key, list).dyn_into::<Array>() {
        for item in items.iter() {
            to_bytes(&item, "id");
        }
    }
}

fn bytes_of(obj: &JsValue, key: &str) -> Value {
    let value = get(obj, key);
    if value.is_null() || value.is_undefined() {
        return Value::Null;
    }
    match value.dyn_into::<ArrayBuffer>() {
        Ok(buffer) => Value::String(b64url_encode(&Uint8Array::new(&buffer).to_vec())),
        Err(_) => Value::Null,
    }
}

fn options(server: &Value) -> Result<JsValue, String> {
    js_sys::JSON::parse(&server.to_string()).map_err(|_| "The sign-in options were not understood.".to_owned())
}

fn error_text(error: JsValue) -> String {
    let name = get(&error, "name").as_string().unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" => "Sign-in was cancelled or timed out. Try again.".into(),
        "InvalidStateError" => "This passkey is already registered on this device.".into(),
        "SecurityError" => "Passkeys need a secure address (https or localhost).".into(),
        _ => get(&error, "message").as_string().unwrap_or_else(|| "The passkey could not be used.".into()),
    }
}

fn container() -> Result<web_sys::CredentialsContainer, String> {
    web_sys::window().map(|w| w.navigator().credentials()).ok_or_else(|| "No browser window.".to_owned())
}

/// Signs in: asks the authenticator for an assertion over the server's options.
pub async fn get_assertion(server: &Value) -> Result<Value, String> {
    let opts = options(server)?;
    let public_key = get(&opts, "publicKey");
    to_bytes(&public_key, "challenge");
    credential_ids(&public_key, "allowCredentials");
    let promise = container()?.get_with_options(opts.unchecked_ref()).map_err(error_text)?;
    let credential = JsFuture::from(promise).await.map_err(error_text)?;
    if credential.is_null() {
        return Err("No passkey was chosen.".into());
    }
    let response = get(&credential, "response");
    Ok(json!({
        "id": get(&credential, "id").as_string(),
        "rawId": bytes_of(&credential, "rawId"),
        "type": "public-key",
        "response": {
            "authenticatorData": bytes_of(&response, "authenticatorData"),
            "clientDataJSON": bytes_of(&response, "clientDataJSON"),
            "signature": bytes_of(&response, "signature"),
            "userHandle": bytes_of(&response, "userHandle"),
        },
        "extensions": {},
    }))
}

/// Registers a new passkey over the server's creation options.
pub async fn create_credential(server: &Value) -> Result<Value, String> {
    let opts = options(server)?;
    let public_key = get(&opts, "publicKey");
    to_bytes(&public_key, "challenge");
    to_bytes(&get(&public_key, "user"), "id");
    credential_ids(&public_key, "excludeCredentials");
    let promise = container()?.create_with_options(opts.unchecked_ref()).map_err(error_text)?;
    let credential = JsFuture::from(promise).await.map_err(error_text)?;
    let response = get(&credential, "response");
    Ok(json!({
        "id": get(&credential, "id").as_string(),
        "rawId": bytes_of(&credential, "rawId"),
        "type": "public-key",
        "response": {
            "attestationObject": bytes_of(&response, "attestationObject"),
            "clientDataJSON": bytes_of(&response, "clientDataJSON"),
        },
        "extensions": {},
    }))
}
