//! Path and query extractors whose rejections are the API's JSON errors (axum's own answer
//! with plain text): a malformed parameter is a 400 naming it.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// [`Path`] with a JSON 400 for a segment that does not parse.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(ApiPath(t)),
            Err(e) => Err(path_error(&e)),
        }
    }
}

fn path_error(e: &PathRejection) -> ApiError {
    let mut err = ApiError::bad(format!("bad path: {}", e.body_text()));
    if let PathRejection::FailedToDeserializePathParams(inner) = e
        && let axum::extract::path::ErrorKind::ParseErrorAtKey { key, .. }
        | axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } = inner.kind()
    {
        err = err.field(key.clone());
    }
    err
}

/// [`Query`] with a JSON 400 for a parameter that does not parse or is unknown.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(ApiQuery(t)),
            Err(e) => Err(query_error(&e)),
        }
    }
}

fn query_error(e: &QueryRejection) -> ApiError {
    ApiError::bad(format!("bad query: {}", e.body_text()))
}
