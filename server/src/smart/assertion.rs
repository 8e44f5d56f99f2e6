//! SMART Backend Services: a clinic system's client assertion (RFC 7523
//! `private_key_jwt`), verified with `jsonwebtoken` against the JWK Set
//! registered for it. Only ES384 (P-384 keys) and RS384 (RSA keys of 2048
//! bits or more) are accepted, each only with a key of its own kind, so no
//! key can be used under another algorithm (no HMAC with a public key).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{ASSERTION_LEEWAY_S, ASSERTION_MAX_LIFETIME, MAX_ASSERTION_BYTES, MAX_JWKS_BYTES};

/// A JWK Set a clinic system may register: JSON within `MAX_JWKS_BYTES`,
/// one to ten keys, each a P-384 or an RSA (2048 bits or more) public key.
pub fn check_jwks(text: &str) -> Result<JwkSet, String> {
    if text.len() > MAX_JWKS_BYTES {
        return Err(format!("the JWK Set is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWK Set: {e}"))?;
    if set.keys.is_empty() || set.keys.len() > 10 {
        return Err("a JWK Set of one to ten keys is expected".into());
    }
    for key in &set.keys {
        if algorithm_of(key).is_none() {
            return Err("each key must be an EC P-384 (ES384) or RSA of 2048 bits or more (RS384) public key".into());
        }
    }
    Ok(set)
}

/// The one algorithm a key may verify.
fn algorithm_of(key: &Jwk) -> Option<Algorithm> {
    match &key.algorithm {
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P384 => {
            Some(Algorithm::ES384)
        }
        AlgorithmParameters::RSA(rsa) => {
            use base64::Engine;
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            (bits >= 2048).then_some(Algorithm::RS384)
        }
        _ => None,
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
}

/// A verified assertion: its id and when it expires (s), for the replay check.
#[derive(Debug)]
pub struct Verified {
    pub jti: String,
    pub exp: i64,
}

/// Verifies `assertion` from `client` (iss = sub = the client id, aud =
/// `token_url`, signed by one of `jwks`' keys, `exp` within five minutes
/// of `now_s`, not before its `nbf`, a `jti`). The size is checked before
/// anything is parsed. Says why it was refused, in words safe to return.
pub fn verify(
    assertion: &str,
    client: &str,
    jwks: &str,
    token_url: &str,
    now_s: i64,
) -> Result<Verified, &'static str> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err("the client assertion is too large");
    }
    let header =
        jsonwebtoken::decode_header(assertion).map_err(|_| "malformed client assertion")?;
    if !matches!(header.alg, Algorithm::ES384 | Algorithm::RS384) {
        return Err("the client assertion must be signed with ES384 or RS384");
    }
    let set = check_jwks(jwks).map_err(|_| "the client's keys are unusable")?;
    let candidates: Vec<&Jwk> = set
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .filter(|k| algorithm_of(k) == Some(header.alg))
        .collect();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[client]);
    validation.sub = Some(client.to_owned());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    // Time is judged below by the server's clock.
    validation.validate_exp = false;
    validation.leeway = 0;
    let mut claims = None;
    for key in candidates {
        let Ok(decoding) = DecodingKey::from_jwk(key) else { continue };
        if let Ok(data) = jsonwebtoken::decode::<Claims>(assertion, &decoding, &validation) {
            claims = Some(data.claims);
            break;
        }
    }
    let claims = claims.ok_or("the client assertion is not signed by the client's key, or names the wrong issuer or audience")?;
    if claims.iss != client || claims.sub != client {
        return Err("iss and sub must be the client id");
    }
    if claims.exp + ASSERTION_LEEWAY_S <= now_s {
        return Err("the client assertion has expired");
    }
    let max = i64::try_from(ASSERTION_MAX_LIFETIME.as_secs()).unwrap_or(i64::MAX);
    if claims.exp > now_s + max + ASSERTION_LEEWAY_S {
        return Err("the client assertion must expire within five minutes");
    }
    if claims.nbf.is_some_and(|nbf| nbf > now_s + ASSERTION_LEEWAY_S) {
        return Err("the client assertion is not valid yet");
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err("the client assertion needs a jti of at most 256 characters");
    }
    Ok(Verified { jti: claims.jti, exp: claims.exp })
}
