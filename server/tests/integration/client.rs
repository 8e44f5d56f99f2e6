//! A minimal browser for API tests: keeps the session cookie, sends the
//! portal's Origin on every request unless told otherwise, and drives passkey
//! ceremonies with a software authenticator.

use reqwest::Method;
use serde_json::{Value, json};
use server::auth::accounts::{self, Invitation, NewAccount};
use shared::api::UserRole;
use shared::{ClinicId, PatientId};
use testkit::TestServer;

use crate::authenticator::SoftPasskey;

pub struct Browser {
    pub base: String,
    http: reqwest::Client,
    pub cookie: Option<String>,
    /// The `Origin` header sent; None sends none.
    pub origin: Option<String>,
    pub last_set_cookie: Option<String>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
            cookie: None,
            origin: Some(base.to_owned()),
            last_set_cookie: None,
        }
    }

    /// Sends a request; returns the status and the JSON body (Null if none).
    pub async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(origin) = &self.origin {
            request = request.header("origin", origin);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("portal_session={cookie}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            let value =
                set.split(';').next().unwrap().trim_start_matches("portal_session=").to_owned();
            self.cookie = if value.is_empty() { None } else { Some(value) };
            self.last_set_cookie = Some(set);
        }
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            assert!(
                value["error"].is_string() && value["message"].is_string(),
                "{status} {path}: error body {value}"
            );
        }
        (status, value)
    }

    pub async fn get(&mut self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Opens an enrollment link and registers a passkey; returns `/api/me`.
    pub async fn enroll(&mut self, device: &mut SoftPasskey, link: &str) -> Value {
        let (status, me) = self.try_enroll(device, link, &self.base.clone()).await;
        assert_eq!(status, 200, "enrollment: {me}");
        me
    }

    pub async fn try_enroll(
        &mut self,
        device: &mut SoftPasskey,
        link: &str,
        client_origin: &str,
    ) -> (u16, Value) {
        let token = link.split_once('#').expect("token in the fragment").1;
        let (status, started) = self
            .post("/api/enroll/start", json!({ "token": token, "passkey_name": "Test device" }))
            .await;
        if status != 200 {
            return (status, started);
        }
        let credential = device.register(&started["options"], client_origin);
        self.post(
            "/api/enroll/finish",
            json!({ "ceremony": started["ceremony"], "credential": credential }),
        )
        .await
    }

    /// Signs in with the device's newest passkey; returns `/api/me`.
    pub async fn login(&mut self, device: &mut SoftPasskey) -> Value {
        let (status, me) = self.try_login(device, None, &self.base.clone()).await;
        assert_eq!(status, 200, "sign-in: {me}");
        me
    }

    pub async fn try_login(
        &mut self,
        device: &mut SoftPasskey,
        credential: Option<usize>,
        client_origin: &str,
    ) -> (u16, Value) {
        let (status, started) = self.post("/api/login/start", json!({})).await;
        assert_eq!(status, 200, "{started}");
        let assertion = match credential {
            Some(i) => device.assert_with(i, &started["options"], client_origin),
            None => device.assert(&started["options"], client_origin),
        };
        self.post(
            "/api/login/finish",
            json!({ "ceremony": started["ceremony"], "credential": assertion }),
        )
        .await
    }

    /// Adds a passkey while signed in.
    pub async fn add_passkey(&mut self, device: &mut SoftPasskey, name: &str) -> Value {
        let (status, started) =
            self.post("/api/passkeys/register/start", json!({ "name": name })).await;
        assert_eq!(status, 200, "{started}");
        let credential = device.register(&started["options"], &self.base.clone());
        let (status, created) = self
            .post(
                "/api/passkeys/register/finish",
                json!({ "ceremony": started["ceremony"], "credential": credential }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created
    }
}

/// Creates an account as the operator would, at the server's time, and
/// returns its invitation.
pub async fn invite(
    app: &TestServer,
    role: UserRole,
    name: &str,
    clinic: Option<ClinicId>,
    patient: Option<PatientId>,
) -> Invitation {
    let new = NewAccount {
        role,
        display_name: name.into(),
        clinic,
        patient,
        may_message: false,
        created_by: None,
    };
    accounts::create_account(&app.store, &app.base_url, new, app.clock.now_ms())
        .await
        .expect("create account")
}
