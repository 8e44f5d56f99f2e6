//! SMART on FHIR against the real server, on both engines: a patient
//! app's standalone launch (consent, code, PKCE, token, reads within its
//! scopes and patient, audited with its name, revoked), and a clinic
//! system's Backend Services token (signed JWT) importing a Bundle that
//! the patient's open sync connection receives live; and a scripted app
//! doing the whole standalone launch as a browser and an app would (the
//! patient signs in with her passkey, approves on the consent page, the
//! app exchanges the code with its PKCE verifier and reads `$everything`).

use std::path::PathBuf;
use std::time::Duration;

use automerge::Automerge;
use autosurgeon::hydrate;
use shared::schema::{ClinicalRecord, DocKind};
use shared::sync::SyncClient;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use shared::api::UserRole;
use testkit::{TestDatabase, TestServer};

use crate::BACKENDS;
use crate::authenticator::SoftPasskey;
use crate::client::{Browser, invite};
use crate::fhir::{lab_bundle, portal, seed, sign_in};

const REDIRECT: &str = "https://app.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

fn authorize_query(base: &str, client: &str, scope: &str, state: &str) -> String {
    serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", state),
        ("aud", &format!("{base}/fhir/R4")),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ])
    .unwrap()
}

/// GET /oauth/authorize with the person's session: the status and page.
async fn authorize_page(base: &str, cookie: Option<&str>, query: &str) -> (u16, String) {
    let mut request = http().get(format!("{base}/oauth/authorize?{query}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("portal_session={cookie}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 303 {
        return (status, response.headers()["location"].to_str().unwrap().to_owned());
    }
    (status, response.text().await.unwrap())
}

/// The hidden fields of the consent form.
fn form_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once('"').unwrap();
            let value = rest.split("value=\"").nth(1).unwrap().split('"').next().unwrap();
            (
                name.to_owned(),
                value
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">"),
            )
        })
        .collect()
}

