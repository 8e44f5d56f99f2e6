//! Every HTTP call the app makes, in one place. The bodies are
//! `shared::api`'s, read and written through the app's JSON layer
//! (`Decode`/`Encode` over `Json`).
//!
//! Sign-in (passkeys), the signed-in user, the document list, passkeys,
//! consents and the access log. The sync itself is a WebSocket (sync.rs).

use crate::i18n::{t, tf, ts};
use shared::api::{
    AppointmentAnswer, AuditEntry, AuthorizedApp, Caregiver, ClinicAppointment, ClinicDetails,
    ClinicPage, ClinicRef, Consent, Decode, DocumentInfo, DownloadReport, Encode, Invitation, Me,
    Millis, NewCaregiver, NewInvitation, OfflineSet, OpenLink, Passkey, PasskeyName, PatientRow,
    PatientSearch, RemovedCopies, UserRole,
};
use shared::{ClinicId, DocId, PatientId, UserId};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::json::Json;

#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// No network (or the server is unreachable).
    Offline,
    /// 401: the session is over; sign in again.
    SessionExpired,
    /// 401 `access_removed`: the account was revoked (a caregiver the
    /// patient removed); this device must remove its copies.
    AccessRemoved,
    /// 403 `reauth_required`: granting access needs a passkey used in the
    /// last few minutes (`with_reauth` asks for it and retries).
    ReauthRequired,
    /// Any other refusal, with the server's message.
    Failed(u16, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Offline => f.write_str(t("You are offline: this needs the network.")),
            Self::SessionExpired => f.write_str(t("Your session has ended: sign in again.")),
            Self::AccessRemoved => f.write_str(t("Your access to this record was taken away.")),
            Self::ReauthRequired => {
                f.write_str(t("Confirm it is you with your passkey, then try again."))
            }
            Self::Failed(_, message) => f.write_str(message),
        }
    }
}

#[wasm_bindgen(module = "/src/vault.js")]
extern "C" {
    /// `fetch` with the session's cookie and JSON headers: `[status, text]`;
    /// fails without a network.
    #[wasm_bindgen(catch)]
    async fn request(method: &str, path: &str, body: Option<String>) -> Result<JsValue, JsValue>;
}

/// A language's pack of words (`i18n`), if the network brings it.
pub async fn language_pack(lang: &str) -> Option<String> {
    let answer: js_sys::Array =
        request("GET", &format!("/i18n/{lang}.txt"), None).await.ok()?.unchecked_into();
    (answer.get(0).as_f64() == Some(200.0)).then(|| answer.get(1).as_string()).flatten()
}

async fn call(method: &str, path: &str, body: Option<&Json>) -> Result<Json, ApiError> {
    let answer: js_sys::Array = request(method, path, body.map(Json::stringify))
        .await
        .map_err(|_| ApiError::Offline)?
        .unchecked_into();
    let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
    let text = answer.get(1).as_string().unwrap_or_default();
    // The service worker answers 503 for API calls it cannot reach.
    if status == 503 && text.contains("offline") {
        return Err(ApiError::Offline);
    }
    let json = if text.is_empty() { Some(Json::null()) } else { Json::parse(&text) };
    // Only a 401 that says so means the session is over; a refused passkey
    // at sign-in is a 401 too, and its message must be shown as it is.
    if status == 401 {
        match json.as_ref().and_then(|j| j.str("error")).as_deref() {
            None | Some("session_expired") => return Err(ApiError::SessionExpired),
            Some("access_removed") => return Err(ApiError::AccessRemoved),
            Some(_) => {}
        }
    }
    if status == 403
        && json.as_ref().and_then(|j| j.str("error")).as_deref() == Some("reauth_required")
    {
        return Err(ApiError::ReauthRequired);
    }
    if !(200..300).contains(&status) {
        let message = json
            .as_ref()
            .and_then(|j| j.str("message").or_else(|| j.str("error")))
            .unwrap_or_else(|| tf("The server answered {0}.", &[&status]));
        return Err(ApiError::Failed(status, message));
    }
    json.ok_or_else(not_understood)
}

fn not_understood() -> ApiError {
    ApiError::Failed(0, ts("The server's answer was not understood."))
}

/// Reads an answer as `T`, refusing it whole if any part is missing.
fn read<T: Decode>(json: Json) -> Result<T, ApiError> {
    T::decode(&json).ok_or_else(not_understood)
}

/// A JSON body for a request.
fn body(value: &impl Encode) -> Json {
    value.encode()
}

/// A time the API sends (ms since the epoch) as RFC 3339 UTC, as the views
/// show times.
pub fn iso(at: Millis) -> String {
    String::from(js_sys::Date::new(&(at as f64).into()).to_iso_string())
}

/// The signed-in user, with the answer as sent (the device keeps it as is).
pub async fn me() -> Result<(Me, Json), ApiError> {
    let json = call("GET", "/api/me", None).await?;
    Ok((Me::decode(&json).ok_or_else(not_understood)?, json))
}

