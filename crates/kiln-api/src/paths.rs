//! Every route of the API, in two forms: a `const` route template in axum 0.8 syntax
//! (`/v1/jobs/{id}`) for the server's router, and a `fn` that fills it in (segments
//! percent-encoded) for the client.
//!
//! | route | method | body → answer |
//! |---|---|---|
//! | [`HEALTH`] | GET | → [`Health`](crate::Health) (no token) |
//! | [`OPENAPI`] | GET | → the OpenAPI document |
//! | [`JOBS`] | POST | spec bytes (any format, with its content type) → 201 [`SubmitResponse`](crate::SubmitResponse) |
//! | [`JOBS`] `?state=&limit=&cursor=` | GET | → [`JobList`](crate::JobList) |
//! | [`JOB`] | GET | → [`JobDetail`](crate::JobDetail) |
//! | [`JOB`] | DELETE | → 204 |
//! | [`JOB_TERMINATE`], [`JOB_RETRY`] | POST | (no body) → [`JobSummary`](crate::JobSummary) |
//! | [`JOB_WHY`] `?task=&index=` | GET | → [`Why`](crate::Why) |
//! | [`INSTANCE_TERMINATE`] | POST | (no body) → [`JobSummary`](crate::JobSummary) |
//! | [`INSTANCES`] `?cursor=&limit=` | GET | → [`InstanceList`](crate::InstanceList) |
//! | [`LOGS`] `?stream=stdout\|stderr&follow=true` | GET | → raw bytes (`application/octet-stream`), streamed while `follow` |
//! | [`TEMPLATES`] | GET / POST | → [`TemplateList`](crate::TemplateList) / [`TaskTemplate`](crate::TaskTemplate) → 201 [`TaskTemplate`](crate::TaskTemplate) |
//! | [`TEMPLATE`] | GET / DELETE | → [`TaskTemplate`](crate::TaskTemplate) / 204 |
//! | [`COMPUTE_ENVS`] | GET / POST | → [`ComputeEnvList`](crate::ComputeEnvList) / [`ComputeEnv`](crate::ComputeEnv) → 201 [`ComputeEnvDetail`](crate::ComputeEnvDetail) |
//! | [`COMPUTE_ENV`] | GET / DELETE | → [`ComputeEnvDetail`](crate::ComputeEnvDetail) / 204 |
//! | [`COMPUTE_ENV_SCALE`] | POST | [`ScaleRequest`](crate::ScaleRequest) → [`ComputeEnvDetail`](crate::ComputeEnvDetail) |
//! | [`COMPUTE_ENV_ACTIVITIES`] | GET | → [`ActivityList`](crate::ActivityList) |
//! | [`EVENTS`] `?after=&limit=&job=&type=` | GET | → [`EventPage`](crate::EventPage); with `Accept: text/event-stream`, Server-Sent Events (`id:` = `seq`, resumed with `Last-Event-ID`) |
//! | [`METRICS`] | GET | → Prometheus text (no token from loopback, else the admin token) |
//! | [`NODES`] | GET | → [`NodeList`](crate::NodeList) |
//! | [`NODE_REVOKE`] | POST | (no body) → [`NodeRevoked`](crate::NodeRevoked) |
//! | [`JOIN_TOKEN_ROTATE`] | POST | (no body) → [`JoinToken`](crate::JoinToken) |
//! | [`STORAGE_PROFILES`] | GET / POST | → [`StorageProfileList`](crate::StorageProfileList) / [`StorageProfileSpec`](crate::StorageProfileSpec) → 201 [`StorageProfile`](crate::StorageProfile) |
//! | [`STORAGE_PROFILE`] | GET / DELETE | → [`StorageProfile`](crate::StorageProfile) / 204 |
//! | [`PROJECTS`] | GET / POST | → [`ProjectList`](crate::ProjectList) / [`ProjectSpec`](crate::ProjectSpec) → 201 [`Project`](crate::Project) |
//! | [`PROJECT`] | GET / DELETE | → [`Project`](crate::Project) / 204 |
//! | [`TOKENS`] | GET / POST | → [`TokenList`](crate::TokenList) / [`TokenRequest`](crate::TokenRequest) → 201 [`TokenCreated`](crate::TokenCreated) |
//! | [`TOKEN_REVOKE`] | POST | (no body) → [`TokenInfo`](crate::TokenInfo) |
//! | [`AUDIT`] `?since=&cursor=&limit=` | GET | → [`AuditList`](crate::AuditList) |
//! | [`AGENT_REGISTER`] | POST | [`RegisterRequest`](crate::RegisterRequest) → [`RegisterResponse`](crate::RegisterResponse) |
//! | [`AGENT_HEARTBEAT`] | POST | [`HeartbeatRequest`](crate::HeartbeatRequest) → [`HeartbeatResponse`](crate::HeartbeatResponse) |
//! | [`AGENT_LEASE`] | POST | [`LeaseRequest`](crate::LeaseRequest) → [`LeaseResponse`](crate::LeaseResponse) |
//! | [`AGENT_REPORT`] | POST | [`ReportRequest`](crate::ReportRequest) → [`ReportResponse`](crate::ReportResponse) |
//! | [`AGENT_LOGS`] | POST | [`LogAppendRequest`](crate::LogAppendRequest) → [`LogAppendResponse`](crate::LogAppendResponse) |
//!
//! Every error answer is an [`ErrorBody`](crate::ErrorBody) with a 4xx/5xx status.

