//! Errors of transfers, and the mapping from `object_store`'s.

use std::path::PathBuf;

use crate::StorageConfig;

/// A transfer that failed. Messages name the URL or the local path, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object at the URL (for a prefix: no object under it).
    #[error("`{url}` does not exist (no object found there)")]
    NotFound { url: String },
    /// The server refused the credentials or the access.
    #[error("access to `{url}` was refused: {message}")]
    Denied { url: String, message: String },
    /// A local file or directory could not be read or written.
    #[error("local path `{}`: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// Any other failure of the storage service; `transient` ones (connection refused or
    /// reset, timeouts, 5xx) were retried before they got here.
    #[error("storage error at `{url}`: {message}")]
    Remote {
        url: String,
        message: String,
        transient: bool,
    },
    /// The configuration cannot reach this location.
    #[error("storage configuration: {0}")]
    Config(String),
}

impl StorageError {
    /// Whether trying again later might succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Remote {
                transient: true,
                ..
            }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, err: &std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }

    /// Maps an `object_store` error about `url`, with secrets redacted from the message.
    pub(crate) fn remote(cfg: &StorageConfig, url: &str, err: object_store::Error) -> StorageError {
        use object_store::Error as E;
        let url = url.to_string();
        let message = cfg.redact(&error_chain(&err));
        // Some paths (listing) report every status as `Generic`: look at the status too.
        let status = status_in_chain(&err);
        match err {
            E::NotFound { .. } => StorageError::NotFound { url },
            _ if status == Some(404) => StorageError::NotFound { url },
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                StorageError::Denied { url, message }
            }
            _ if matches!(status, Some(401 | 403)) => StorageError::Denied { url, message },
            ref other => {
                let transient = is_transient_error(other);
                StorageError::Remote {
                    url,
                    message,
                    transient,
                }
            }
        }
    }
}

/// The error and its sources, `: `-separated, without repeats.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// The HTTP status of a failed request, from the message of object_store's `RetryError`
/// (which does not expose it outside the crate): "… status code: 403 Forbidden: …".
fn status_in_chain(err: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(code) = status_in_text(&e.to_string()) {
            return Some(code);
        }
        cur = e.source();
    }
    None
}

fn status_in_text(text: &str) -> Option<u16> {
    let rest = text.split("status code: ").nth(1)?;
    let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
    code.parse().ok()
}

/// Connection failures, timeouts, interrupted bodies and 5xx/429 answers are transient.
fn is_transient_error(err: &(dyn std::error::Error + 'static)) -> bool {
    use object_store::client::HttpErrorKind as K;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<object_store::client::HttpError>() {
            return matches!(
                h.kind(),
                K::Connect | K::Request | K::Timeout | K::Interrupted
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as IK;
            if matches!(
                io.kind(),
                IK::ConnectionRefused
                    | IK::ConnectionReset
                    | IK::ConnectionAborted
                    | IK::BrokenPipe
                    | IK::TimedOut
                    | IK::UnexpectedEof
                    | IK::NotConnected
            ) {
                return true;
            }
        }
        let text = e.to_string();
        if let Some(code) = status_in_text(&text) {
            return code >= 500 || code == 429;
        }
        if text.contains("SlowDown") || text.contains("InternalError") {
            return true;
        }
        cur = e.source();
    }
    false
}
