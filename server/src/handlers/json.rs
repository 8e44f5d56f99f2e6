//! A JSON body extractor whose rejections (malformed JSON, wrong fields,
//! wrong content type) use the server's one error format.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::Error;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(Error::BadRequest(rejection.body_text())),
        }
    }
}