/// Submits the consent page's form (Allow or Deny) as the browser would.
async fn decide(base: &str, cookie: &str, fields: &[(String, String)]) -> reqwest::Response {
    http()
        .post(format!("{base}/oauth/authorize"))
        .header("origin", base)
        .header("cookie", format!("portal_session={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .unwrap()
}

/// The person approves the app on the consent page: the code it is sent.
async fn approve(browser: &Browser, client: &str, scope: &str) -> String {
    let base = &browser.base;
    let cookie = browser.cookie.as_deref().unwrap();
    let (status, page) =
        authorize_page(base, Some(cookie), &authorize_query(base, client, scope, "s-1")).await;
    assert_eq!(status, 200, "{page}");
    let mut fields = form_fields(&page);
    fields.push(("decision".into(), "approve".into()));
    let response = decide(base, cookie, &fields).await;
    assert_eq!(response.status().as_u16(), 303);
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert!(pairs.contains(&("state".into(), "s-1".into())));
    pairs.into_iter().find(|(n, _)| n == "code").unwrap().1
}

async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = http()
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn exchange(
    base: &str,
    client: &str,
    code: &str,
    verifier: &str,
    redirect: &str,
) -> (u16, Value) {
    token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn read(base: &str, token: &str, path: &str) -> (u16, Value) {
    let response = http()
        .get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn kinds(bundle: &Value) -> Vec<String> {
    let mut kinds: Vec<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned())
        .collect();
    kinds.dedup();
    kinds
}

fn add_app(url: &str) -> String {
    let out =
        portal(&["smart-client", "add", "--name", "Pill Pal", "--redirect-uri", REDIRECT], url);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_patient_app_launches_standalone_with_pkce_and_reads_only_what_was_granted() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let demo = seed(&app.store).await;
        let base = app.base_url.clone();
        let client = add_app(&db.url);
        let maria_user = demo.users.iter().find(|u| u.role == UserRole::Patient).unwrap().id;
        let maria = sign_in(&app, maria_user).await;

        // Discovery.
        let config: Value = http()
            .get(format!("{base}/.well-known/smart-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(config["token_endpoint"], format!("{base}/oauth/token"));
        assert_eq!(config["code_challenge_methods_supported"], json!(["S256"]));

        // Refusals before anything is shown: unknown app, wrong redirect
        // (a page, never a redirect), no PKCE or a wrong aud or scope (back to the app).
        let query = authorize_query(&base, "no-such-app", "patient/*.rs", "x");
        assert_eq!(authorize_page(&base, maria.cookie.as_deref(), &query).await.0, 400);
        let query =
            authorize_query(&base, &client, "patient/*.rs", "x").replace("callback", "evil");
        assert_eq!(authorize_page(&base, maria.cookie.as_deref(), &query).await.0, 400);
        let query = authorize_query(&base, &client, "patient/*.rs", "x").replace("S256", "plain");
        let (status, location) = authorize_page(&base, maria.cookie.as_deref(), &query).await;
        assert_eq!(status, 303);
        assert!(
            location.starts_with(REDIRECT) && location.contains("error=invalid_request"),
            "{location}"
        );
        let query =
            authorize_query(&base, &client, "patient/*.rs", "x").replace("fhir%2FR4", "other");
        assert!(
            authorize_page(&base, maria.cookie.as_deref(), &query)
                .await
                .1
                .contains("error=invalid_request")
        );
        let query = authorize_query(&base, &client, "patient/*.cruds", "x");
        assert!(
            authorize_page(&base, maria.cookie.as_deref(), &query)
                .await
                .1
                .contains("error=invalid_scope")
        );
        // Without a session: a page asking to sign in first, and no form.
        let query = authorize_query(&base, &client, "patient/*.rs", "x");
        let (status, page) = authorize_page(&base, None, &query).await;
        assert_eq!(status, 200);
        assert!(page.contains("sign in to the portal") && !page.contains("<form"), "{page}");
        // The consent page names the app and the record; a forged form is refused.
        let (_, page) = authorize_page(&base, maria.cookie.as_deref(), &query).await;
        assert!(page.contains("Pill Pal") && page.contains("your record"), "{page}");
        let mut forged = form_fields(&page);
        forged.retain(|(n, _)| n != "csrf");
        forged.push(("csrf".into(), "0".repeat(64)));
        forged.push(("decision".into(), "approve".into()));
        let response = decide(&base, maria.cookie.as_deref().unwrap(), &forged).await;
        assert_eq!(response.status().as_u16(), 403);

        // A wrong verifier spends the code; the right one after it is refused.
        let code = approve(&maria, &client, "launch/patient patient/*.rs").await;
        let wrong = "x".repeat(43);
        assert_eq!(exchange(&base, &client, &code, &wrong, REDIRECT).await.0, 400);
        assert_eq!(exchange(&base, &client, &code, VERIFIER, REDIRECT).await.0, 400);
        // A wrong redirect_uri is refused.
        let code = approve(&maria, &client, "patient/*.rs").await;
        let (status, body) =
            exchange(&base, &client, &code, VERIFIER, "https://app.example/other").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
        // An expired code is refused.
        let code = approve(&maria, &client, "patient/*.rs").await;
        app.clock.advance(std::time::Duration::from_secs(61));
        assert_eq!(exchange(&base, &client, &code, VERIFIER, REDIRECT).await.0, 400);
        // A code used twice: refused, and the token it gave is revoked.
        let code = approve(&maria, &client, "patient/*.rs").await;
        let (status, body) = exchange(&base, &client, &code, VERIFIER, REDIRECT).await;
        assert_eq!(status, 200, "{body}");
        let first = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(exchange(&base, &client, &code, VERIFIER, REDIRECT).await.0, 400);
        let path = format!("/fhir/R4/Patient/{}/$everything", demo.maria);
        assert_eq!(read(&base, &first, &path).await.0, 401);

        // The launch that works.
        let code = approve(&maria, &client, "launch/patient openid fhirUser patient/*.rs").await;
        let (status, body) = exchange(&base, &client, &code, VERIFIER, REDIRECT).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["patient"], demo.maria.to_string());
        assert_eq!(body["scope"], "launch/patient patient/*.rs");
        assert_eq!(body["expires_in"], 3600);
        let bearer = body["access_token"].as_str().unwrap().to_owned();
        // Her whole record, as her own session reads it.
        let (status, everything) = read(&base, &bearer, &path).await;
        assert_eq!(status, 200, "{everything}");
        let own: Value = http()
            .get(format!("{base}{path}"))
            .header("cookie", format!("portal_session={}", maria.cookie.as_deref().unwrap()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            everything["entry"].as_array().unwrap().len(),
            own["entry"].as_array().unwrap().len()
        );
        let (status, search) = read(&base, &bearer, "/fhir/R4/Observation").await;
        assert_eq!(status, 200);
        assert!(!search["entry"].as_array().unwrap().is_empty());
        // Only her record: James's is as if it did not exist.
        assert_eq!(read(&base, &bearer, &format!("/fhir/R4/Patient/{}", demo.james)).await.0, 404);
        let james_search = format!("/fhir/R4/Observation?patient={}", demo.james);
        assert_eq!(read(&base, &bearer, &james_search).await.0, 404);
        // A patient app's token cannot import.
        let response = http()
            .post(format!("{base}/fhir/R4"))
            .header("authorization", format!("Bearer {bearer}"))
            .body(serde_json::to_vec(&lab_bundle(demo.maria, 4.0)).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403);
        // Each read is in her access log, naming the app.
        let log = app.store.patient_audit(demo.maria, 20).await.unwrap();
        assert!(
            log.iter().any(|e| e.detail == "FHIR $everything by the app \"Pill Pal\""),
            "{log:?}"
        );
        assert!(log.iter().any(|e| e.detail == "FHIR Observation search by the app \"Pill Pal\""));

        // Her apps, and removing one: its token answers 401 at once.
        let mut maria = maria;
        let (status, apps) = maria.get("/api/smart/apps").await;
        assert_eq!(status, 200);
        let live: Vec<&Value> = apps.as_array().unwrap().iter().collect();
        // Live: the grants whose codes were spent by a wrong redirect or
        // left to expire, and the one that works (replays revoked theirs).
        assert_eq!(live.len(), 3, "{apps}");
        let newest = live[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(live[0]["app"], "Pill Pal");
        let (status, _) =
            maria.call(reqwest::Method::DELETE, &format!("/api/smart/apps/{newest}"), None).await;
        assert_eq!(status, 204);
        assert_eq!(read(&base, &bearer, &path).await.0, 401);
        // Someone else's grant cannot be removed by her (404).
        let (status, _) =
            maria.call(reqwest::Method::DELETE, &format!("/api/smart/apps/{newest}"), None).await;
        assert_eq!(status, 404);

        // Signing out everywhere ends every app's access.
        let code = approve(&maria, &client, "patient/*.rs").await;
        let bearer = exchange(&base, &client, &code, VERIFIER, REDIRECT).await.1["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(read(&base, &bearer, &path).await.0, 200);
        let (status, _) = maria.post("/api/logout-all", json!({})).await;
        assert_eq!(status, 204);
        assert_eq!(read(&base, &bearer, &path).await.0, 401);
        app.stop().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn a_caregivers_app_reads_the_patients_record_within_its_scope() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let demo = seed(&app.store).await;
        let base = app.base_url.clone();
        let client = add_app(&db.url);
        let invitation =
            invite(&app, UserRole::Caregiver, "Ana Santos", None, Some(demo.maria)).await;
        let mut carer = Browser::new(&base);
        carer.enroll(&mut SoftPasskey::new(), &invitation.link).await;

        let query = authorize_query(&base, &client, "patient/Observation.rs", "s-1");
        let (_, page) = authorize_page(&base, carer.cookie.as_deref(), &query).await;
        assert!(page.contains("whom you care for") && page.contains("Observation"), "{page}");
        let code = approve(&carer, &client, "patient/Observation.rs").await;
        let (status, body) = exchange(&base, &client, &code, VERIFIER, REDIRECT).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["patient"], demo.maria.to_string());
        let bearer = body["access_token"].as_str().unwrap();
        assert_eq!(read(&base, bearer, "/fhir/R4/Observation").await.0, 200);
        // Outside the scope: refused, and $everything holds only Observations.
        let (status, outcome) = read(&base, bearer, "/fhir/R4/MedicationRequest").await;
        assert_eq!((status, outcome["resourceType"].as_str()), (403, Some("OperationOutcome")));
        assert_eq!(read(&base, bearer, &format!("/fhir/R4/Patient/{}", demo.maria)).await.0, 403);
        let (status, everything) =
            read(&base, bearer, &format!("/fhir/R4/Patient/{}/$everything", demo.maria)).await;
        assert_eq!(status, 200);
        assert_eq!(kinds(&everything), ["Observation"]);
        let log = app.store.patient_audit(demo.maria, 10).await.unwrap();
        assert!(log.iter().any(|e| e.detail.ends_with("by the app \"Pill Pal\"")
            && e.user_name.as_deref() == Some("Ana Santos")));

        // A provider cannot connect a patient app.
        let provider = demo.users.iter().find(|u| u.role == UserRole::Provider).unwrap().id;
        let okafor = sign_in(&app, provider).await;
        assert_eq!(authorize_page(&base, okafor.cookie.as_deref(), &query).await.0, 403);

        // The caregiver's access ends: so does the app's.
        app.store.revoke_user(invitation.user.id, app.clock.now_ms()).await.unwrap();
        assert_eq!(read(&base, bearer, "/fhir/R4/Observation").await.0, 401);
        app.stop().await;
        db.drop_database().await;
    }
}

/// A P-384 key: its PKCS#8 DER and its public JWK Set.
fn p384(kid: &str) -> (Vec<u8>, Value) {
    let group = EcGroup::from_curve_name(Nid::SECP384R1).unwrap();
    let key = EcKey::generate(&group).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    key.public_key().affine_coordinates(&group, &mut x, &mut y, &mut ctx).unwrap();
    let b64 = |n: &BigNum| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.to_vec_padded(48).unwrap())
    };
    let der = openssl::pkey::PKey::from_ec_key(key).unwrap().private_key_to_pkcs8().unwrap();
    let jwks = json!({ "keys": [{ "kty": "EC", "crv": "P-384", "x": b64(&x), "y": b64(&y), "kid": kid, "alg": "ES384", "use": "sig" }] });
    (der, jwks)
}

fn assertion(pem: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(pem)).unwrap()
}

#[tokio::test]
async fn a_clinic_system_imports_with_a_signed_jwt_and_nothing_else() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let demo = seed(&app.store).await;
        let base = app.base_url.clone();
        let (pem, jwks) = p384("lis-1");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, jwks.to_string()).unwrap();
        let riverside = demo.riverside.to_string();
        let out = portal(
            &[
                "system-client",
                "add",
                "--clinic",
                &riverside,
                "--name",
                "Riverside LIS",
                "--jwks",
                file.to_str().unwrap(),
            ],
            &db.url,
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let client = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let token_url = format!("{base}/oauth/token");
        let now = app.clock.now_ms() / 1000;
        let claims = |jti: &str, aud: &str, exp: i64| json!({ "iss": client, "sub": client, "aud": aud, "exp": exp, "jti": jti });
        let ask = |jwt: String| ask_token(base.clone(), jwt);

        // Refused: another key's signature, expired, too long-lived, wrong aud.
        let (other, _) = p384("lis-1");
        let (status, body) =
            ask(assertion(&other, "lis-1", &claims("a", &token_url, now + 60))).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
        assert_eq!(ask(assertion(&pem, "lis-1", &claims("b", &token_url, now - 120))).await.0, 401);
        assert_eq!(ask(assertion(&pem, "lis-1", &claims("c", &token_url, now + 900))).await.0, 401);
        assert_eq!(
            ask(assertion(&pem, "lis-1", &claims("d", &format!("{base}/fhir/R4"), now + 60)))
                .await
                .0,
            401
        );

        // A valid one, once.
        let jwt = assertion(&pem, "lis-1", &claims("e", &token_url, now + 240));
        let (status, body) = ask(jwt.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["scope"], "system/*.c");
        assert!(body.get("patient").is_none());
        assert_eq!(ask(jwt).await.0, 401, "a replayed jti is refused");
        let bearer = body["access_token"].as_str().unwrap().to_owned();

        // Maria's phone is online: her own session's sync connection holds
        // her Riverside record.
        let maria_user = demo.users.iter().find(|u| u.role == UserRole::Patient).unwrap().id;
        let maria = sign_in(&app, maria_user).await;
        let doc = DocKind::ClinicalRecord { patient: demo.maria, clinic: demo.riverside }.doc_id();
        let mut sync = SyncClient::new(format!("phone-{}", uuid::Uuid::now_v7().simple()));
        sync.insert(doc, Automerge::new());
        let headers = [
            ("cookie", format!("portal_session={}", maria.cookie.as_deref().unwrap())),
            ("origin", base.clone()),
        ];
        let url = format!("{}/sync", base.replacen("http", "ws", 1));
        let mut phone = testkit::Replica::connect(&url, &headers, sync).await.unwrap();
        phone.sync_all(Duration::from_secs(30)).await.unwrap();
        let results = |c: &SyncClient| {
            c.doc(doc).map_or(0, |d| hydrate::<_, ClinicalRecord>(d).unwrap().observations.len())
        };
        let before = results(&phone.client);
        assert!(before > 0, "her record arrived");

        // It imports into Riverside's record, attributed to the system.
        let response = http()
            .post(format!("{base}/fhir/R4"))
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(&lab_bundle(demo.maria, 4.1)).unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{backend:?}: {body}");
        assert_eq!(body["type"], "transaction-response");
        // The new result reaches her phone live, without her asking, with
        // the clinic's import account as its recorder.
        phone.sync_until(Duration::from_secs(30), |c, _| results(c) == before + 1).await.unwrap();
        let record: ClinicalRecord = hydrate(phone.client.doc(doc).unwrap()).unwrap();
        let imported: Vec<_> = record
            .observations
            .values()
            .filter(|o| o.provenance.recorder_name.ends_with("(FHIR import)"))
            .collect();
        assert_eq!(imported.len(), 1, "{:?}", record.observations.values().last());
        assert_eq!((imported[0].loinc.as_str(), imported[0].value_quantity), ("2823-3", Some(4.1)));
        phone.close().await;
        let log = app.store.patient_audit(demo.maria, 10).await.unwrap();
        assert!(
            log.iter().any(|e| e.detail == "fhir import by the clinic system \"Riverside LIS\""),
            "{log:?}"
        );
        // Not another clinic's record, and it reads nothing.
        let response = http()
            .post(format!("{base}/fhir/R4?clinic={}", demo.northgate))
            .header("authorization", format!("Bearer {bearer}"))
            .body(serde_json::to_vec(&lab_bundle(demo.maria, 4.1)).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403);
        let path = format!("/fhir/R4/Patient/{}/$everything", demo.maria);
        assert_eq!(read(&base, &bearer, &path).await.0, 403);

        // A clinic admin registers a system through the API (for their
        // own clinic; a provider may not), and its key gets a token.
        let (pem2, jwks2) = p384("lis-2");
        let body = json!({ "name": "Second LIS", "jwks": jwks2 });
        let provider = demo.users.iter().find(|u| u.role == UserRole::Provider).unwrap().id;
        let mut okafor = sign_in(&app, provider).await;
        assert_eq!(okafor.post("/api/system-clients", body.clone()).await.0, 403);
        let admin = demo.users.iter().find(|u| u.role == UserRole::Admin).unwrap().id;
        let mut admin = sign_in(&app, admin).await;
        let (status, created) = admin.post("/api/system-clients", body).await;
        assert_eq!(status, 201, "{created}");
        let second = created["client_id"].as_str().unwrap();
        let claims =
            json!({ "iss": second, "sub": second, "aud": token_url, "exp": now + 60, "jti": "f" });
        let (status, body) = ask(assertion(&pem2, "lis-2", &claims)).await;
        assert_eq!((status, body["scope"].as_str()), (200, Some("system/*.c")), "{body}");
        app.stop().await;
        db.drop_database().await;
    }
}