pub const HEALTH: &str = "/v1/health";
pub const OPENAPI: &str = "/v1/openapi.json";
pub const JOBS: &str = "/v1/jobs";
pub const JOB: &str = "/v1/jobs/{id}";
pub const JOB_TERMINATE: &str = "/v1/jobs/{id}/terminate";
pub const JOB_RETRY: &str = "/v1/jobs/{id}/retry";
pub const JOB_WHY: &str = "/v1/jobs/{id}/why";
pub const INSTANCES: &str = "/v1/jobs/{id}/tasks/{task}/instances";
pub const LOGS: &str = "/v1/jobs/{id}/tasks/{task}/instances/{index}/logs";
pub const INSTANCE_TERMINATE: &str = "/v1/jobs/{id}/tasks/{task}/instances/{index}/terminate";
pub const TEMPLATES: &str = "/v1/task-templates";
pub const TEMPLATE: &str = "/v1/task-templates/{name}";
pub const COMPUTE_ENVS: &str = "/v1/compute-envs";
pub const COMPUTE_ENV: &str = "/v1/compute-envs/{name}";
pub const COMPUTE_ENV_SCALE: &str = "/v1/compute-envs/{name}/scale";
pub const COMPUTE_ENV_ACTIVITIES: &str = "/v1/compute-envs/{name}/activities";
pub const NODES: &str = "/v1/nodes";
pub const EVENTS: &str = "/v1/events";
pub const METRICS: &str = "/metrics";
pub const NODE_REVOKE: &str = "/v1/nodes/{name}/revoke";
pub const JOIN_TOKEN_ROTATE: &str = "/v1/join-token/rotate";
pub const STORAGE_PROFILES: &str = "/v1/storage-profiles";
pub const STORAGE_PROFILE: &str = "/v1/storage-profiles/{name}";
pub const PROJECTS: &str = "/v1/projects";
pub const PROJECT: &str = "/v1/projects/{name}";
pub const TOKENS: &str = "/v1/tokens";
pub const TOKEN_REVOKE: &str = "/v1/tokens/{name}/revoke";
pub const AUDIT: &str = "/v1/audit";
pub const AGENT_REGISTER: &str = "/v1/agent/register";
pub const AGENT_HEARTBEAT: &str = "/v1/agent/heartbeat";
pub const AGENT_LEASE: &str = "/v1/agent/lease";
pub const AGENT_REPORT: &str = "/v1/agent/report";
pub const AGENT_LOGS: &str = "/v1/agent/logs";

