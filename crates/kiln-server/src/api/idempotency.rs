//! Idempotent creates: a request with an `Idempotency-Key` header (Tencent's `ClientToken` the
//! same way) gets, for 24 hours, the answer the first request with that key got, and creates
//! nothing more; the same key with a different request is a 409.
//!
//! A submit's record is written in the job's own transaction ([`Store::insert_job_once`]), so a
//! server killed between the commit and the answer still answers the client's retry with the
//! job it created. Templates and compute environments record the answer right after the create.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kiln_api::code;
use kiln_store::{IdempotencyRecord, Store};
use sha2::{Digest, Sha256};

use super::{ApiError, Shared, on_store};
use crate::driver::now_ms;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// How long an answer is kept for its key.
pub const TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// The longest key.
pub const MAX_KEY: usize = 255;

/// A key, with the operation it is for and the digest of the request.
#[derive(Debug, Clone)]
pub struct Key {
    pub scope: String,
    pub key: String,
    pub request: String,
}

impl Key {
    /// For an operation `scope`, a request `body` and a caller-given `key` (1-255 visible
    /// ASCII characters; `field` names where it came from in the error).
    pub fn new(scope: &str, key: &str, body: &[u8], field: &str) -> Result<Key, ApiError> {
        if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad(format!(
                "{field} must be 1-{MAX_KEY} visible ASCII characters"
            ))
            .field(field));
        }
        Ok(Key {
            scope: scope.to_string(),
            key: key.to_string(),
            request: hex(&Sha256::digest(body)),
        })
    }

    /// The `Idempotency-Key` header of a request, if it has one.
    pub fn from_headers(
        scope: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Option<Key>, ApiError> {
        let Some(v) = headers.get(HEADER) else {
            return Ok(None);
        };
        let text = v.to_str().unwrap_or_default();
        Key::new(
            scope,
            if text.is_empty() { "\0" } else { text },
            body,
            "Idempotency-Key",
        )
        .map(Some)
    }

    /// The record of `answer` (status and JSON body) under this key, for a create that made
    /// `resource` (`job/ID`, `task-template/NAME`, `compute-env/NAME`).
    pub fn record(
        &self,
        resource: String,
        status: StatusCode,
        answer: &impl serde::Serialize,
    ) -> IdempotencyRecord {
        IdempotencyRecord {
            scope: self.scope.clone(),
            key: self.key.clone(),
            request: self.request.clone(),
            resource,
            status: status.as_u16(),
            response: serde_json::to_string(answer).unwrap_or_default(),
            created_at: now_ms(),
        }
    }

    /// The stored answer to this key if it is still kept: `Ok(Some)` for the same request,
    /// a 409 for another one.
    pub fn replay(&self, found: Option<IdempotencyRecord>) -> Result<Option<Stored>, ApiError> {
        let Some(r) = found.filter(|r| r.created_at + TTL_MS > now_ms()) else {
            return Ok(None);
        };
        if r.request != self.request {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                code::CONFLICT,
                format!(
                    "idempotency key `{}` was used for a different request in the last 24 hours; \
                     use a new key for a new request",
                    self.key
                ),
            )
            .field("Idempotency-Key"));
        }
        Ok(Some(Stored(r)))
    }

    /// Looks the key up in the store: the stored answer, a 409, or nothing stored.
    pub async fn lookup(&self, st: &Shared) -> Result<Option<Stored>, ApiError> {
        let (scope, key) = (self.scope.clone(), self.key.clone());
        let found = on_store(st, move |s: &dyn Store| s.get_idempotency(&scope, &key)).await?;
        self.replay(found)
    }

    /// Records `answer` after a create (not in the create's transaction); expired records
    /// are purged first. A record that appeared meanwhile (a concurrent request with the same
    /// key) wins and is answered.
    pub async fn remember(
        &self,
        st: &Shared,
        resource: String,
        status: StatusCode,
        answer: &impl serde::Serialize,
    ) -> Result<Option<Stored>, ApiError> {
        let record = self.record(resource, status, answer);
        let found = on_store(st, move |s: &dyn Store| {
            s.purge_idempotency(now_ms().saturating_sub(TTL_MS))?;
            s.put_idempotency(&record)
        })
        .await?;
        self.replay(found)
    }
}

/// Forgets the answers that named `resource`, once it is deleted: a key used again then
/// creates anew rather than answer with something gone.
pub async fn forget(st: &Shared, resource: String) -> Result<(), ApiError> {
    on_store(st, move |s: &dyn Store| s.forget_idempotency(&resource)).await?;
    Ok(())
}

/// A stored answer, sent again as it was, marked with `Idempotent-Replayed: true`.
#[derive(Debug)]
pub struct Stored(pub IdempotencyRecord);

impl IntoResponse for Stored {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::OK);
        (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (
                    header::HeaderName::from_static("idempotent-replayed"),
                    HeaderValue::from_static("true"),
                ),
            ],
            Bytes::from(self.0.response),
        )
            .into_response()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_requests_told_apart() {
        let a = Key::new("s", "k-1", b"body", "Idempotency-Key").unwrap();
        let b = Key::new("s", "k-1", b"other", "Idempotency-Key").unwrap();
        assert_ne!(a.request, b.request);
        for bad in ["", "has space", &"x".repeat(256), "é"] {
            assert!(
                Key::new("s", bad, b"", "Idempotency-Key").is_err(),
                "{bad:?}"
            );
        }
        let stored = a.record(
            "job/job-1".into(),
            StatusCode::CREATED,
            &serde_json::json!({"id": "job-1"}),
        );
        assert!(a.replay(Some(stored.clone())).unwrap().is_some());
        assert!(b.replay(Some(stored.clone())).is_err(), "another body: 409");
        let old = IdempotencyRecord {
            created_at: now_ms() - TTL_MS - 1,
            ..stored
        };
        assert!(b.replay(Some(old)).unwrap().is_none(), "expired: forgotten");
    }
}
