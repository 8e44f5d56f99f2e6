//! Every HTTP call the app makes, with the shapes it expects, in one place.
//!
//! Sign-in (passkeys), the signed-in user, the document list, passkeys,
//! consents and the access log. The sync itself is a WebSocket (sync.rs).

use shared::{ClinicId, DocId, DocKind, PatientId, UserId};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use crate::json::Json;

/// `GET /api/me`.
#[derive(Clone, Debug, PartialEq)]
pub struct Me {
    pub user_id: UserId,
    pub display_name: String,
    /// "patient" | "caregiver" | "provider" | "admin".
    pub role: String,
    pub patient_id: Option<PatientId>,
    pub clinics: Vec<Clinic>,
    /// A caregiver the patient allowed to write messages and requests.
    pub may_message: bool,
    /// 32 hex characters: the Automerge actor id this session writes with.
    pub actor_id: String,
    /// The passkey this session signed in with ("" if unknown): removing it
    /// signs this device out.
    pub passkey_id: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Clinic {
    pub id: ClinicId,
    pub name: String,
}

impl Me {
    pub fn is_staff(&self) -> bool {
        matches!(self.role.as_str(), "provider" | "admin")
    }

    pub fn from_json(json: &Json) -> Option<Me> {
        Some(Me {
            user_id: json.parsed("user_id")?,
            display_name: json.str("display_name")?,
            role: json.str("role")?,
            patient_id: json.parsed("patient_id"),
            clinics: json
                .get("clinics")
                .items()
                .iter()
                .map(Clinic::from_json)
                .collect::<Option<_>>()?,
            may_message: json.get("caregiver").bool("may_message").unwrap_or(false),
            actor_id: json.str("actor_id")?,
            passkey_id: json.text("passkey_id"),
        })
    }

    /// The same shape as the server's, for the copy kept on the device.
    pub fn to_json(&self) -> Json {
        Json::object(&[
            ("user_id", self.user_id.to_string().into()),
            ("display_name", self.display_name.as_str().into()),
            ("role", self.role.as_str().into()),
            ("patient_id", self.patient_id.map_or(JsValue::UNDEFINED, |p| p.to_string().into())),
            ("clinics", Json::array(self.clinics.iter().map(Clinic::to_json)).js().clone()),
            ("caregiver", Json::object(&[("may_message", self.may_message.into())]).js().clone()),
            ("actor_id", self.actor_id.as_str().into()),
            ("passkey_id", self.passkey_id.as_str().into()),
        ])
    }
}

impl Clinic {
    fn from_json(json: &Json) -> Option<Clinic> {
        Some(Clinic { id: json.parsed("id")?, name: json.str("name")? })
    }

    fn to_json(&self) -> Json {
        Json::object(&[("id", self.id.to_string().into()), ("name", self.name.as_str().into())])
    }
}

/// One entry of `GET /api/documents`: `{"id", "kind", "patient", "clinic"}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DocInfo {
    pub id: DocId,
    pub kind: DocKind,
}

impl DocInfo {
    pub fn from_json(json: &Json) -> Option<DocInfo> {
        let kind = DocKind::from_parts(
            &json.str("kind")?,
            json.parsed("patient")?,
            json.parsed("clinic"),
        )?;
        Some(DocInfo { id: json.parsed("id")?, kind })
    }

    pub fn to_json(self) -> Json {
        let clinic = self.kind.clinic().map_or(JsValue::UNDEFINED, |c| c.to_string().into());
        Json::object(&[
            ("id", self.id.to_string().into()),
            ("kind", self.kind.name().into()),
            ("patient", self.kind.patient().to_string().into()),
            ("clinic", clinic),
        ])
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// No network (or the server is unreachable).
    Offline,
    /// 401: the session is over; sign in again.
    SessionExpired,
    /// 403 `reauth_required`: granting access needs a passkey used in the
    /// last few minutes (`with_reauth` asks for it and retries).
    ReauthRequired,
    /// Any other refusal, with the server's message.
    Failed(u16, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Offline => f.write_str("You are offline: this needs the network."),
            Self::SessionExpired => f.write_str("Your session has ended: sign in again."),
            Self::ReauthRequired => {
                f.write_str("Confirm it is you with your passkey, then try again.")
            }
            Self::Failed(_, message) => f.write_str(message),
        }
    }
}

