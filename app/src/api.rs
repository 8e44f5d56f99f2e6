//! Every HTTP call the app makes, with the shapes it expects, in one place.
//!
//! Sign-in (passkeys), the signed-in user, the document list, passkeys,
//! consents and the access log. The sync itself is a WebSocket (sync.rs).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{ClinicId, DocId, DocKind, PatientId, UserId};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

/// `GET /api/me`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub user_id: UserId,
    pub display_name: String,
    /// "patient" | "caregiver" | "provider" | "admin".
    pub role: String,
    #[serde(default)]
    pub patient_id: Option<PatientId>,
    #[serde(default)]
    pub clinics: Vec<Clinic>,
    /// 32 hex characters: the Automerge actor id this session writes with.
    pub actor_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Clinic {
    pub id: ClinicId,
    pub name: String,
}

impl Me {
    pub fn is_staff(&self) -> bool {
        matches!(self.role.as_str(), "provider" | "admin")
    }
}

/// One entry of `GET /api/documents`: `{"id", "kind", "patient", "clinic"}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocInfo {
    pub id: DocId,
    #[serde(flatten)]
    pub kind: DocKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// No network (or the server is unreachable).
    Offline,
    /// 401: the session is over; sign in again.
    SessionExpired,
    /// Any other refusal, with the server's message.
    Failed(u16, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Offline => f.write_str("You are offline: this needs the network."),
            Self::SessionExpired => f.write_str("Your session has ended: sign in again."),
            Self::Failed(_, message) => f.write_str(message),
        }
    }
}

async fn call(method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    if let Some(body) = body {
        init.set_body(&wasm_bindgen::JsValue::from_str(&body.to_string()));
    }
    let request = Request::new_with_str_and_init(path, &init).map_err(|_| ApiError::Failed(0, "bad request".into()))?;
    let headers = request.headers();
    let _ = headers.set("Accept", "application/json");
    if body.is_some() {
        let _ = headers.set("Content-Type", "application/json");
    }
    let window = web_sys::window().ok_or(ApiError::Offline)?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| ApiError::Offline)?
        .unchecked_into();
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    let status = response.status();
    // The service worker answers 503 for API calls it cannot reach.
    if status == 503 && text.contains("offline") {
        return Err(ApiError::Offline);
    }
    let json: Option<Value> = if text.is_empty() { Some(Value::Null) } else { serde_json::from_str(&text).ok() };
    // Only a 401 that says so means the session is over; a refused passkey
    // at sign-in is a 401 too, and its message must be shown as it is.
    if status == 401 && json.as_ref().and_then(|j| j.get("error")).is_none_or(|code| code == "session_expired") {
        return Err(ApiError::SessionExpired);
    }
    if !response.ok() {
        let message = json
            .as_ref()
            .and_then(|j| j.get("message").or_else(|| j.get("error")))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("The server answered {status}."));
        return Err(ApiError::Failed(status, message));
    }
    json.ok_or_else(|| ApiError::Failed(status, "The server's answer was not understood.".into()))
}

fn parse<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Failed(0, format!("The server's answer was not understood: {e}")))
}

pub async fn me() -> Result<Me, ApiError> {
    parse(call("GET", "/api/me", None).await?)
}

pub async fn documents() -> Result<Vec<DocInfo>, ApiError> {
    parse(call("GET", "/api/documents", None).await?)
}

pub async fn logout() -> Result<(), ApiError> {
    call("POST", "/api/logout", None).await.map(|_| ())
}

/// A passkey ceremony the server started: its opaque id (sent back with the
/// browser's answer) and the WebAuthn options (`{"publicKey": {...}}`).
#[derive(Deserialize)]
pub struct Ceremony {
    pub ceremony: String,
    pub options: Value,
}

fn finish_body(ceremony: &str, credential: &Value) -> Value {
    serde_json::json!({ "ceremony": ceremony, "credential": credential })
}

pub async fn login_start() -> Result<Ceremony, ApiError> {
    parse(call("POST", "/api/login/start", None).await?)
}

/// The PublicKeyCredential JSON (base64url fields) answering `ceremony`.
pub async fn login_finish(ceremony: &str, credential: &Value) -> Result<Value, ApiError> {
    call("POST", "/api/login/finish", Some(&finish_body(ceremony, credential))).await
}

/// Registration options for an enrollment link's token.
pub async fn enroll_start(token: &str) -> Result<Ceremony, ApiError> {
    parse(call("POST", "/api/enroll/start", Some(&serde_json::json!({ "token": token }))).await?)
}

pub async fn enroll_finish(ceremony: &str, credential: &Value) -> Result<Value, ApiError> {
    call("POST", "/api/enroll/finish", Some(&finish_body(ceremony, credential))).await
}

/// `GET /api/passkeys`: an array of `{"id", "name", "created_at"?, "last_used_at"?}`.
pub async fn passkeys() -> Result<Vec<Value>, ApiError> {
    parse(call("GET", "/api/passkeys", None).await?)
}

/// Adding a passkey to a signed-in account: creation options, then the credential.
pub async fn passkey_add_start() -> Result<Ceremony, ApiError> {
    parse(call("POST", "/api/passkeys/register/start", Some(&serde_json::json!({}))).await?)
}

pub async fn passkey_add_finish(ceremony: &str, credential: &Value) -> Result<Value, ApiError> {
    call("POST", "/api/passkeys/register/finish", Some(&finish_body(ceremony, credential))).await
}

pub async fn passkey_rename(id: &str, name: &str) -> Result<(), ApiError> {
    call("PATCH", &format!("/api/passkeys/{id}"), Some(&serde_json::json!({ "name": name }))).await.map(|_| ())
}

pub async fn passkey_delete(id: &str) -> Result<(), ApiError> {
    call("DELETE", &format!("/api/passkeys/{id}"), None).await.map(|_| ())
}

/// A clinic and whether it may see the patient's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    #[serde(alias = "id", alias = "clinic")]
    pub clinic_id: ClinicId,
    #[serde(alias = "name", default)]
    pub clinic_name: String,
    #[serde(default = "yes")]
    pub granted: bool,
    #[serde(default, alias = "granted_at")]
    pub since: Option<String>,
}

fn yes() -> bool {
    true
}

/// Every clinic, with whether it has access: `GET /api/consents` lists only
/// the clinics that have it, so the others (from `GET /api/clinics`) are
/// added as without access, which the patient can give (or give back).
pub async fn consents() -> Result<Vec<Consent>, ApiError> {
    let mut list: Vec<Consent> = parse(call("GET", "/api/consents", None).await?)?;
    let clinics: Vec<Clinic> = parse(call("GET", "/api/clinics", None).await?)?;
    for clinic in clinics {
        if !list.iter().any(|c| c.clinic_id == clinic.id) {
            list.push(Consent { clinic_id: clinic.id, clinic_name: clinic.name, granted: false, since: None });
        }
    }
    Ok(list)
}

pub async fn grant(clinic: ClinicId) -> Result<(), ApiError> {
    call("POST", &format!("/api/consents/{clinic}"), None).await.map(|_| ())
}

pub async fn revoke(clinic: ClinicId) -> Result<(), ApiError> {
    call("DELETE", &format!("/api/consents/{clinic}"), None).await.map(|_| ())
}

/// `GET /api/audit`: who accessed my record; an array of objects, shown as
/// time (`at`), who (`actor_name`), where (`clinic_name`) and what (`action`).
pub async fn audit() -> Result<Vec<Value>, ApiError> {
    parse(call("GET", "/api/audit", None).await?)
}