/// A client credentials grant with this assertion.
async fn ask_token(base: String, jwt: String) -> (u16, Value) {
    token(
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &jwt),
            ("scope", "system/*.cruds"),
        ],
    )
    .await
}

/// A fresh PKCE pair, as an app makes one per launch: a random verifier
/// and its S256 challenge (RFC 7636).
fn pkce() -> (String, String) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rand::RngCore;
    use sha2::Digest;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The `href` of the page's link whose text is `text`, unescaped.
fn link(page: &str, text: &str) -> String {
    let end = page.find(&format!("\">{text}</a>")).unwrap_or_else(|| panic!("no {text}: {page}"));
    let start = page[..end].rfind("href=\"").unwrap() + "href=\"".len();
    page[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn a_scripted_app_completes_the_launch_after_a_passkey_sign_in_and_reads_everything() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let demo = seed(&app.store).await;
        let base = app.base_url.clone();
        let client = add_app(&db.url);
        // Maria has a passkey on her phone from when she enrolled.
        let maria_user = demo.users.iter().find(|u| u.role == UserRole::Patient).unwrap().id;
        let (enrollment, _) = server::auth::accounts::issue_enrollment(
            &app.store,
            &app.base_url,
            maria_user,
            None,
            app.clock.now_ms(),
        )
        .await
        .unwrap();
        let mut phone = SoftPasskey::new();
        Browser::new(&base).enroll(&mut phone, &enrollment).await;

        // The app discovers the endpoints from the FHIR base it was given;
        // reading without a token (or with a bad one) answers 401 with a
        // Bearer challenge (RFC 6750).
        let fhir_base = format!("{base}/fhir/R4");
        for authorization in [None, Some("Bearer not-a-token")] {
            let mut request = http().get(format!("{fhir_base}/Patient/{}/$everything", demo.maria));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 401);
            assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"fhir\"");
        }
        let config: Value = http()
            .get(format!("{fhir_base}/.well-known/smart-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let authorize_endpoint = config["authorization_endpoint"].as_str().unwrap().to_owned();
        let token_endpoint = config["token_endpoint"].as_str().unwrap().to_owned();
        assert!(config["capabilities"].as_array().unwrap().contains(&json!("launch-standalone")));

        // It sends her browser to the portal with a fresh PKCE challenge.
        let (verifier, challenge) = pkce();
        let launch = format!(
            "{authorize_endpoint}?{}",
            serde_urlencoded::to_string([
                ("response_type", "code"),
                ("client_id", client.as_str()),
                ("redirect_uri", REDIRECT),
                ("scope", "launch/patient openid fhirUser patient/*.rs"),
                ("state", "launch-7"),
                ("aud", fhir_base.as_str()),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .unwrap()
        );
        // Not signed in in this browser: a page to sign in, with no form.
        let mut browser = Browser::new(&base);
        let page = http().get(&launch).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("Pill Pal") && !page.contains("<form"), "{page}");
        let again = link(&page, "Continue");
        // She signs in with her passkey (a WebAuthn assertion, no enrollment)...
        let me = browser.login(&mut phone).await;
        assert_eq!(me["user_id"], maria_user.to_string(), "{me}");
        assert!(me["passkey_id"].is_string(), "a session signed in with a passkey: {me}");
        // ...continues, and the consent page names the app and her record.
        let cookie = browser.cookie.clone().unwrap();
        let response = http()
            .get(format!("{base}{again}"))
            .header("cookie", format!("portal_session={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let page = response.text().await.unwrap();
        assert!(page.contains("<form") && page.contains("your record"), "{page}");
        assert!(page.contains("Pill Pal") && page.contains("Maria Santos"), "{page}");
        let mut fields = form_fields(&page);
        assert!(fields.contains(&("code_challenge".into(), challenge.clone())));
        // Allow.
        fields.push(("decision".into(), "approve".into()));
        let response = decide(&base, &cookie, &fields).await;
        assert_eq!(response.status().as_u16(), 303);
        let back = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(REDIRECT), "{back}");
        let back: Vec<(String, String)> = back.query_pairs().into_owned().collect();
        assert!(back.contains(&("state".into(), "launch-7".into())));
        let code = back.into_iter().find(|(n, _)| n == "code").unwrap().1;

        // The app exchanges the code with its verifier.
        let response = http()
            .post(&token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("client_id", client.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", verifier.as_str()),
                ])
                .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let tokens: Value = response.json().await.unwrap();
        assert_eq!(tokens["patient"], demo.maria.to_string(), "{tokens}");
        let bearer = tokens["access_token"].as_str().unwrap();

        // And reads her whole record.
        let path = format!("/fhir/R4/Patient/{}/$everything", tokens["patient"].as_str().unwrap());
        let (status, everything) = read(&base, bearer, &path).await;
        assert_eq!(status, 200, "{everything}");
        assert_eq!(everything["type"], "searchset");
        let kinds = kinds(&everything);
        for kind in [
            "Patient",
            "Organization",
            "Practitioner",
            "DiagnosticReport",
            "Observation",
            "MedicationRequest",
            "AllergyIntolerance",
            "Immunization",
            "Appointment",
            "Communication",
            "Provenance",
        ] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
        }
        let patient = everything["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["resource"]["resourceType"] == "Patient")
            .unwrap();
        assert_eq!(patient["resource"]["id"], demo.maria.to_string());
        let log = app.store.patient_audit(demo.maria, 20).await.unwrap();
        assert!(log.iter().any(|e| e.detail == "FHIR $everything by the app \"Pill Pal\""));

        // Deny, on the same page, sends the app away with nothing.
        let (_, challenge) = pkce();
        let denied = launch.replace(
            &format!("code_challenge={}", challenge_in(&launch)),
            &format!("code_challenge={challenge}"),
        );
        let query = denied.split_once('?').unwrap().1;
        let (_, page) = authorize_page(&base, Some(&cookie), query).await;
        let mut fields = form_fields(&page);
        fields.push(("decision".into(), "deny".into()));
        let response = decide(&base, &cookie, &fields).await;
        assert_eq!(response.status().as_u16(), 303);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.contains("error=access_denied") && !location.contains("code="));
        app.stop().await;
        db.drop_database().await;
    }
}

fn challenge_in(url: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(n, _)| n == "code_challenge")
        .unwrap()
        .1
        .into_owned()
}