async fn call(method: &str, path: &str, body: Option<&Json>) -> Result<Json, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(&body.stringify()));
    }
    let request = Request::new_with_str_and_init(path, &init)
        .map_err(|_| ApiError::Failed(0, "bad request".into()))?;
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
        Ok(promise) => {
            JsFuture::from(promise).await.ok().and_then(|t| t.as_string()).unwrap_or_default()
        }
        Err(_) => String::new(),
    };
    let status = response.status();
    // The service worker answers 503 for API calls it cannot reach.
    if status == 503 && text.contains("offline") {
        return Err(ApiError::Offline);
    }
    let json = if text.is_empty() { Some(Json::null()) } else { Json::parse(&text) };
    // Only a 401 that says so means the session is over; a refused passkey
    // at sign-in is a 401 too, and its message must be shown as it is.
    if status == 401
        && json.as_ref().and_then(|j| j.str("error")).is_none_or(|code| code == "session_expired")
    {
        return Err(ApiError::SessionExpired);
    }
    if status == 403
        && json.as_ref().and_then(|j| j.str("error")).as_deref() == Some("reauth_required")
    {
        return Err(ApiError::ReauthRequired);
    }
    if !response.ok() {
        let message = json
            .as_ref()
            .and_then(|j| j.str("message").or_else(|| j.str("error")))
            .unwrap_or_else(|| format!("The server answered {status}."));
        return Err(ApiError::Failed(status, message));
    }
    json.ok_or_else(not_understood)
}

fn not_understood() -> ApiError {
    ApiError::Failed(0, "The server's answer was not understood.".into())
}

/// Reads an answer with `read`, refusing it whole if any part is missing.
fn read<T>(json: Json, shape: impl Fn(&Json) -> Option<T>) -> Result<T, ApiError> {
    shape(&json).ok_or_else(not_understood)
}

/// Reads an array answer item by item.
fn read_list<T>(json: Json, shape: impl Fn(&Json) -> Option<T>) -> Result<Vec<T>, ApiError> {
    json.items().iter().map(shape).collect::<Option<_>>().ok_or_else(not_understood)
}

pub async fn me() -> Result<Me, ApiError> {
    read(call("GET", "/api/me", None).await?, Me::from_json)
}

pub async fn documents() -> Result<Vec<DocInfo>, ApiError> {
    read_list(call("GET", "/api/documents", None).await?, DocInfo::from_json)
}

pub async fn logout() -> Result<(), ApiError> {
    call("POST", "/api/logout", None).await.map(|_| ())
}

/// A passkey ceremony the server started: its opaque id (sent back with the
/// browser's answer) and the WebAuthn options (`{"publicKey": {...}}`).
pub struct Ceremony {
    pub ceremony: String,
    pub options: Json,
}

impl Ceremony {
    fn from_json(json: &Json) -> Option<Ceremony> {
        Some(Ceremony { ceremony: json.str("ceremony")?, options: json.get("options") })
    }
}

fn finish_body(ceremony: &str, credential: &Json) -> Json {
    Json::object(&[("ceremony", ceremony.into()), ("credential", credential.js().clone())])
}

pub async fn login_start() -> Result<Ceremony, ApiError> {
    read(call("POST", "/api/login/start", None).await?, Ceremony::from_json)
}

/// The PublicKeyCredential JSON (base64url fields) answering `ceremony`.
pub async fn login_finish(ceremony: &str, credential: &Json) -> Result<Json, ApiError> {
    call("POST", "/api/login/finish", Some(&finish_body(ceremony, credential))).await
}

/// Proves presence again with one of the user's own passkeys.
pub async fn reauth() -> Result<(), ApiError> {
    let started = read(call("POST", "/api/reauth/start", None).await?, Ceremony::from_json)?;
    let credential = crate::webauthn::get_assertion(started.options)
        .await
        .map_err(|e| ApiError::Failed(0, e))?;
    call("POST", "/api/reauth/finish", Some(&finish_body(&started.ceremony, &credential)))
        .await
        .map(|_| ())
}

/// Runs `request`; if the server wants a passkey used first (adding a
/// passkey, inviting, new links), asks for it and runs the request again.
pub async fn with_reauth<T, F: std::future::Future<Output = Result<T, ApiError>>>(
    request: impl Fn() -> F,
) -> Result<T, ApiError> {
    match request().await {
        Err(ApiError::ReauthRequired) => {
            reauth().await?;
            request().await
        }
        other => other,
    }
}

/// Enrollment links for the signed-in person's own account that can still
/// be used: (who issued it, until when). Using one replaces their passkeys.
pub async fn open_links() -> Result<Vec<(String, String)>, ApiError> {
    read_list(call("GET", "/api/enrollments", None).await?, |l| {
        Some((l.text("issued_by"), l.text("expires_at")))
    })
}

pub async fn cancel_links() -> Result<(), ApiError> {
    call("DELETE", "/api/enrollments", None).await.map(|_| ())
}

/// Registration options for an enrollment link's token.
pub async fn enroll_start(token: &str) -> Result<Ceremony, ApiError> {
    read(
        call("POST", "/api/enroll/start", Some(&Json::object(&[("token", token.into())]))).await?,
        Ceremony::from_json,
    )
}

pub async fn enroll_finish(ceremony: &str, credential: &Json) -> Result<Json, ApiError> {
    call("POST", "/api/enroll/finish", Some(&finish_body(ceremony, credential))).await
}

