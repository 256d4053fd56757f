//! A typed async client for the REST API and the agent protocol.

use std::error::Error as StdError;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::agent::*;
use crate::paths;
use crate::rest::*;

/// How long the client waits for a TCP connection to the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status. `error` is its error body, or one made up from
    /// the status when the body was not an [`ErrorBody`].
    #[error("server answered {status}: {error}")]
    Http { status: u16, error: ErrorDetail },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server answered 2xx with a body that is not what the route returns.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// The base URL given to [`Client::new`] is not usable.
    #[error("invalid server URL: {0}")]
    InvalidUrl(String),
    /// The TLS handshake with an `https://` server failed: its certificate is not trusted or
    /// does not name the host, or it does not speak TLS. The text says which, and what to do.
    #[error("{0}")]
    Tls(String),
    /// The CA certificate file given to [`Client::with_ca_file`] cannot be read or holds no
    /// PEM certificate.
    #[error("{0}")]
    CaFile(String),
}

impl ClientError {
    /// The HTTP status, for [`ClientError::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code (see [`crate::rest::code`]), for [`ClientError::Http`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Http { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}

/// Longest CA file read: a bundle of certificates, not a document.
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// The PEM certificates in `path` (at least one).
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    use std::io::Read;
    let shown = path.display();
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE).read_to_end(&mut pem))
        .map_err(|e| ClientError::CaFile(format!("cannot read the CA file {shown}: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ClientError::CaFile(format!("the CA file {shown}: {}", chain(&e))))?;
    if certs.is_empty() {
        return Err(ClientError::CaFile(format!(
            "the CA file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

/// A transport error; the TLS failures a user can fix become [`ClientError::Tls`], saying what
/// to do.
fn transport(e: &reqwest::Error) -> ClientError {
    let text = chain(e);
    let hint = if text.contains("invalid peer certificate") {
        if text.contains("NotValidForName") {
            "the server's certificate does not name the host in this URL: use a name or address \
             it lists"
        } else {
            "the server's certificate is not signed by a CA this client trusts: give the CA's \
             certificate with --ca-file or KILN_CA_FILE"
        }
    } else if text.contains("InvalidContentType") || text.contains("corrupt message") {
        "the server does not speak TLS: use an http:// URL"
    } else {
        return ClientError::Transport(text);
    };
    ClientError::Tls(format!("TLS with the server failed: {hint} ({text})"))
}

/// One server's base URL, checked, without a trailing `/`.
fn parse_base(base_url: &str) -> Result<String, ClientError> {
    let url =
        Url::parse(base_url).map_err(|e| ClientError::InvalidUrl(format!("{base_url}: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ClientError::InvalidUrl(format!(
            "{base_url}: a server URL is http:// or https://, not {}://",
            url.scheme()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::InvalidUrl(format!(
            "{base_url}: a server URL has no query or fragment"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// How long an ordinary request may take. Requests that wait by design (`lease`, `logs`
/// with `follow`) have none; the caller bounds them.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A client of a Kiln control plane: one server, or several sharing one database (then a
/// call that cannot reach the one in use, or that it refuses as a standby, goes to the next).
/// Cheap to clone (the connection pool and the choice of server are shared).
#[derive(Clone)]
pub struct Client {
    /// The servers' base URLs, without a trailing `/` (they may have a path prefix).
    bases: std::sync::Arc<[String]>,
    /// Which of `bases` calls go to.
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bases", &self.bases)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client of the server at `base_url` (`http://host:port`, optionally with a path prefix;
    /// several separated by commas for servers sharing one database),
    /// sending `Authorization: Bearer TOKEN` when `token` is given. No overall request timeout is
    /// set, since `lease` long-polls and `logs` follows; the connect timeout is
    /// [`CONNECT_TIMEOUT`]. An `https://` server's certificate is verified against the system's
    /// trust roots (see [`Client::with_ca_file`] for a private CA).
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client, ClientError> {
        Client::with_ca_file(base_url, token, None)
    }

    /// Like [`Client::new`]; with `ca_file`, an `https://` server's certificate must chain to
    /// one of the PEM certificates in that file instead of the system's trust roots (a
    /// private CA).
    pub fn with_ca_file(
        base_url: &str,
        token: Option<String>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(path) = ca_file {
            builder = builder.tls_certs_only(read_ca_file(path)?);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Transport(chain(&e)))?;
        Client::with_http(base_url, token, http)
    }

    /// Like [`Client::new`] with a `reqwest::Client` configured by the caller.
    pub fn with_http(
        base_url: &str,
        token: Option<String>,
        http: reqwest::Client,
    ) -> Result<Client, ClientError> {
        let mut bases = Vec::new();
        for one in base_url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            bases.push(parse_base(one)?);
        }
        if bases.is_empty() {
            return Err(ClientError::InvalidUrl("no server URL given".into()));
        }
        let token = token.filter(|t| !t.is_empty());
        Ok(Client {
            bases: bases.into(),
            current: Default::default(),
            token,
            http,
        })
    }

    /// The same servers, connection pool and choice of server, with another token (an agent's
    /// node credential after it registered with the join token).
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client {
            token: token.filter(|t| !t.is_empty()),
            ..self.clone()
        }
    }

    /// The base URL of the server calls go to now, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed);
        &self.bases[i % self.bases.len()]
    }

    /// After `error` from the server at index `used`: whether to try the next server (it could
    /// not be reached, or it is a standby), moving on to it.
    fn fail_over(&self, used: usize, error: &ClientError) -> bool {
        let retry = match error {
            ClientError::Transport(_) | ClientError::Tls(_) => true,
            ClientError::Http { status, error } => *status == 503 && error.code == code::NOT_LEADER,
            _ => false,
        };
        if retry && self.bases.len() > 1 {
            let next = (used + 1) % self.bases.len();
            let _ = self.current.compare_exchange(
                used,
                next,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            );
            true
        } else {
            false
        }
    }

    /// Sends the request `build` makes (against [`Client::base_url`]), trying each server
    /// once until one answers as the leader would.
    async fn call(
        &self,
        build: impl Fn(&Self) -> Result<RequestBuilder, ClientError>,
    ) -> Result<Response, ClientError> {
        let mut tries = self.bases.len();
        loop {
            let used = self.current.load(std::sync::atomic::Ordering::Relaxed) % self.bases.len();
            let result = self.send(build(self)?).await;
            match result {
                Err(e) if tries > 1 && self.fail_over(used, &e) => tries -= 1,
                other => return other,
            }
        }
    }

    // ---- REST -------------------------------------------------------------------------------

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get(paths::HEALTH, &[]).await
    }

    /// Submits a job spec as written (`content_type`: `application/json` or `application/yaml`).
    pub async fn submit(
        &self,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<SubmitResponse, ClientError> {
        let resp = self
            .call(|c| {
                Ok(c.request(Method::POST, c.url(paths::JOBS, &[])?)
                    .header(CONTENT_TYPE, content_type)
                    .body(body.clone()))
            })
            .await?;
        decode(resp).await
    }

    pub async fn jobs(
        &self,
        state: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<JobList, ClientError> {
        let limit = limit.map(|l| l.to_string());
        self.get(
            paths::JOBS,
            &[
                ("state", state),
                ("limit", limit.as_deref()),
                ("cursor", cursor),
            ],
        )
        .await
    }

    pub async fn job(&self, id: &str) -> Result<JobDetail, ClientError> {
        self.get(&paths::job(id), &[]).await
    }

    pub async fn terminate(&self, id: &str) -> Result<JobSummary, ClientError> {
        self.post_empty(&paths::job_terminate(id)).await
    }

    /// Terminates one instance (Tencent `TerminateTaskInstance`).
    pub async fn terminate_instance(
        &self,
        id: &str,
        task: &str,
        index: u32,
    ) -> Result<JobSummary, ClientError> {
        self.post_empty(&paths::instance_terminate(id, task, index))
            .await
    }

    pub async fn retry(&self, id: &str) -> Result<JobSummary, ClientError> {
        self.post_empty(&paths::job_retry(id)).await
    }

    /// Deletes a finished job, its records and logs.
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        self.delete_at(&paths::job(id)).await
    }

    pub async fn instances(
        &self,
        id: &str,
        task: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<InstanceList, ClientError> {
        let limit = limit.map(|l| l.to_string());
        self.get(
            &paths::instances(id, task),
            &[("cursor", cursor), ("limit", limit.as_deref())],
        )
        .await
    }

    /// The output of an instance (`stream`: [`STDOUT`] or [`STDERR`]), as a raw response whose
    /// body is read with `chunk()` / `bytes_stream()`. With `follow` the server keeps the body
    /// open until the instance ends. An error status is turned into [`ClientError::Http`].
    pub async fn logs(
        &self,
        id: &str,
        task: &str,
        index: u32,
        stream: &str,
        follow: bool,
    ) -> Result<Response, ClientError> {
        let follow = follow.then_some("true");
        self.call(|c| {
            let url = c.url(
                &paths::logs(id, task, index),
                &[("stream", Some(stream)), ("follow", follow)],
            )?;
            Ok(if follow.is_some() {
                c.request_untimed(Method::GET, url)
            } else {
                c.request(Method::GET, url)
            })
        })
        .await
    }

    /// A page of journal events after `after`, oldest first (`types`: comma-separated).
    pub async fn events(
        &self,
        after: u64,
        limit: Option<u32>,
        job: Option<&str>,
        types: Option<&str>,
    ) -> Result<EventPage, ClientError> {
        let after = after.to_string();
        let limit = limit.map(|l| l.to_string());
        self.get(
            paths::EVENTS,
            &[
                ("after", Some(&after)),
                ("limit", limit.as_deref()),
                ("job", job),
                ("type", types),
            ],
        )
        .await
    }

    /// The journal as Server-Sent Events from after `after` (sent as `Last-Event-ID`), as a
    /// raw response whose body stays open; read it with [`crate::sse::Parser`].
    pub async fn event_stream(
        &self,
        after: u64,
        job: Option<&str>,
        types: Option<&str>,
    ) -> Result<Response, ClientError> {
        self.call(|c| {
            let url = c.url(paths::EVENTS, &[("job", job), ("type", types)])?;
            Ok(c.request_untimed(Method::GET, url)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .header("Last-Event-ID", after.to_string()))
        })
        .await
    }

    /// Why a job (or one of its tasks, or one instance) is in its state.
    pub async fn why(
        &self,
        id: &str,
        task: Option<&str>,
        index: Option<u32>,
    ) -> Result<Why, ClientError> {
        let index = index.map(|i| i.to_string());
        self.get(
            &paths::job_why(id),
            &[("task", task), ("index", index.as_deref())],
        )
        .await
    }

    pub async fn templates(&self) -> Result<TemplateList, ClientError> {
        self.get(paths::TEMPLATES, &[]).await
    }

    pub async fn create_template(
        &self,
        template: &TaskTemplate,
    ) -> Result<TaskTemplate, ClientError> {
        self.post(paths::TEMPLATES, template).await
    }

    pub async fn template(&self, name: &str) -> Result<TaskTemplate, ClientError> {
        self.get(&paths::template(name), &[]).await
    }

    pub async fn delete_template(&self, name: &str) -> Result<(), ClientError> {
        self.delete_at(&paths::template(name)).await
    }

    pub async fn compute_envs(&self) -> Result<ComputeEnvList, ClientError> {
        self.get(paths::COMPUTE_ENVS, &[]).await
    }

    pub async fn create_compute_env(
        &self,
        env: &ComputeEnv,
    ) -> Result<ComputeEnvDetail, ClientError> {
        self.post(paths::COMPUTE_ENVS, env).await
    }

    pub async fn compute_env(&self, name: &str) -> Result<ComputeEnvDetail, ClientError> {
        self.get(&paths::compute_env(name), &[]).await
    }

    /// An environment's scaling activities, newest first.
    pub async fn compute_env_activities(
        &self,
        name: &str,
        offset: u32,
        limit: u32,
    ) -> Result<ActivityList, ClientError> {
        let (offset, limit) = (offset.to_string(), limit.to_string());
        let query = [
            ("offset", Some(offset.as_str())),
            ("limit", Some(limit.as_str())),
        ];
        self.get(&paths::compute_env_activities(name), &query).await
    }

    pub async fn scale(
        &self,
        name: &str,
        desired_nodes: u32,
    ) -> Result<ComputeEnvDetail, ClientError> {
        self.post(
            &paths::compute_env_scale(name),
            &ScaleRequest { desired_nodes },
        )
        .await
    }

    pub async fn delete_compute_env(&self, name: &str) -> Result<(), ClientError> {
        self.delete_at(&paths::compute_env(name)).await
    }

    pub async fn storage_profiles(&self) -> Result<StorageProfileList, ClientError> {
        self.get(paths::STORAGE_PROFILES, &[]).await
    }

    pub async fn create_storage_profile(
        &self,
        profile: &StorageProfileSpec,
    ) -> Result<StorageProfile, ClientError> {
        self.post(paths::STORAGE_PROFILES, profile).await
    }

    pub async fn storage_profile(&self, name: &str) -> Result<StorageProfile, ClientError> {
        self.get(&paths::storage_profile(name), &[]).await
    }

    pub async fn delete_storage_profile(&self, name: &str) -> Result<(), ClientError> {
        self.delete_at(&paths::storage_profile(name)).await
    }

    pub async fn nodes(&self) -> Result<NodeList, ClientError> {
        self.get(paths::NODES, &[]).await
    }

    /// Cuts a node off: its credential is removed, its attempts run again elsewhere.
    pub async fn revoke_node(&self, name: &str) -> Result<NodeRevoked, ClientError> {
        self.post_empty(&paths::node_revoke(name)).await
    }

    /// Replaces the join token; answers the new one (once).
    pub async fn rotate_join_token(&self) -> Result<JoinToken, ClientError> {
        self.post_empty(paths::JOIN_TOKEN_ROTATE).await
    }

    pub async fn projects(&self) -> Result<ProjectList, ClientError> {
        self.get(paths::PROJECTS, &[]).await
    }

    pub async fn create_project(&self, p: &ProjectSpec) -> Result<Project, ClientError> {
        self.post(paths::PROJECTS, p).await
    }

    pub async fn project(&self, name: &str) -> Result<Project, ClientError> {
        self.get(&paths::project(name), &[]).await
    }

    pub async fn delete_project(&self, name: &str) -> Result<(), ClientError> {
        self.delete_at(&paths::project(name)).await
    }

    /// Creates an API token; the answer is the only place its secret appears.
    pub async fn create_token(&self, req: &TokenRequest) -> Result<TokenCreated, ClientError> {
        self.post(paths::TOKENS, req).await
    }

    pub async fn tokens(&self) -> Result<TokenList, ClientError> {
        self.get(paths::TOKENS, &[]).await
    }

    pub async fn revoke_token(&self, name: &str) -> Result<TokenInfo, ClientError> {
        self.post_empty(&paths::token_revoke(name)).await
    }

    /// The audit log from `since` (RFC 3339 or a duration back from now, e.g. `1h`), a page at
    /// a time.
    pub async fn audit(
        &self,
        since: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<AuditList, ClientError> {
        let limit = limit.map(|l| l.to_string());
        self.get(
            paths::AUDIT,
            &[
                ("since", since),
                ("cursor", cursor),
                ("limit", limit.as_deref()),
            ],
        )
        .await
    }

    // ---- agent protocol ---------------------------------------------------------------------

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.post(paths::AGENT_REGISTER, req).await
    }

    pub async fn heartbeat(
        &self,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.post(paths::AGENT_HEARTBEAT, req).await
    }

    /// Long-polls: the server answers when it has work or after `lease_wait_ms`.
    pub async fn lease(&self, req: &LeaseRequest) -> Result<LeaseResponse, ClientError> {
        let resp = self
            .call(|c| {
                Ok(
                    c.request_untimed(Method::POST, c.url(paths::AGENT_LEASE, &[])?)
                        .json(req),
                )
            })
            .await?;
        decode(resp).await
    }

    pub async fn report(&self, req: &ReportRequest) -> Result<ReportResponse, ClientError> {
        self.post(paths::AGENT_REPORT, req).await
    }

    pub async fn append_logs(
        &self,
        req: &LogAppendRequest,
    ) -> Result<LogAppendResponse, ClientError> {
        self.post(paths::AGENT_LOGS, req).await
    }

    // ---- plumbing ---------------------------------------------------------------------------

    fn url(&self, path: &str, query: &[(&str, Option<&str>)]) -> Result<Url, ClientError> {
        let full = format!("{}{path}", self.base_url());
        let mut url =
            Url::parse(&full).map_err(|e| ClientError::InvalidUrl(format!("{full}: {e}")))?;
        if query.iter().any(|(_, v)| v.is_some()) {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                if let Some(value) = value {
                    pairs.append_pair(name, value);
                }
            }
        }
        Ok(url)
    }

    /// A request with the token and the ordinary timeout ([`REQUEST_TIMEOUT`]).
    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.request_untimed(method, url).timeout(REQUEST_TIMEOUT)
    }

    /// A request with the token and no overall timeout (for requests that wait by design).
    fn request_untimed(&self, method: Method, url: Url) -> RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.token {
            Some(token) => rb.header(AUTHORIZATION, format!("Bearer {token}")),
            None => rb,
        }
    }

    /// Sends the request; an error status becomes [`ClientError::Http`].
    async fn send(&self, rb: RequestBuilder) -> Result<Response, ClientError> {
        let resp = rb.send().await.map_err(|e| transport(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(chain(&e)))?;
        Err(ClientError::Http {
            status: status.as_u16(),
            error: error_detail(status, &body),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, Option<&str>)],
    ) -> Result<T, ClientError> {
        let resp = self
            .call(|c| Ok(c.request(Method::GET, c.url(path, query)?)))
            .await?;
        decode(resp).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let resp = self
            .call(|c| Ok(c.request(Method::POST, c.url(path, &[])?).json(body)))
            .await?;
        decode(resp).await
    }

    async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self
            .call(|c| Ok(c.request(Method::POST, c.url(path, &[])?)))
            .await?;
        decode(resp).await
    }

    async fn delete_at(&self, path: &str) -> Result<(), ClientError> {
        let resp = self
            .call(|c| Ok(c.request(Method::DELETE, c.url(path, &[])?)))
            .await?;
        // Drain whatever body there is so the connection goes back to the pool.
        resp.bytes()
            .await
            .map_err(|e| ClientError::Transport(chain(&e)))?;
        Ok(())
    }
}

async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
    let body = resp
        .bytes()
        .await
        .map_err(|e| ClientError::Transport(chain(&e)))?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
}

/// The error of an error answer: its [`ErrorBody`], or one made from the status and the text.
fn error_detail(status: StatusCode, body: &[u8]) -> ErrorDetail {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return parsed.error;
    }
    let code = match status.as_u16() {
        400 | 405 | 415 | 422 => code::INVALID_REQUEST,
        401 | 403 => code::UNAUTHORIZED,
        404 => code::NOT_FOUND,
        409 => code::CONFLICT,
        413 => code::PAYLOAD_TOO_LARGE,
        _ => code::INTERNAL,
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.chars().take(1000).collect()
    };
    ErrorDetail {
        code: code.to_string(),
        message,
        field: None,
    }
}

/// An error and its causes, joined: reqwest's own message rarely says what went wrong.
fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn base_url_is_normalised_and_checked() {
        let c = Client::new("http://127.0.0.1:8080/", None).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
        let c = Client::new("http://h:1/prefix/", Some(String::new())).unwrap();
        assert_eq!(c.base_url(), "http://h:1/prefix");
        assert!(c.token.is_none());
        let c = Client::new("https://h:8443/", None).unwrap();
        assert_eq!(c.base_url(), "https://h:8443");
        assert!(matches!(
            Client::new("ftp://h", None),
            Err(ClientError::InvalidUrl(_))
        ));
        assert!(matches!(
            Client::new("h:8080", None),
            Err(ClientError::InvalidUrl(_))
        ));
        assert!(matches!(
            Client::new("not a url", None),
            Err(ClientError::InvalidUrl(_))
        ));
        assert!(matches!(
            Client::new("http://h/?x=1", None),
            Err(ClientError::InvalidUrl(_))
        ));
    }

    #[test]
    fn urls_carry_prefix_and_query() {
        let c = Client::new("http://h:1/k", None).unwrap();
        let u = c
            .url(
                &paths::job_why("job 1"),
                &[("task", Some("a&b")), ("index", None)],
            )
            .unwrap();
        assert_eq!(u.as_str(), "http://h:1/k/v1/jobs/job%201/why?task=a%26b");
        let u = c.url(paths::JOBS, &[("state", None)]).unwrap();
        assert_eq!(u.as_str(), "http://h:1/k/v1/jobs");
    }

    #[test]
    fn error_bodies_are_parsed_or_made_up() {
        let body = br#"{"error":{"code":"invalid_spec","message":"bad","field":"tasks[0]"}}"#;
        let d = error_detail(StatusCode::BAD_REQUEST, body);
        assert_eq!(d.code, "invalid_spec");
        assert_eq!(d.field.as_deref(), Some("tasks[0]"));
        let d = error_detail(StatusCode::NOT_FOUND, b"");
        assert_eq!(
            (d.code.as_str(), d.message.as_str()),
            ("not_found", "Not Found")
        );
        let d = error_detail(StatusCode::BAD_GATEWAY, b" upstream down\n");
        assert_eq!(
            (d.code.as_str(), d.message.as_str()),
            ("internal", "upstream down")
        );
    }
}
