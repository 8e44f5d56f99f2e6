//! SMART on FHIR's OAuth 2.0 endpoints: discovery, the standalone launch's
//! authorization (a server-rendered consent page) and the token endpoint
//! for patient apps (authorization code + PKCE) and clinic systems (client
//! credentials with a signed JWT); the person's list of apps and revoking one.
//!
//! Every parameter is bounded before use (`smart::MAX_*`); secrets are
//! compared in constant time; codes and tokens are stored as hashes and
//! never logged.

use axum::Json;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use shared::PatientId;
use shared::api::{AuthorizedApp, UserRole};
use webauthn_rs::prelude::Url;

use crate::auth::{AuthUser, hash_secret, new_secret, session_cookie, session_user};
use crate::smart::{self, CODE_TTL, Scopes, TOKEN_TTL, assertion};
use crate::storage::{NewGrant, SmartClient};
use crate::{AppState, Error};

/// The FHIR base: a token's `aud`.
fn fhir_base(state: &AppState) -> String {
    format!("{}/fhir/R4", state.public_url)
}

fn token_url(state: &AppState) -> String {
    format!("{}/oauth/token", state.public_url)
}

fn ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `GET /.well-known/smart-configuration`.
pub async fn configuration(State(state): State<AppState>) -> Response {
    let base = &state.public_url;
    Json(json!({
        "issuer": base.as_ref(),
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": token_url(&state),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES384", "RS384"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["launch/patient", "patient/*.rs", "system/*.c"],
        "capabilities": [
            "launch-standalone", "client-public", "context-standalone-patient",
            "permission-v2", "permission-patient"
        ],
    }))
    .into_response()
}

