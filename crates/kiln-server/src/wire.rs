//! Domain ↔ wire: the conversions between `kiln-core`/`kiln-store` types and the API's wire
//! types (`kiln_api`) that more than one module needs.

use std::collections::BTreeMap;

use kiln_api::{JobSummary, TaskDetail};
use kiln_core::engine::TaskView;
use kiln_core::state::Reason;
use kiln_store::JobRow;

/// Milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A reason's text form (which parses back).
pub fn text(r: Option<&Reason>) -> Option<String> {
    r.map(ToString::to_string)
}

/// A task's in-memory view (`kiln run`'s progress) as its wire type.
pub fn task_detail(v: TaskView) -> TaskDetail {
    TaskDetail {
        name: v.name,
        state: v.state.to_string(),
        reason: text(v.reason.as_ref()),
        instances: v.instances,
        counts: v
            .counts
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A stored job row as listed.
pub fn job_summary(r: &JobRow) -> JobSummary {
    JobSummary {
        id: r.id.clone(),
        name: r.name.clone(),
        state: r.state.to_string(),
        reason: text(r.reason.as_ref()),
        priority: r.priority,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}