/// Percent-encodes one path segment: every byte outside RFC 3986's unreserved set.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn job(id: &str) -> String {
    format!("{JOBS}/{}", segment(id))
}

pub fn job_terminate(id: &str) -> String {
    format!("{}/terminate", job(id))
}

pub fn job_retry(id: &str) -> String {
    format!("{}/retry", job(id))
}

pub fn job_why(id: &str) -> String {
    format!("{}/why", job(id))
}

pub fn instances(id: &str, task: &str) -> String {
    format!("{}/tasks/{}/instances", job(id), segment(task))
}

pub fn logs(id: &str, task: &str, index: u32) -> String {
    format!("{}/{index}/logs", instances(id, task))
}

pub fn instance_terminate(id: &str, task: &str, index: u32) -> String {
    format!("{}/{index}/terminate", instances(id, task))
}

pub fn storage_profile(name: &str) -> String {
    format!("{STORAGE_PROFILES}/{}", segment(name))
}

pub fn template(name: &str) -> String {
    format!("{TEMPLATES}/{}", segment(name))
}

pub fn compute_env(name: &str) -> String {
    format!("{COMPUTE_ENVS}/{}", segment(name))
}

pub fn compute_env_scale(name: &str) -> String {
    format!("{}/scale", compute_env(name))
}

pub fn compute_env_activities(name: &str) -> String {
    format!("{}/activities", compute_env(name))
}

pub fn project(name: &str) -> String {
    format!("{PROJECTS}/{}", segment(name))
}

pub fn token_revoke(name: &str) -> String {
    format!("{TOKENS}/{}/revoke", segment(name))
}

pub fn node_revoke(name: &str) -> String {
    format!("{NODES}/{}/revoke", segment(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a route template the naive way, to check the `fn`s against the `const`s.
    fn fill(template: &str, params: &[(&str, &str)]) -> String {
        let mut s = template.to_string();
        for (name, value) in params {
            s = s.replace(&format!("{{{name}}}"), value);
        }
        s
    }

    #[test]
    fn fns_match_templates() {
        let p = [
            ("id", "job-1"),
            ("task", "split"),
            ("index", "7"),
            ("name", "pool-a"),
        ];
        assert_eq!(job("job-1"), fill(JOB, &p));
        assert_eq!(job_terminate("job-1"), fill(JOB_TERMINATE, &p));
        assert_eq!(job_retry("job-1"), fill(JOB_RETRY, &p));
        assert_eq!(job_why("job-1"), fill(JOB_WHY, &p));
        assert_eq!(instances("job-1", "split"), fill(INSTANCES, &p));
        assert_eq!(logs("job-1", "split", 7), fill(LOGS, &p));
        assert_eq!(
            instance_terminate("job-1", "split", 7),
            fill(INSTANCE_TERMINATE, &p)
        );
        assert_eq!(template("pool-a"), fill(TEMPLATE, &p));
        assert_eq!(compute_env("pool-a"), fill(COMPUTE_ENV, &p));
        assert_eq!(compute_env_scale("pool-a"), fill(COMPUTE_ENV_SCALE, &p));
        assert_eq!(
            compute_env_activities("pool-a"),
            fill(COMPUTE_ENV_ACTIVITIES, &p)
        );
        assert_eq!(node_revoke("pool-a"), fill(NODE_REVOKE, &p));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("a b/c?d%é"), "a%20b%2Fc%3Fd%25%C3%A9");
        assert_eq!(segment("Az09-._~"), "Az09-._~");
        assert_eq!(
            logs("j/1", "t", 0),
            "/v1/jobs/j%2F1/tasks/t/instances/0/logs"
        );
    }
}
