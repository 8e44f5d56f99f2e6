//! The server's one error type: every handler returns it, and it becomes a
//! JSON body `{"error": code, "message": text}` with the right status. Server
//! faults are logged (without patient data) and shown to clients only as a
//! generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::storage::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    /// No session, or it expired or was ended.
    #[error("Your session has ended. Sign in again.")]
    Unauthorized,
    /// The session ended because the account was revoked (a caregiver
    /// removed by the patient, a user by their clinic): the device must
    /// remove its copies.
    #[error("Your access to this record was taken away.")]
    AccessRemoved,
    /// Signed in, but this role may not do this.
    #[error("You are not allowed to do this.")]
    Forbidden,
    /// A state-changing request without the portal's own Origin (CSRF).
    #[error("This request did not come from the portal's own pages.")]
    OriginMismatch,
    #[error("This method is not allowed here.")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// The enrollment link is unknown, expired or used.
    #[error("This enrollment link has expired or was already used. Ask your clinic for a new one.")]
    EnrollmentLinkInvalid,
    /// The WebAuthn ceremony id is unknown, expired or was used already.
    #[error("This sign-in attempt has expired. Please try again.")]
    CeremonyExpired,
    /// The passkey response did not verify, or names an unknown or revoked passkey.
    #[error("This passkey was not accepted. Try again or use another passkey.")]
    PasskeyRejected,
    /// The passkey was replaced when an enrollment link was used for the
    /// account (on the given date, YYYY-MM-DD): the person is told, since it
    /// may not have been them.
    #[error(
        "This passkey was replaced on {0}, when a new sign-in link from your clinic was used for your account. \
         If that was not you, contact your clinic at once."
    )]
    PasskeyReplaced(String),
    /// Granting access needs a passkey used within the last few minutes.
    #[error("Confirm it is you: use your passkey again, then try again.")]
    ReauthRequired,
    /// Too many anonymous sign-in or enrollment requests; retry after this many seconds.
    #[error("Too many sign-in attempts from your network or in total. Try again in {0} seconds.")]
    RateLimited(u64),
    #[error("passkey configuration: {0}")]
    Webauthn(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "session_expired"),
            Self::AccessRemoved => (StatusCode::UNAUTHORIZED, "access_removed"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::OriginMismatch => (StatusCode::FORBIDDEN, "origin_mismatch"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::EnrollmentLinkInvalid => (StatusCode::GONE, "enrollment_link_invalid"),
            Self::CeremonyExpired => (StatusCode::BAD_REQUEST, "ceremony_expired"),
            Self::PasskeyRejected => (StatusCode::UNAUTHORIZED, "passkey_rejected"),
            Self::PasskeyReplaced(_) => (StatusCode::UNAUTHORIZED, "passkey_replaced"),
            Self::ReauthRequired => (StatusCode::FORBIDDEN, "reauth_required"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Store(_) | Self::Io(_) | Self::Webauthn(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "the server could not complete the request; nothing was changed".to_owned()
        } else {
            self.to_string()
        };
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        if let Self::RateLimited(seconds) = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
