//! Who calls the REST API, what their role lets them do, and the audit log of what they
//! changed.
//!
//! Every REST route but `health` goes through [`authenticate`]: the bearer token is the data
//! directory's admin token (the bootstrap credential: role `admin`, project `default`) or an
//! API token (`kiln-token:NAME:SECRET`), whose record is read from the store on every call
//! (never cached), so a revocation or an expiry holds at once on every server of a database.
//! The route's [`required`] role is checked next (`403`, naming the role needed); handlers
//! then see the [`Caller`] and answer `404` for any object of a project it may not see. Every
//! call that is not a read is appended to the audit log with its answer's status.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_api::{code, paths};
use kiln_store::{AuditRecord, TokenRecord};
use subtle::ConstantTimeEq;

use super::{ApiError, Shared, bearer, digest, on_store, unhex};
use crate::driver::now_ms;

/// What a token may do. Each role may do all that the roles before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read its project's jobs, logs, templates, profiles (redacted) and environments.
    Viewer,
    /// Viewer, and submit, terminate, retry and delete its project's jobs.
    Submitter,
    /// Submitter, and manage its project's templates, storage profiles and environments.
    Operator,
    /// Everything, in every project: projects, tokens, nodes, the join token, the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Submitter, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Submitter => "submitter",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Who made a request: a token's name, its project and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (`admin` for the data directory's admin token).
    pub token: String,
    /// The project it acts in (where what it creates goes).
    pub project: String,
    pub role: Role,
}

/// The name the data directory's admin token is recorded under.
pub const BOOTSTRAP_ADMIN: &str = "admin";

impl Caller {
    /// The data directory's admin token.
    pub fn bootstrap() -> Caller {
        Caller {
            token: BOOTSTRAP_ADMIN.into(),
            project: kiln_store::DEFAULT_PROJECT.into(),
            role: Role::Admin,
        }
    }

    /// Whether objects of `project` exist for this caller (admins see every project).
    pub fn sees(&self, project: &str) -> bool {
        self.role == Role::Admin || self.project == project
    }

    /// Whether an object shared with `projects` exists for this caller.
    pub fn sees_any(&self, projects: &[String]) -> bool {
        self.role == Role::Admin || projects.contains(&self.project)
    }

    /// The project a list is narrowed to: none for an admin (every project).
    pub fn scope(&self) -> Option<String> {
        (self.role != Role::Admin).then(|| self.project.clone())
    }

    /// The project something is created in: `asked` if given (only an admin may name
    /// another project than its own: to anyone else that project does not exist), else the
    /// caller's own.
    pub fn project_for(&self, asked: Option<&str>) -> Result<String, ApiError> {
        match asked {
            None => Ok(self.project.clone()),
            Some(p) if self.sees(p) => Ok(p.to_string()),
            Some(p) => Err(ApiError::not_found(format!("no project `{p}`")).field("project")),
        }
    }
}

/// The role a route needs, by method and route template: reads need `viewer`; jobs'
/// changes `submitter`; templates', profiles' and environments' `operator`; everything else
/// (projects, tokens, audit, the journal, nodes' credentials, the join token) `admin`. A route this table
/// does not know needs `admin`.
pub fn required(method: &Method, route: &str) -> Role {
    let read = *method == Method::GET || *method == Method::HEAD;
    match route {
        paths::TOKENS | paths::TOKEN_REVOKE | paths::AUDIT | paths::NODE_REVOKE => Role::Admin,
        // Events do not carry their job's project yet: only an admin reads the journal.
        paths::EVENTS => Role::Admin,
        paths::JOIN_TOKEN_ROTATE => Role::Admin,
        paths::PROJECTS | paths::PROJECT if read => Role::Viewer,
        paths::PROJECTS | paths::PROJECT => Role::Admin,
        _ if read => Role::Viewer,
        paths::JOBS
        | paths::JOB
        | paths::JOB_TERMINATE
        | paths::JOB_RETRY
        | paths::INSTANCE_TERMINATE => Role::Submitter,
        paths::TEMPLATES
        | paths::TEMPLATE
        | paths::STORAGE_PROFILES
        | paths::STORAGE_PROFILE
        | paths::COMPUTE_ENVS
        | paths::COMPUTE_ENV
        | paths::COMPUTE_ENV_SCALE => Role::Operator,
        _ => Role::Admin,
    }
}

/// Why a token was refused (the answer is `401` in each case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Unknown,
    Expired(String),
    Revoked(String),
}

impl Refused {
    fn message(&self) -> String {
        match self {
            Refused::Missing | Refused::Unknown => "missing or invalid bearer token".into(),
            Refused::Expired(name) => format!("the token `{name}` has expired"),
            Refused::Revoked(name) => format!("the token `{name}` was revoked"),
        }
    }
}

/// Checks an API token against its stored record at `now`: the digest must match (in
/// constant time), and the token be neither revoked nor expired.
pub fn check_token(token: &str, record: Option<&TokenRecord>, now: u64) -> Result<Caller, Refused> {
    let Some(r) = record else {
        return Err(Refused::Unknown);
    };
    let given = digest(token);
    let Some(stored) = unhex(&r.digest) else {
        return Err(Refused::Unknown);
    };
    if !bool::from(given.ct_eq(&stored)) {
        return Err(Refused::Unknown);
    }
    if r.revoked_at.is_some() {
        return Err(Refused::Revoked(r.name.clone()));
    }
    if r.expires_at.is_some_and(|at| at <= now) {
        return Err(Refused::Expired(r.name.clone()));
    }
    let Some(role) = Role::parse(&r.role) else {
        return Err(Refused::Unknown);
    };
    Ok(Caller {
        token: r.name.clone(),
        project: r.project.clone(),
        role,
    })
}