/// Tells the server the record was downloaded on this device at `at` (ms).
pub async fn report_download(at: Millis) -> Result<(), ApiError> {
    call("POST", "/api/audit/downloads", Some(&body(&DownloadReport { at }))).await.map(|_| ())
}

pub async fn documents() -> Result<Vec<DocumentInfo>, ApiError> {
    read(call("GET", "/api/documents", None).await?)
}

/// Clinic staff: the documents to keep on this device, the clinic's work
/// today and `patients` (pinned, recently opened).
pub async fn offline_documents(patients: &[PatientId]) -> Result<Vec<DocumentInfo>, ApiError> {
    let set = OfflineSet { patients: patients.to_vec() };
    read(call("POST", "/api/documents/offline", Some(&body(&set))).await?)
}

/// Clinic staff: the first page of patients matching `query`, by name.
pub async fn patients(query: &str) -> Result<Vec<PatientRow>, ApiError> {
    let search = PatientSearch { q: query.to_owned(), offset: 0 };
    read(call("POST", "/api/patients/search", Some(&body(&search))).await?)
}

/// Tells the server this device deleted its copies of `docs` (access to
/// them ended), for the patient's access log.
pub async fn removed_copies(docs: &[DocId]) -> Result<(), ApiError> {
    let report = RemovedCopies { docs: docs.to_vec() };
    call("POST", "/api/documents/removed", Some(&body(&report))).await.map(drop)
}

pub async fn logout() -> Result<(), ApiError> {
    call("POST", "/api/logout", None).await.map(|_| ())
}

/// Ends every session of the user, this one included (a lost phone).
pub async fn logout_all() -> Result<(), ApiError> {
    call("POST", "/api/logout-all", None).await.map(|_| ())
}

/// A passkey ceremony the server started: its opaque id (sent back with the
/// browser's answer) and the WebAuthn options (`{"publicKey": {...}}`).
pub struct Ceremony {
    pub ceremony: String,
    pub options: Json,
}

impl Ceremony {
    /// A started ceremony's answer: WebAuthn's own JSON, outside `shared::api`.
    fn read(json: Json) -> Result<Ceremony, ApiError> {
        let ceremony = json.str("ceremony").ok_or_else(not_understood)?;
        Ok(Ceremony { ceremony, options: json.get("options") })
    }
}

fn finish_body(ceremony: &str, credential: &Json) -> Json {
    Json::object(&[("ceremony", ceremony.into()), ("credential", credential.js().clone())])
}

pub async fn login_start() -> Result<Ceremony, ApiError> {
    Ceremony::read(call("POST", "/api/login/start", None).await?)
}

/// The PublicKeyCredential JSON (base64url fields) answering `ceremony`.
pub async fn login_finish(ceremony: &str, credential: &Json) -> Result<Json, ApiError> {
    call("POST", "/api/login/finish", Some(&finish_body(ceremony, credential))).await
}

