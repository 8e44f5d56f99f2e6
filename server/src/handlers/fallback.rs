//! What answers when no route does: JSON errors for the API, so a client
//! never gets the web app's index.html in place of an API answer.

use crate::Error;

/// Any other `/api/...` path: a JSON 404 (not the web app's index.html).
pub async fn no_such_route() -> Error {
    Error::NotFound
}

/// A known path with the wrong method: a JSON 405.
pub async fn wrong_method() -> Error {
    Error::MethodNotAllowed
}