/// One of `GET /api/passkeys`; times in RFC 3339, empty if never.
#[derive(Clone, Debug, PartialEq)]
pub struct Passkey {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: String,
    /// The passkey whose session added this one ("" if an enrollment link did).
    pub added_with: String,
}

pub async fn passkeys() -> Result<Vec<Passkey>, ApiError> {
    read_list(call("GET", "/api/passkeys", None).await?, |key| {
        Some(Passkey {
            id: key.str("id")?,
            name: key.str("name")?,
            created_at: key.text("created_at"),
            last_used_at: key.text("last_used_at"),
            added_with: key.text("added_with"),
        })
    })
}

/// Adding a passkey to a signed-in account: creation options, then the credential.
pub async fn passkey_add_start() -> Result<Ceremony, ApiError> {
    read(
        call("POST", "/api/passkeys/register/start", Some(&Json::object(&[]))).await?,
        Ceremony::from_json,
    )
}

pub async fn passkey_add_finish(ceremony: &str, credential: &Json) -> Result<Json, ApiError> {
    call("POST", "/api/passkeys/register/finish", Some(&finish_body(ceremony, credential))).await
}

pub async fn passkey_rename(id: &str, name: &str) -> Result<(), ApiError> {
    call("PATCH", &format!("/api/passkeys/{id}"), Some(&Json::object(&[("name", name.into())])))
        .await
        .map(|_| ())
}

pub async fn passkey_delete(id: &str) -> Result<(), ApiError> {
    call("DELETE", &format!("/api/passkeys/{id}"), None).await.map(|_| ())
}

/// A clinic and whether it may see the patient's record.
#[derive(Clone, Debug, PartialEq)]
pub struct Consent {
    pub clinic_id: ClinicId,
    pub clinic_name: String,
    pub granted: bool,
}

/// Every clinic, with whether it has access: `GET /api/consents` lists only
/// the clinics that have it, so the others (from `GET /api/clinics`) are
/// added as without access, which the patient can give (or give back).
pub async fn consents() -> Result<Vec<Consent>, ApiError> {
    let mut list = read_list(call("GET", "/api/consents", None).await?, |c| {
        Some(Consent {
            clinic_id: c.parsed("clinic_id")?,
            clinic_name: c.str("clinic_name")?,
            granted: true,
        })
    })?;
    let clinics = read_list(call("GET", "/api/clinics", None).await?, Clinic::from_json)?;
    for clinic in clinics {
        if !list.iter().any(|c| c.clinic_id == clinic.id) {
            list.push(Consent { clinic_id: clinic.id, clinic_name: clinic.name, granted: false });
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

/// One of the patient's caregivers (`GET /api/caregivers`).
#[derive(Clone, Debug, PartialEq)]
pub struct Caregiver {
    pub user_id: UserId,
    pub display_name: String,
    /// May message clinics and request refills, besides reading.
    pub may_message: bool,
    /// Has created a passkey with their link.
    pub enrolled: bool,
}

pub async fn caregivers() -> Result<Vec<Caregiver>, ApiError> {
    read_list(call("GET", "/api/caregivers", None).await?, |c| {
        Some(Caregiver {
            user_id: c.parsed("user_id")?,
            display_name: c.str("display_name")?,
            may_message: c.bool("may_message")?,
            enrolled: c.bool("enrolled")?,
        })
    })
}

/// A one-time enrollment link for someone to create their passkey with, and
/// when it expires (RFC 3339).
#[derive(Clone, Debug, PartialEq)]
pub struct Invitation {
    pub link: String,
    pub expires_at: String,
}

impl Invitation {
    fn from_json(json: &Json) -> Option<Invitation> {
        Some(Invitation { link: json.str("link")?, expires_at: json.text("expires_at") })
    }
}

pub async fn invite_caregiver(
    display_name: &str,
    may_message: bool,
) -> Result<Invitation, ApiError> {
    let body =
        Json::object(&[("display_name", display_name.into()), ("may_message", may_message.into())]);
    read(call("POST", "/api/caregivers", Some(&body)).await?, Invitation::from_json)
}

/// A new link for a caregiver (the first expired, or a new device).
pub async fn caregiver_link(user: UserId) -> Result<Invitation, ApiError> {
    read(
        call("POST", &format!("/api/caregivers/{user}/enrollment"), None).await?,
        Invitation::from_json,
    )
}

/// Ends a caregiver's access and their sessions at once.
pub async fn revoke_caregiver(user: UserId) -> Result<(), ApiError> {
    call("DELETE", &format!("/api/caregivers/{user}"), None).await.map(|_| ())
}

/// One row of `GET /api/audit`: who accessed my record, when, and what
/// they did.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessEntry {
    pub at: String,
    pub who: String,
    pub action: String,
}

pub async fn audit() -> Result<Vec<AccessEntry>, ApiError> {
    read_list(call("GET", "/api/audit", None).await?, |row| {
        Some(AccessEntry {
            at: row.text("at"),
            who: row.text("user_name"),
            action: row.str("action")?,
        })
    })
}