/// Request parameters, each at most once and within `MAX_PARAM_BYTES`.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(pairs: Vec<(String, String)>) -> Result<Self, &'static str> {
        if pairs.len() > 32 {
            return Err("too many parameters");
        }
        for (i, (name, value)) in pairs.iter().enumerate() {
            if value.len() > smart::MAX_PARAM_BYTES && name != "client_assertion" {
                return Err("a parameter is too long");
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err("a parameter is repeated");
            }
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A valid authorization request.
struct AuthRequest {
    client: SmartClient,
    redirect_uri: String,
    /// What was asked (the form carries it) and what is granted.
    requested: String,
    scope: String,
    state: String,
    challenge: String,
}

/// Why an authorization request is refused: before the client and its
/// redirect URI are known good, on a page (never redirect to an unchecked
/// URI); after, back to the app with an OAuth error.
enum AuthError {
    Page(StatusCode, &'static str),
    Redirect { to: String, error: &'static str, state: String },
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self {
            Self::Page(status, text) => page(status, "Cannot connect this app", &escape(text)),
            Self::Redirect { to, error, state } => {
                redirect_to(&to, &[("error", error), ("state", &state)])
            }
        }
    }
}

async fn auth_request(state: &AppState, params: &Params) -> Result<AuthRequest, AuthError> {
    let bad = |text| AuthError::Page(StatusCode::BAD_REQUEST, text);
    let client_id = params.get("client_id").filter(|c| !c.is_empty()).ok_or(bad("no client_id"))?;
    let client = state
        .store
        .smart_client(client_id)
        .await
        .map_err(|_| AuthError::Page(StatusCode::SERVICE_UNAVAILABLE, "try again later"))?
        .filter(|c| c.redirect_uri.is_some())
        .ok_or(bad("this app is not registered with the portal"))?;
    let redirect_uri = params.get("redirect_uri").unwrap_or_default();
    if client.redirect_uri.as_deref() != Some(redirect_uri) {
        return Err(bad("the redirect_uri is not the one registered for this app"));
    }
    let app_state = params.get("state").unwrap_or_default().to_owned();
    let refuse = |error| AuthError::Redirect {
        to: redirect_uri.to_owned(),
        error,
        state: app_state.clone(),
    };
    if params.get("response_type") != Some("code") {
        return Err(refuse("unsupported_response_type"));
    }
    let challenge = params.get("code_challenge").unwrap_or_default();
    if params.get("code_challenge_method") != Some("S256") || !smart::is_challenge(challenge) {
        return Err(refuse("invalid_request"));
    }
    if params.get("aud").map(|a| a.trim_end_matches('/')) != Some(fhir_base(state).as_str()) {
        return Err(refuse("invalid_request"));
    }
    if app_state.is_empty() {
        return Err(refuse("invalid_request"));
    }
    let requested = params.get("scope").unwrap_or_default().to_owned();
    let scope = smart::patient_scope(&requested).map_err(|_| refuse("invalid_scope"))?;
    Ok(AuthRequest {
        redirect_uri: redirect_uri.to_owned(),
        client,
        requested,
        scope,
        state: app_state,
        challenge: challenge.to_owned(),
    })
}

/// The patient a signed-in person may let an app read: their own record,
/// or for a caregiver the record of the patient they care for, if they may
/// read it (the read policy, as sync and the FHIR API apply it).
async fn patient_of(state: &AppState, auth: &AuthUser) -> Result<Option<PatientId>, Error> {
    let Some(patient) = auth.patient() else { return Ok(None) };
    let readable = state.store.readable_documents(&auth.user).await?;
    Ok(readable.iter().any(|d| d.kind.patient() == patient).then_some(patient))
}

/// Binds the consent form to the session and to the request it shows: only
/// a page served to this session can approve, and only what it showed.
fn consent_token(headers: &HeaderMap, request: &AuthRequest) -> String {
    let session = session_cookie(headers).map(|c| hash_secret(&c)).unwrap_or_default();
    hash_secret(
        &[
            "smart-consent",
            &session,
            &request.client.id,
            &request.redirect_uri,
            &request.requested,
            &request.state,
            &request.challenge,
        ]
        .join("\n"),
    )
}

/// `GET /oauth/authorize`: the consent page, or a page asking the person to
/// sign in to the portal first (the session cookie is SameSite=Strict, so
/// it is not sent on the navigation from the app's site: the page's
/// Continue link, a navigation from the portal itself, carries it).
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let pairs = match serde_urlencoded::from_str::<Vec<(String, String)>>(&query) {
        Ok(pairs) => pairs,
        Err(_) => {
            return AuthError::Page(StatusCode::BAD_REQUEST, "malformed request").into_response();
        }
    };
    let params = match Params::new(pairs) {
        Ok(params) => params,
        Err(text) => return AuthError::Page(StatusCode::BAD_REQUEST, text).into_response(),
    };
    let request = match auth_request(&state, &params).await {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let app = escape(&request.client.name);
    let again = escape(&format!("/oauth/authorize?{query}"));
    let Ok(auth) = session_user(&state, &headers).await else {
        return page(
            StatusCode::OK,
            "Sign in to continue",
            &format!(
                "<p>The app <strong>{app}</strong> asks to read a health record from this portal.</p>\
                 <p>If you are not signed in, <a href=\"/\" target=\"_blank\">sign in to the portal</a> first, then come back here.</p>\
                 <p><a href=\"{again}\">Continue</a></p>"
            ),
        );
    };
    let patient = match patient_of(&state, &auth).await {
        Ok(Some(patient)) => patient,
        Ok(None) => {
            return page(
                StatusCode::FORBIDDEN,
                "Cannot connect this app",
                "<p>Only a patient, or a caregiver who may read the patient's record, can let an app read it.</p>",
            );
        }
        Err(error) => return error.into_response(),
    };
    let whose = match auth.user.role {
        UserRole::Caregiver => {
            let name = state.store.patient_name(patient).await.ok().flatten();
            format!(
                "the record of {}, whom you care for",
                escape(&name.unwrap_or_else(|| "the patient".into()))
            )
        }
        _ => "your record".into(),
    };
    let scopes = Scopes::new(&request.scope);
    let what = if scopes.reads("*") && request.scope.contains("patient/*.rs") {
        "everything in the record (results, prescriptions, allergies, immunizations, appointments, messages)".to_owned()
    } else {
        let kinds: Vec<&str> =
            smart::READ_TYPES.iter().copied().filter(|k| scopes.reads(k)).collect();
        escape(&kinds.join(", "))
    };
    let hidden: String = [
        ("client_id", request.client.id.as_str()),
        ("redirect_uri", &request.redirect_uri),
        ("scope", &request.requested),
        ("state", &request.state),
        ("code_challenge", &request.challenge),
        ("code_challenge_method", "S256"),
        ("response_type", "code"),
        ("aud", &fhir_base(&state)),
        ("csrf", &consent_token(&headers, &request)),
    ]
    .iter()
    .map(|(n, v)| format!("<input type=\"hidden\" name=\"{n}\" value=\"{}\">", escape(v)))
    .collect();
    page(
        StatusCode::OK,
        "Connect an app",
        &format!(
            "<p>The app <strong>{app}</strong> asks to read {whose}, as {who}.</p>\
             <p>It will be able to read: {what}. It cannot change anything. Each read is in the record's access log.</p>\
             <p>Access lasts until you remove it on your account page, or sign out everywhere.</p>\
             <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
             <button name=\"decision\" value=\"approve\">Allow</button> \
             <button name=\"decision\" value=\"deny\">Deny</button></form>",
            who = escape(&auth.user.display_name),
        ),
    )
}

/// `POST /oauth/authorize`: the consent form (session, same Origin, the
/// form's token): a code for the app, or its refusal.
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, Error>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let params = match Params::new(pairs) {
        Ok(params) => params,
        Err(text) => return AuthError::Page(StatusCode::BAD_REQUEST, text).into_response(),
    };
    let request = match auth_request(&state, &params).await {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let Ok(auth) = auth else {
        return AuthError::Page(StatusCode::UNAUTHORIZED, "sign in to the portal, then try again")
            .into_response();
    };
    let sent = params.get("csrf").unwrap_or_default();
    if !smart::constant_time_eq(sent, &consent_token(&headers, &request)) {
        return AuthError::Page(
            StatusCode::FORBIDDEN,
            "this form has expired; start again from the app",
        )
        .into_response();
    }
    if params.get("decision") != Some("approve") {
        return redirect_to(
            &request.redirect_uri,
            &[("error", "access_denied"), ("state", &request.state)],
        );
    }
    let patient = match patient_of(&state, &auth).await {
        Ok(Some(patient)) => patient,
        Ok(None) => return Error::Forbidden.into_response(),
        Err(error) => return error.into_response(),
    };
    let code = new_secret();
    let now = state.now();
    let grant = NewGrant {
        id: &uuid::Uuid::now_v7().to_string(),
        client: &request.client.id,
        user: auth.user.id,
        patient,
        scope: &request.scope,
        code_hash: &hash_secret(&code),
        redirect_uri: &request.redirect_uri,
        code_challenge: &request.challenge,
        code_expires_at: now + ms(CODE_TTL),
    };
    if let Err(error) = state.store.create_grant(&grant, now).await {
        return Error::from(error).into_response();
    }
    redirect_to(&request.redirect_uri, &[("code", &code), ("state", &request.state)])
}

/// A 303 to `uri` with these query parameters added.
fn redirect_to(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(uri) else {
        return AuthError::Page(
            StatusCode::BAD_REQUEST,
            "the registered redirect_uri is not a URL",
        )
        .into_response();
    };
    url.query_pairs_mut().extend_pairs(pairs);
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    response.headers_mut().insert(header::REFERRER_POLICY, "no-referrer".parse().expect("static"));
    response
}

/// A small self-contained HTML page that no other site may frame.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\
         <style>body{{font:1rem/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}}\
         button{{font:inherit;padding:.5rem 1rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        html,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// An OAuth error from the token endpoint.
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// `POST /oauth/token` (anonymous, rate limited, body within `MAX_FORM_BYTES`).
pub async fn token(
    State(state): State<AppState>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let bad = |error, text| token_error(StatusCode::BAD_REQUEST, error, text);
    let params = match Params::new(pairs) {
        Ok(params) => params,
        Err(text) => return bad("invalid_request", text),
    };
    let result = match params.get("grant_type") {
        Some("authorization_code") => code_grant(&state, &params).await,
        Some("client_credentials") => client_credentials(&state, &params).await,
        _ => return bad("unsupported_grant_type", "authorization_code or client_credentials"),
    };
    match result {
        Ok(body) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
            Json(body),
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn code_grant(state: &AppState, params: &Params) -> Result<serde_json::Value, Response> {
    let refused = |text| token_error(StatusCode::BAD_REQUEST, "invalid_grant", text);
    let code = params.get("code").filter(|c| smart::is_token(c)).ok_or(refused("no valid code"))?;
    let now = state.now();
    let taken = state
        .store
        .take_code(&hash_secret(code), now)
        .await
        .map_err(|e| Error::from(e).into_response())?
        .ok_or(refused("the code is unknown, expired, used or revoked"))?;
    // The code is spent now whatever follows: a wrong verifier cannot be retried.
    if params.get("client_id") != Some(taken.client.as_str())
        || params.get("redirect_uri") != Some(taken.redirect_uri.as_str())
        || !smart::pkce_matches(
            params.get("code_verifier").unwrap_or_default(),
            &taken.code_challenge,
        )
    {
        return Err(refused("the client, redirect_uri or code_verifier does not match the code"));
    }
    let token = new_secret();
    state
        .store
        .create_token(
            &hash_secret(&token),
            &taken.client,
            Some(&taken.grant),
            &taken.scope,
            now + ms(TOKEN_TTL),
        )
        .await
        .map_err(|e| Error::from(e).into_response())?;
    Ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL.as_secs(),
        "scope": taken.scope,
        "patient": taken.patient.to_string(),
    }))
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn client_credentials(
    state: &AppState,
    params: &Params,
) -> Result<serde_json::Value, Response> {
    let unauthorized = |text| token_error(StatusCode::UNAUTHORIZED, "invalid_client", text);
    if params.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion_type must be jwt-bearer",
        ));
    }
    let assertion = params.get("client_assertion").unwrap_or_default();
    if assertion.len() > smart::MAX_ASSERTION_BYTES {
        return Err(unauthorized("the client assertion is too large"));
    }
    let client_id = claimed_issuer(assertion).ok_or(unauthorized("malformed client assertion"))?;
    let client = state
        .store
        .smart_client(&client_id)
        .await
        .map_err(|e| Error::from(e).into_response())?
        .ok_or(unauthorized("unknown client"))?;
    let Some((clinic, jwks)) = &client.system else {
        return Err(unauthorized("not a clinic system"));
    };
    let now_s = state.now() / 1000;
    let verified = assertion::verify(assertion, &client.id, jwks, &token_url(state), now_s)
        .map_err(unauthorized)?;
    let fresh = state
        .store
        .use_assertion(&client.id, &verified.jti, verified.exp.saturating_mul(1000), state.now())
        .await
        .map_err(|e| Error::from(e).into_response())?;
    if !fresh {
        return Err(unauthorized("this client assertion (jti) was used before"));
    }
    let scope = smart::system_scope(params.get("scope").unwrap_or_default())
        .map_err(|text| token_error(StatusCode::BAD_REQUEST, "invalid_scope", text))?;
    let token = new_secret();
    state
        .store
        .create_token(&hash_secret(&token), &client.id, None, &scope, state.now() + ms(TOKEN_TTL))
        .await
        .map_err(|e| Error::from(e).into_response())?;
    tracing::info!(client = %client.id, %clinic, "clinic system token issued");
    Ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL.as_secs(),
        "scope": scope,
    }))
}

