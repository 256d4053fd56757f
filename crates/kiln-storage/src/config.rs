//! Endpoint, region, credentials and transfer limits.

use std::fmt;

/// How to reach S3-compatible storage and how hard to push it.
///
/// `Debug` never shows the access key id, the secret or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// A custom S3 endpoint (`AWS_ENDPOINT_URL`), e.g. `http://10.0.0.5:9000`. With one,
    /// `s3://` uses path-style requests; without one, AWS S3 itself (virtual-hosted).
    /// Not used for `cos://` (see `cos_endpoint`).
    pub endpoint: Option<String>,
    /// Where `cos://BUCKET-APPID.cos.REGION.myqcloud.com/KEY` goes instead of COS itself
    /// (`https://BUCKET-APPID.cos.REGION.myqcloud.com`, virtual-hosted): with one (a `kind:
    /// cos` storage profile's `endpoint`, e.g. a COS-compatible server on a private network),
    /// path-style requests for the bucket `BUCKET-APPID`, signed for `REGION`.
    pub cos_endpoint: Option<String>,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`; `us-east-1` when absent.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Accept a plain `http://` endpoint or `cos_endpoint` (servers on a private network).
    pub allow_http: bool,
    /// Objects (or files) transferred at once. Default 8.
    pub concurrency: usize,
    /// Multipart part size, and the size above which uploads go multipart; likewise the
    /// range size of downloads, and the size above which they are ranged. Default 8 MiB;
    /// at least 5 MiB is used (S3's smallest part).
    pub part_size: usize,
    /// Retries of a transient failure per object (100 ms, 200 ms, 400 ms … apart). Default 3.
    pub retries: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            endpoint: None,
            cos_endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            allow_http: false,
            concurrency: 8,
            part_size: 8 * 1024 * 1024,
            retries: 3,
        }
    }
}

impl StorageConfig {
    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` (else `AWS_DEFAULT_REGION`) and `AWS_ENDPOINT_URL`; `allow_http` is set
    /// when the endpoint is `http://`. Empty variables count as unset.
    pub fn from_env() -> StorageConfig {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`StorageConfig::from_env`], from any variable source (tests, config files).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> StorageConfig {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let endpoint = var("AWS_ENDPOINT_URL");
        let allow_http = endpoint
            .as_deref()
            .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("http://"));
        StorageConfig {
            endpoint,
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
            allow_http,
            ..StorageConfig::default()
        }
    }

    /// The region to sign with.
    pub(crate) fn region_or_default(&self) -> &str {
        self.region.as_deref().unwrap_or("us-east-1")
    }

    /// The secrets that must never appear in a message.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        [
            &self.access_key_id,
            &self.secret_access_key,
            &self.session_token,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .filter(|s| s.len() >= 4)
        .collect()
    }

    /// `text` with every secret replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets() {
            if out.contains(s) {
                out = out.replace(s, "***");
            }
        }
        out
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("StorageConfig")
            .field("endpoint", &self.endpoint)
            .field("cos_endpoint", &self.cos_endpoint)
            .field("region", &self.region)
            .field("access_key_id", &hidden(&self.access_key_id))
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("concurrency", &self.concurrency)
            .field("part_size", &self.part_size)
            .field("retries", &self.retries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lookup_reads_aws_variables() {
        let env = |k: &str| match k {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9000".to_string()),
            "AWS_DEFAULT_REGION" => Some("eu-west-1".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("s3cr3t-value".to_string()),
            "AWS_SESSION_TOKEN" => Some(String::new()),
            _ => None,
        };
        let cfg = StorageConfig::from_lookup(env);
        assert!(cfg.allow_http);
        assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
        assert_eq!(cfg.session_token, None);
        assert_eq!(cfg.concurrency, 8);
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("AKIDEXAMPLE") && !dbg.contains("s3cr3t"),
            "{dbg}"
        );
        assert_eq!(
            cfg.redact("key AKIDEXAMPLE and s3cr3t-value"),
            "key *** and ***"
        );
    }
}