/// Proves presence again with one of the user's own passkeys (and wraps
/// this device's key for it if it is not yet).
pub async fn reauth() -> Result<(), ApiError> {
    let started = Ceremony::read(call("POST", "/api/reauth/start", None).await?)?;
    let credential = crate::webauthn::get_assertion(started.options)
        .await
        .map_err(|e| ApiError::Failed(0, e))?;
    call("POST", "/api/reauth/finish", Some(&finish_body(&started.ceremony, &credential))).await?;
    let _ = crate::vault::signed_in().await;
    Ok(())
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
/// be used. Using one replaces their passkeys.
pub async fn open_links() -> Result<Vec<OpenLink>, ApiError> {
    read(call("GET", "/api/enrollments", None).await?)
}

pub async fn cancel_links() -> Result<(), ApiError> {
    call("DELETE", "/api/enrollments", None).await.map(|_| ())
}

/// Registration options for an enrollment link's token.
pub async fn enroll_start(token: &str) -> Result<Ceremony, ApiError> {
    Ceremony::read(
        call("POST", "/api/enroll/start", Some(&Json::object(&[("token", token.into())]))).await?,
    )
}

/// Who an enrollment link is for and who sent it, before the passkey is made.
pub async fn enroll_invitation(token: &str) -> Result<Json, ApiError> {
    call("POST", "/api/enroll/invitation", Some(&Json::object(&[("token", token.into())]))).await
}

pub async fn enroll_finish(ceremony: &str, credential: &Json) -> Result<Json, ApiError> {
    call("POST", "/api/enroll/finish", Some(&finish_body(ceremony, credential))).await
}

pub async fn passkeys() -> Result<Vec<Passkey>, ApiError> {
    read(call("GET", "/api/passkeys", None).await?)
}

/// Adding a passkey to a signed-in account: creation options, then the credential.
pub async fn passkey_add_start() -> Result<Ceremony, ApiError> {
    Ceremony::read(
        call("POST", "/api/passkeys/register/start", Some(&body(&PasskeyName::default()))).await?,
    )
}

pub async fn passkey_add_finish(ceremony: &str, credential: &Json) -> Result<Json, ApiError> {
    call("POST", "/api/passkeys/register/finish", Some(&finish_body(ceremony, credential))).await
}

pub async fn passkey_rename(id: uuid::Uuid, name: &str) -> Result<(), ApiError> {
    let name = PasskeyName { name: Some(name.to_owned()) };
    call("PATCH", &format!("/api/passkeys/{id}"), Some(&body(&name))).await.map(|_| ())
}

pub async fn passkey_delete(id: uuid::Uuid) -> Result<(), ApiError> {
    call("DELETE", &format!("/api/passkeys/{id}"), None).await.map(|_| ())
}

/// A clinic and whether it may see the patient's record.
#[derive(Clone, Debug, PartialEq)]
pub struct ClinicAccess {
    pub clinic_id: ClinicId,
    pub clinic_name: String,
    pub granted: bool,
}

/// Every clinic, with whether it has access: `GET /api/consents` lists only
/// the clinics that have it, so the others (from `GET /api/clinics`) are
/// added as without access, which the patient can give (or give back).
pub async fn consents() -> Result<Vec<ClinicAccess>, ApiError> {
    let consents: Vec<Consent> = read(call("GET", "/api/consents", None).await?)?;
    let clinics: Vec<ClinicRef> = read(call("GET", "/api/clinics", None).await?)?;
    let mut list: Vec<ClinicAccess> = consents
        .into_iter()
        .map(|c| ClinicAccess { clinic_id: c.clinic_id, clinic_name: c.clinic_name, granted: true })
        .collect();
    for clinic in clinics {
        if !list.iter().any(|c| c.clinic_id == clinic.id) {
            list.push(ClinicAccess {
                clinic_id: clinic.id,
                clinic_name: clinic.name,
                granted: false,
            });
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

pub async fn caregivers() -> Result<Vec<Caregiver>, ApiError> {
    read(call("GET", "/api/caregivers", None).await?)
}

pub async fn invite_caregiver(
    display_name: &str,
    may_message: bool,
) -> Result<Invitation, ApiError> {
    let new = NewCaregiver { display_name: display_name.to_owned(), may_message };
    read(call("POST", "/api/caregivers", Some(&body(&new))).await?)
}

/// A new link for a caregiver (the first expired, or a new device).
pub async fn caregiver_link(user: UserId) -> Result<Invitation, ApiError> {
    read(call("POST", &format!("/api/caregivers/{user}/enrollment"), None).await?)
}

/// A clinic admin's clinic: its details and people.
pub async fn clinic_page() -> Result<ClinicPage, ApiError> {
    read(call("GET", "/api/clinic", None).await?)
}

/// A clinic admin's appointments to come (the server reads them for them).
pub async fn clinic_appointments() -> Result<Vec<ClinicAppointment>, ApiError> {
    read(call("GET", "/api/clinic/appointments", None).await?)
}

pub async fn answer_appointment(answer: &AppointmentAnswer) -> Result<(), ApiError> {
    call("POST", "/api/clinic/appointments", Some(&body(answer))).await.map(drop)
}

pub async fn set_clinic_details(details: &ClinicDetails) -> Result<(), ApiError> {
    call("PUT", "/api/clinic/details", Some(&body(details))).await.map(drop)
}

/// A clinic admin adds a patient or a provider and gets their link.
pub async fn invite(role: UserRole, display_name: &str) -> Result<Invitation, ApiError> {
    let new = NewInvitation { role, display_name: display_name.to_owned() };
    read(call("POST", "/api/invitations", Some(&body(&new))).await?)
}

/// A clinic admin's new sign-in link for one of the clinic's people.
pub async fn user_link(user: UserId) -> Result<Invitation, ApiError> {
    read(call("POST", &format!("/api/users/{user}/enrollment"), None).await?)
}

/// Ends a caregiver's access and their sessions at once.
pub async fn revoke_caregiver(user: UserId) -> Result<(), ApiError> {
    call("DELETE", &format!("/api/caregivers/{user}"), None).await.map(|_| ())
}

/// Who did what with the patient's record, newest first.
pub async fn audit() -> Result<Vec<AuditEntry>, ApiError> {
    read(call("GET", "/api/audit", None).await?)
}

/// Patient apps (SMART on FHIR) the person let read a record.
pub async fn apps() -> Result<Vec<AuthorizedApp>, ApiError> {
    read(call("GET", "/api/smart/apps", None).await?)
}

/// Takes an app's access away: its tokens stop working at once.
pub async fn remove_app(id: &str) -> Result<(), ApiError> {
    call("DELETE", &format!("/api/smart/apps/{id}"), None).await.map(|_| ())
}