/// The `iss` an assertion claims, read (unverified) only to find whose
/// keys verify it; the caller has bounded its size.
fn claimed_issuer(assertion: &str) -> Option<String> {
    use base64::Engine;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value["iss"].as_str().filter(|i| !i.is_empty() && i.len() <= 128).map(str::to_owned)
}

/// `GET /api/smart/apps` (session): the apps the person let read a record.
pub async fn apps(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<AuthorizedApp>>, Error> {
    Ok(Json(state.store.user_grants(auth.user.id).await?))
}

/// `DELETE /api/smart/apps/{id}` (session): removes one app's access at
/// once (its tokens answer 401 from the next request).
pub async fn revoke_app(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    if id.len() > 64 || !state.store.revoke_grant(auth.user.id, &id, state.now()).await? {
        return Err(Error::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A clinic system to register.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSystemClient {
    name: String,
    /// Its public keys, a JWK Set (`assertion::check_jwks`).
    jwks: serde_json::Value,
}

/// `POST /api/system-clients` (session, a clinic admin who used a passkey
/// within `REAUTH_WINDOW`: it hands out the right to import into the
/// clinic's record): registers a clinic system of the admin's clinic with
/// its public keys, as `portal system-client add` does.
pub async fn register_system(
    State(state): State<AppState>,
    auth: AuthUser,
    super::json::Json(body): super::json::Json<NewSystemClient>,
) -> Result<(StatusCode, Json<serde_json::Value>), Error> {
    let clinic = match (auth.user.role, auth.user.clinics.first()) {
        (UserRole::Admin, Some(&clinic)) => clinic,
        _ => return Err(Error::Forbidden),
    };
    auth.require_fresh(state.now())?;
    let jwks = body.jwks.to_string();
    assertion::check_jwks(&jwks).map_err(Error::BadRequest)?;
    let client = SmartClient {
        id: uuid::Uuid::new_v4().to_string(),
        name: smart::client_name(&body.name).map_err(Error::BadRequest)?,
        redirect_uri: None,
        system: Some((clinic, jwks)),
    };
    state.store.create_smart_client(&client, state.now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "client_id": client.id, "token_endpoint": token_url(&state) })),
    ))
}