/// The caller a request's bearer token names, read from the store now.
async fn identify(st: &Shared, headers: &HeaderMap) -> Result<Caller, Result<Refused, ApiError>> {
    let Some(token) = bearer(headers) else {
        return Err(Ok(Refused::Missing));
    };
    if bool::from(digest(token).ct_eq(&st.tokens.admin)) {
        return Ok(Caller::bootstrap());
    }
    let Some((name, _)) = kiln_api::parse_api_token(token) else {
        return Err(Ok(Refused::Unknown));
    };
    let (name, token) = (name.to_string(), token.to_string());
    let record = on_store(st, move |s| s.get_token(&name))
        .await
        .map_err(Err)?;
    check_token(&token, record.as_ref(), now_ms()).map_err(Ok)
}

/// What a state-changing call was about, set by its handler when the path does not say
/// (e.g. the id of a job just submitted): `job/ID`, `task-template/NAME`, ….
#[derive(Debug, Clone)]
pub struct AuditObject(pub String);

/// The REST API's authentication, role check and audit (see the module's documentation).
pub async fn authenticate(
    State(st): State<Shared>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let path = req.uri().path().to_string();
    let caller = match identify(&st, &headers).await {
        Ok(c) => Ok(c),
        Err(Ok(refused)) => Err(refused),
        Err(Err(e)) => return e.into_response(),
    };
    let response = match &caller {
        Err(refused) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHORIZED,
            refused.message(),
        )
        .into_response(),
        Ok(c) => {
            let need = required(&method, &route);
            if c.role < need {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    code::FORBIDDEN,
                    format!(
                        "this needs the `{}` role; the token `{}` has `{}`",
                        need.as_str(),
                        c.token,
                        c.role.as_str()
                    ),
                )
                .into_response()
            } else {
                req.extensions_mut().insert(c.clone());
                next.run(req).await
            }
        }
    };
    if method != Method::GET && method != Method::HEAD {
        let object = response
            .extensions()
            .get::<AuditObject>()
            .map_or(path, |o| o.0.clone());
        let (token, project) = match &caller {
            Ok(c) => (c.token.clone(), Some(c.project.clone())),
            Err(_) => ("-".to_string(), None),
        };
        let record = AuditRecord {
            seq: 0,
            at: now_ms(),
            token,
            project,
            action: format!("{method} {route}"),
            object,
            result: response.status().as_u16(),
        };
        let store = Arc::clone(&st.store);
        let written = tokio::task::spawn_blocking(move || store.append_audit(&record)).await;
        match written {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("an audit record could not be stored: {e}"),
            Err(e) => tracing::error!("an audit record could not be stored: {e}"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(token: &str) -> TokenRecord {
        TokenRecord {
            name: "ci".into(),
            digest: super::super::hex(&digest(token)),
            project: "ml".into(),
            role: "submitter".into(),
            created_at: 0,
            expires_at: Some(1_000),
            revoked_at: None,
        }
    }

    #[test]
    fn a_token_works_until_it_expires_or_is_revoked() {
        let t = "kiln-token:ci:secret";
        let ok = check_token(t, Some(&record(t)), 999).unwrap();
        assert_eq!((ok.project.as_str(), ok.role), ("ml", Role::Submitter));
        assert_eq!(
            check_token(t, Some(&record(t)), 1_000),
            Err(Refused::Expired("ci".into()))
        );
        let revoked = TokenRecord {
            revoked_at: Some(5),
            ..record(t)
        };
        assert_eq!(
            check_token(t, Some(&revoked), 10),
            Err(Refused::Revoked("ci".into()))
        );
        assert_eq!(
            check_token("kiln-token:ci:other", Some(&record(t)), 10),
            Err(Refused::Unknown)
        );
        assert_eq!(check_token(t, None, 10), Err(Refused::Unknown));
    }

    #[test]
    fn roles_are_ordered_and_routes_need_the_least_role_that_may() {
        assert!(Role::Viewer < Role::Submitter && Role::Submitter < Role::Operator);
        assert!(Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(required(&Method::GET, paths::JOBS), Role::Viewer);
        assert_eq!(required(&Method::POST, paths::JOBS), Role::Submitter);
        assert_eq!(required(&Method::DELETE, paths::JOB), Role::Submitter);
        assert_eq!(required(&Method::POST, paths::TEMPLATES), Role::Operator);
        assert_eq!(
            required(&Method::POST, paths::COMPUTE_ENV_SCALE),
            Role::Operator
        );
        assert_eq!(required(&Method::GET, paths::AUDIT), Role::Admin);
        assert_eq!(required(&Method::GET, paths::TOKENS), Role::Admin);
        assert_eq!(required(&Method::POST, paths::PROJECTS), Role::Admin);
        assert_eq!(required(&Method::GET, paths::PROJECTS), Role::Viewer);
        assert_eq!(required(&Method::POST, "/v1/something-new"), Role::Admin);
    }
}
