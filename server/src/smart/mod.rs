//! SMART on FHIR: what a client may ask for and prove, without I/O.
//!
//! Patient apps (App Launch 2.0, standalone launch, public clients) get
//! an authorization code for a person's approval and trade it, with the
//! PKCE verifier, for an access token bound to that person and one
//! patient. Clinic systems (Backend Services) trade a JWT signed with a
//! registered key for a token that may only import into their clinic.
//! Tokens are 32 random bytes; the database holds their SHA-256.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// An authorization code is valid this long.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// An access token is valid this long.
pub const TOKEN_TTL: Duration = Duration::from_secs(60 * 60);
/// A client assertion may live at most this long (SMART Backend Services).
pub const ASSERTION_MAX_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Clock skew allowed on a client assertion's `exp` and `nbf`.
pub const ASSERTION_LEEWAY_S: i64 = 30;

/// Longest client assertion read (bytes), checked before it is parsed: an
/// RS384 JWT with a 4096-bit key is under 1.5 KiB.
pub const MAX_ASSERTION_BYTES: usize = 8 * 1024;
/// Largest body of `/oauth/token` and the consent form.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Longest `scope`, `state`, `redirect_uri` or other parameter accepted.
pub const MAX_PARAM_BYTES: usize = 1024;
/// Most scopes in one request.
pub const MAX_SCOPES: usize = 16;
/// Longest access token or code accepted (ours are 43 characters).
pub const MAX_TOKEN_BYTES: usize = 128;
/// Largest JWK Set registered for a clinic system.
pub const MAX_JWKS_BYTES: usize = 16 * 1024;

/// Resource types the read API serves (what `shared::fhir::export` makes).
pub const READ_TYPES: &[&str] = &[
    "Patient",
    "Observation",
    "DiagnosticReport",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
    "Appointment",
    "Communication",
    "Task",
    "Provenance",
    "Organization",
    "Practitioner",
];

/// Resource types a transaction Bundle imports (`shared::fhir::import`).
pub const IMPORT_TYPES: &[&str] =
    &["Observation", "DiagnosticReport", "MedicationRequest", "AllergyIntolerance"];

/// The scopes to grant a patient app for a requested `scope`, normalized
/// (`launch/patient` and `patient/<Type>.rs` or `patient/*.rs`; `openid`
/// and `fhirUser` are accepted but not granted: no id token is issued).
/// Anything else, or no patient scope at all, is refused.
pub fn patient_scope(requested: &str) -> Result<String, &'static str> {
    let words: Vec<&str> = requested.split(' ').filter(|w| !w.is_empty()).collect();
    if requested.len() > MAX_PARAM_BYTES || words.len() > MAX_SCOPES {
        return Err("too many scopes");
    }
    let mut granted: Vec<&str> = Vec::new();
    for word in words {
        let allowed = match word {
            "launch/patient" => true,
            "openid" | "fhirUser" => continue,
            _ => word
                .strip_prefix("patient/")
                .and_then(|rest| rest.strip_suffix(".rs"))
                .is_some_and(|kind| kind == "*" || READ_TYPES.contains(&kind)),
        };
        if !allowed {
            return Err("only launch/patient, openid, fhirUser and patient/<type>.rs are offered");
        }
        if !granted.contains(&word) {
            granted.push(word);
        }
    }
    if !granted.iter().any(|w| w.starts_with("patient/")) {
        return Err("ask for at least one patient/<type>.rs scope");
    }
    Ok(granted.join(" "))
}

