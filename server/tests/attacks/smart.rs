//! Hostile SMART on FHIR requests: junk Bearer tokens on the FHIR API (also
//! next to a live session cookie, which a request with a token never
//! uses), junk codes, and client assertions that are oversized, deeply
//! nested, unsigned or signed with a key used as an HMAC secret. Each is
//! refused (401 or 400, 413 past the form limit) before any lookup it
//! does not need, nothing is stored or audited, nothing is logged, and
//! memory and `/healthz` stay within the bounds every attack here meets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::portal::under_attack;
use super::{MARKER, SERIAL, World};

/// Requests of each junk FHIR read at once.
const AT_ONCE: usize = 20;

fn jwt(header: &str, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_tokens_and_hostile_assertions_are_refused_and_change_nothing() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let base = world.portal.base.clone();
    let patient = world.maria.patient();
    // A registered clinic system, so assertions naming it reach verification.
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-384","kid":"k","x":"iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7","y":"iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7"}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks).unwrap();
    let clinic = world.store.clinics().await.unwrap()[0].0.to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portal"))
        .args(["system-client", "add", "--clinic", &clinic, "--name", "LIS"])
        .args(["--jwks", file.to_str().unwrap(), "--database-url", &world.portal.database_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let claims = format!(
        r#"{{"iss":"{client}","sub":"{client}","aud":"{base}/oauth/token","exp":4102444800,"jti":"{MARKER}"}}"#
    );
    let nested = format!(r#"{{"iss":"{client}","x":{}{}}}"#, "[".repeat(3_000), "]".repeat(3_000));
    let assertions: Vec<(&str, String, u16)> = vec![
        (
            "an assertion over 8 KiB",
            jwt(r#"{"alg":"ES384"}"#, &claims, MARKER.repeat(300).as_bytes()),
            401,
        ),
        ("nested three thousand deep", jwt(r#"{"alg":"ES384"}"#, &nested, b"x"), 401),
        ("unsigned (alg none)", jwt(r#"{"alg":"none"}"#, &claims, b""), 401),
        ("HS384 with the public key as secret", jwt(r#"{"alg":"HS384"}"#, &claims, &[7; 48]), 401),
        (
            "ES384 with a junk signature",
            jwt(r#"{"alg":"ES384","kid":"k"}"#, &claims, &[1; 96]),
            401,
        ),
        ("a form over 16 KiB", MARKER.repeat(600), 413),
    ];
    let junk_bearers: Vec<(&str, String)> = vec![
        ("unknown token", MARKER.to_owned()),
        ("overlong token", "A".repeat(10_000)),
        ("not base64url", format!("{MARKER}!$%")),
        ("empty", String::new()),
        ("other scheme", format!("Basic {MARKER}")),
    ];
    let http = reqwest::Client::new();
    let token_url = format!("{base}/oauth/token");
    let fhir_url = format!("{base}/fhir/R4/Patient/{patient}/$everything");
    let cookie = world.maria.headers().into_iter().find(|(h, _)| *h == "cookie").unwrap().1;
    let attack = async {
        let mut statuses = Vec::new();
        // The token endpoint is rate limited like sign-in: a few of each.
        for (name, assertion, expected) in &assertions {
            let body = serde_urlencoded::to_string([
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion),
                ("scope", "system/*.c"),
            ])
            .unwrap();
            for _ in 0..2 {
                let response = http
                    .post(&token_url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone())
                    .send()
                    .await;
                statuses.push((*name, response.map(|r| r.status().as_u16()), *expected));
            }
        }
        for code in [MARKER.to_owned(), "B".repeat(5_000)] {
            let body = serde_urlencoded::to_string([
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &client),
                ("redirect_uri", "https://x.example/"),
                ("code_verifier", &"v".repeat(43)),
            ])
            .unwrap();
            let response = http
                .post(&token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await;
            statuses.push(("a junk code", response.map(|r| r.status().as_u16()), 400));
        }
        // Junk Bearer tokens on the FHIR API, many at once, with and
        // without Maria's live session cookie beside them.
        let mut reads = Vec::new();
        for (name, bearer) in &junk_bearers {
            for i in 0..AT_ONCE {
                let value = if bearer.starts_with("Basic ") {
                    bearer.clone()
                } else {
                    format!("Bearer {bearer}")
                };
                let mut request = http.get(&fhir_url).header("authorization", value);
                if i % 2 == 0 {
                    request = request.header("cookie", &cookie);
                }
                reads.push(async move {
                    (*name, request.send().await.map(|r| r.status().as_u16()), 401)
                });
            }
        }
        statuses.extend(futures::future::join_all(reads).await);
        statuses
    };
    let (statuses, _) =
        under_attack(&world.portal, "junk SMART tokens and assertions", attack).await;
    for (name, status, expected) in statuses {
        assert_eq!(status.expect("an answer"), expected, "{name}");
    }
    world.unharmed(&before, "junk SMART tokens and assertions").await;
}
