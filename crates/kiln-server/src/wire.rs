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

/// A stored journal event as the API shows it.
pub fn event_record(e: &kiln_store::StoredEvent) -> kiln_api::EventRecord {
    let ev = &e.event;
    let d = &ev.detail;
    kiln_api::EventRecord {
        seq: e.seq,
        at: rfc3339(ev.at),
        kind: ev.kind.as_str().to_string(),
        project: ev.project.clone(),
        job: ev.job.clone(),
        task: d.task.clone(),
        index: d.index,
        attempt: d.attempt,
        node: d.node.clone(),
        compute_env: d.compute_env.clone(),
        state: d.state.clone(),
        reason: d.reason.clone(),
        exit_code: d.exit_code,
        desired_nodes: d.desired_nodes,
    }
}