/// The scopes to grant a clinic system: each requested `system/<Type>.<perms>`
/// (SMART v2 permissions, in the order `cruds`) that includes create, on
/// `*` or a type imports take, becomes `system/<Type>.c`: a clinic system
/// may only import. Nothing grantable is refused.
pub fn system_scope(requested: &str) -> Result<String, &'static str> {
    let words: Vec<&str> = requested.split(' ').filter(|w| !w.is_empty()).collect();
    if requested.len() > MAX_PARAM_BYTES || words.len() > MAX_SCOPES {
        return Err("too many scopes");
    }
    let mut granted: Vec<String> = Vec::new();
    for word in words {
        let Some((kind, perms)) = word.strip_prefix("system/").and_then(|r| r.split_once('.'))
        else {
            continue;
        };
        let ordered = !perms.is_empty()
            && perms.chars().all(|c| "cruds".contains(c))
            && perms.chars().map(|c| "cruds".find(c)).is_sorted_by(|a, b| a < b);
        if ordered && perms.contains('c') && (kind == "*" || IMPORT_TYPES.contains(&kind)) {
            let scope = format!("system/{kind}.c");
            if !granted.contains(&scope) {
                granted.push(scope);
            }
        }
    }
    if granted.is_empty() {
        return Err(
            "a clinic system may ask for system/*.c or system/<type>.c of the imported types",
        );
    }
    Ok(granted.join(" "))
}

/// What a granted scope string allows.
#[derive(Clone, Debug)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn new(granted: &str) -> Self {
        Self(granted.split(' ').map(str::to_owned).collect())
    }

    /// Whether a patient app may read resources of this type.
    pub fn reads(&self, kind: &str) -> bool {
        self.0.iter().any(|s| s == "patient/*.rs" || *s == format!("patient/{kind}.rs"))
    }

    /// Whether a clinic system may create resources of this type.
    pub fn creates(&self, kind: &str) -> bool {
        self.0.iter().any(|s| s == "system/*.c" || *s == format!("system/{kind}.c"))
    }
}

/// Whether `verifier` is a PKCE code verifier (RFC 7636: 43 to 128
/// unreserved characters) whose S256 challenge is `challenge`; compared
/// in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && constant_time_eq(&s256(verifier), challenge)
}

/// `BASE64URL(SHA256(text))`, PKCE's S256.
pub fn s256(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

/// Whether a code challenge has S256's shape (43 base64url characters).
pub fn is_challenge(text: &str) -> bool {
    text.len() == 43 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `text` may be a token or code of ours (checked before any lookup).
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_TOKEN_BYTES
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A client's name as people read it on the consent page and in access
/// logs: 1 to 100 characters, no control characters.
pub fn client_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("a name of 1 to 100 characters is needed".into());
    }
    Ok(name.to_owned())
}

pub mod assertion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_scopes_are_limited_to_reads() {
        assert_eq!(
            patient_scope("launch/patient openid fhirUser patient/Observation.rs").unwrap(),
            "launch/patient patient/Observation.rs"
        );
        assert_eq!(patient_scope("patient/*.rs patient/*.rs").unwrap(), "patient/*.rs");
        assert!(patient_scope("patient/*.cruds").is_err());
        assert!(patient_scope("user/*.rs").is_err());
        assert!(patient_scope("patient/Secret.rs").is_err());
        assert!(patient_scope("launch/patient openid").is_err());
        assert!(patient_scope(&"patient/*.rs ".repeat(17)).is_err());
        let scopes = Scopes::new("launch/patient patient/Observation.rs");
        assert!(scopes.reads("Observation") && !scopes.reads("MedicationRequest"));
    }

    #[test]
    fn system_scopes_only_create() {
        assert_eq!(system_scope("system/*.cruds").unwrap(), "system/*.c");
        assert_eq!(
            system_scope("system/Observation.cr system/Patient.c").unwrap(),
            "system/Observation.c"
        );
        assert!(system_scope("system/*.rs").is_err());
        assert!(system_scope("system/*.rc").is_err());
        assert!(Scopes::new("system/Observation.c").creates("Observation"));
        assert!(!Scopes::new("system/Observation.c").creates("MedicationRequest"));
    }

    #[test]
    fn pkce_is_s256() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(s256(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_matches("short", &s256("short")));
        assert!(is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    }
}
