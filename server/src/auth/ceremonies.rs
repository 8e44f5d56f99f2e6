//! WebAuthn ceremonies. State between start and finish stays in the
//! database (`ceremonies`), keyed by the hash of an opaque ceremony id the
//! client sends back; it lives 5 minutes and is deleted when used.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
};

use super::{CEREMONY_TTL, hash_secret, ms, new_secret};
use crate::storage::{Ceremony, CeremonyKind, UserRecord};
use crate::{AppState, Error};

/// A started ceremony: the id to send back, and the options for
/// `navigator.credentials.create/get` (`{"publicKey": ...}`).
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    pub ceremony: String,
    pub options: Value,
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Webauthn(format!("stored ceremony or passkey state: {e}"))
}

/// The base64url form of a credential id, as stored.
pub fn credential_key(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// Starts registering a new passkey for `user`. The options ask for a
/// discoverable (resident) credential, which usernameless sign-in needs.
pub async fn start_registration(
    state: &AppState,
    user: &UserRecord,
    kind: CeremonyKind,
    enrollment_hash: Option<String>,
    passkey_name: &str,
) -> Result<Started, Error> {
    let mut exclude = Vec::new();
    for stored in state.store.passkey_credentials(user.id).await? {
        let passkey: Passkey = serde_json::from_str(&stored).map_err(corrupt)?;
        exclude.push(passkey.cred_id().clone());
    }
    let (options, registration) = state
        .auth
        .webauthn
        .start_passkey_registration(
            *user.id.as_uuid(),
            &user.display_name,
            &user.display_name,
            Some(exclude),
        )
        .map_err(|e| Error::Webauthn(e.to_string()))?;
    let mut options = serde_json::to_value(&options).map_err(corrupt)?;
    if let Some(selection) =
        options.pointer_mut("/publicKey/authenticatorSelection").and_then(Value::as_object_mut)
    {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    let ceremony = new_secret();
    let now = state.now();
    let stored = Ceremony {
        id_hash: hash_secret(&ceremony),
        kind,
        user: Some(user.id),
        enrollment_hash,
        passkey_name: Some(passkey_name.to_owned()),
        state: serde_json::to_string(&registration).map_err(corrupt)?,
        expires_at: now + ms(CEREMONY_TTL),
    };
    state.store.put_ceremony(&stored, now).await?;
    Ok(Started { ceremony, options })
}

/// Takes a ceremony of `kind`: unknown, used, expired or other-kind ids fail.
async fn take(state: &AppState, ceremony: &str, kind: CeremonyKind) -> Result<Ceremony, Error> {
    let taken =
        state.store.take_ceremony(&hash_secret(ceremony)).await?.ok_or(Error::CeremonyExpired)?;
    if taken.kind != kind || taken.expires_at <= state.now() {
        return Err(Error::CeremonyExpired);
    }
    Ok(taken)
}

/// Verifies a registration response against its ceremony. The passkey is not
/// stored yet: the caller checks what else the ceremony needs first.
pub async fn verify_registration(
    state: &AppState,
    ceremony: &str,
    kind: CeremonyKind,
    credential: &RegisterPublicKeyCredential,
) -> Result<(Ceremony, Passkey), Error> {
    let taken = take(state, ceremony, kind).await?;
    let registration: PasskeyRegistration = serde_json::from_str(&taken.state).map_err(corrupt)?;
    let passkey =
        state.auth.webauthn.finish_passkey_registration(credential, &registration).map_err(
            |e| {
                tracing::info!(error = %e, "passkey registration rejected");
                Error::PasskeyRejected
            },
        )?;
    if state.store.credential_exists(&credential_key(passkey.cred_id().as_ref())).await? {
        return Err(Error::Conflict("This passkey is registered already.".into()));
    }
    Ok((taken, passkey))
}

/// A verified passkey as stored: its credential id (base64url) and webauthn-rs's JSON.
pub fn stored_form(passkey: &Passkey) -> Result<(String, String), Error> {
    Ok((
        credential_key(passkey.cred_id().as_ref()),
        serde_json::to_string(passkey).map_err(corrupt)?,
    ))
}

/// Stores a verified passkey for its user, added by a session signed in
/// with `added_with`.
pub async fn save_passkey(
    state: &AppState,
    user: &UserRecord,
    name: &str,
    passkey: &Passkey,
    added_with: Option<Uuid>,
) -> Result<Uuid, Error> {
    let (credential, json) = stored_form(passkey)?;
    Ok(state.store.add_passkey(user.id, &credential, name, &json, added_with, state.now()).await?)
}

/// Starts a usernameless sign-in with a discoverable credential.
pub async fn start_login(state: &AppState) -> Result<Started, Error> {
    let (options, authentication) = state
        .auth
        .webauthn
        .start_discoverable_authentication()
        .map_err(|e| Error::Webauthn(e.to_string()))?;
    let ceremony = new_secret();
    let now = state.now();
    let stored = Ceremony {
        id_hash: hash_secret(&ceremony),
        kind: CeremonyKind::Login,
        user: None,
        enrollment_hash: None,
        passkey_name: None,
        state: serde_json::to_string(&authentication).map_err(corrupt)?,
        expires_at: now + ms(CEREMONY_TTL),
    };
    state.store.put_ceremony(&stored, now).await?;
    Ok(Started { ceremony, options: serde_json::to_value(&options).map_err(corrupt)? })
}

/// Finishes a sign-in: finds the passkey by credential id (it must be
/// active, of an active user, and match the user handle), verifies the
/// assertion, and stores the new counter and backup state.
pub async fn finish_login(
    state: &AppState,
    ceremony: &str,
    credential: &PublicKeyCredential,
) -> Result<(UserRecord, Uuid), Error> {
    let taken = take(state, ceremony, CeremonyKind::Login).await?;
    let authentication: DiscoverableAuthentication =
        serde_json::from_str(&taken.state).map_err(corrupt)?;
    let (user_handle, credential_id) = state
        .auth
        .webauthn
        .identify_discoverable_authentication(credential)
        .map_err(|_| Error::PasskeyRejected)?;
    let key = credential_key(credential_id);
    let Some(stored) = state.store.passkey_by_credential(&key).await? else {
        // A passkey replaced through an enrollment link says so: its holder
        // may not be the one who used the link.
        return Err(match state.store.replaced_at(&key).await? {
            Some(at) => Error::PasskeyReplaced(
                chrono::DateTime::from_timestamp_millis(at)
                    .map(|t| t.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
            ),
            None => Error::PasskeyRejected,
        });
    };
    if stored.user.as_uuid() != &user_handle {
        return Err(Error::PasskeyRejected);
    }
    let mut passkey: Passkey = serde_json::from_str(&stored.passkey).map_err(corrupt)?;
    let key = DiscoverableKey::from(&passkey);
    let result = state
        .auth
        .webauthn
        .finish_discoverable_authentication(credential, authentication, &[key])
        .map_err(|e| {
            tracing::info!(error = %e, "passkey sign-in rejected");
            Error::PasskeyRejected
        })?;
    let updated = match passkey.update_credential(&result) {
        Some(true) => Some(serde_json::to_string(&passkey).map_err(corrupt)?),
        _ => None,
    };
    state.store.passkey_used(stored.id, updated.as_deref(), state.now()).await?;
    let user = state.store.user(stored.user).await?.ok_or(Error::PasskeyRejected)?;
    Ok((user, stored.id))
}

/// Starts a re-authentication: the signed-in user proves presence with one
/// of their own active passkeys (not a discoverable sign-in: only theirs
/// are allowed).
pub async fn start_reauth(state: &AppState, user: &UserRecord) -> Result<Started, Error> {
    let mut passkeys = Vec::new();
    for stored in state.store.passkey_credentials(user.id).await? {
        passkeys.push(serde_json::from_str::<Passkey>(&stored).map_err(corrupt)?);
    }
    if passkeys.is_empty() {
        return Err(Error::PasskeyRejected);
    }
    let (options, authentication) = state
        .auth
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| Error::Webauthn(e.to_string()))?;
    let ceremony = new_secret();
    let now = state.now();
    let stored = Ceremony {
        id_hash: hash_secret(&ceremony),
        kind: CeremonyKind::Reauth,
        user: Some(user.id),
        enrollment_hash: None,
        passkey_name: None,
        state: serde_json::to_string(&authentication).map_err(corrupt)?,
        expires_at: now + ms(CEREMONY_TTL),
    };
    state.store.put_ceremony(&stored, now).await?;
    Ok(Started { ceremony, options: serde_json::to_value(&options).map_err(corrupt)? })
}

/// Finishes a re-authentication started by the same user; returns the
/// passkey used (its counter and backup state are stored).
pub async fn finish_reauth(
    state: &AppState,
    user: &UserRecord,
    ceremony: &str,
    credential: &PublicKeyCredential,
) -> Result<Uuid, Error> {
    let taken = take(state, ceremony, CeremonyKind::Reauth).await?;
    if taken.user != Some(user.id) {
        return Err(Error::CeremonyExpired);
    }
    let authentication: PasskeyAuthentication =
        serde_json::from_str(&taken.state).map_err(corrupt)?;
    let result =
        state.auth.webauthn.finish_passkey_authentication(credential, &authentication).map_err(
            |e| {
                tracing::info!(error = %e, "passkey re-authentication rejected");
                Error::PasskeyRejected
            },
        )?;
    let stored = state
        .store
        .passkey_by_credential(&credential_key(result.cred_id().as_ref()))
        .await?
        .filter(|stored| stored.user == user.id)
        .ok_or(Error::PasskeyRejected)?;
    let mut passkey: Passkey = serde_json::from_str(&stored.passkey).map_err(corrupt)?;
    let updated = match passkey.update_credential(&result) {
        Some(true) => Some(serde_json::to_string(&passkey).map_err(corrupt)?),
        _ => None,
    };
    state.store.passkey_used(stored.id, updated.as_deref(), state.now()).await?;
    Ok(stored.id)
}
