//! What both backends share: how records are turned into columns and back, and how a batch
//! of changes is coalesced. Nothing here knows a database driver.

use std::collections::HashSet;

use kiln_core::engine::{Change, JobId};
use kiln_core::journal::{Detail, Event};
use kiln_core::model::{JobSpec, SPEC_VERSION};
use kiln_core::state::{Reason, State};

use crate::{Result, StoreError};

pub(crate) fn corrupt(what: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

pub(crate) fn parse_state(s: &str) -> Result<State> {
    s.parse().map_err(|e| corrupt("state", e))
}

pub(crate) fn parse_reason(s: Option<String>) -> Result<Option<Reason>> {
    s.map(|s| s.parse().map_err(|e| corrupt("reason", e)))
        .transpose()
}

pub(crate) fn text(r: &Option<Reason>) -> Option<String> {
    r.as_ref().map(ToString::to_string)
}

/// The states a job, task or instance is finished in, as stored (for `NOT IN (…)` lists).
pub(crate) fn terminal_states() -> Vec<&'static str> {
    State::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str())
        .collect()
}

/// `'SUCCEED', 'FAILED', …`: the terminal states as an SQL list.
pub(crate) fn terminal_sql() -> String {
    terminal_states()
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn encode_spec(spec: &JobSpec) -> Result<String> {
    serde_json::to_string(spec).map_err(|e| corrupt("spec", e))
}

/// A stored spec, refused unless it has this build's version and its tasks are in DAG order
/// (the engine relies on that).
pub(crate) fn decode_spec(id: &str, json: &str, version: i64) -> Result<JobSpec> {
    if version != i64::from(SPEC_VERSION) {
        return Err(corrupt(
            "spec",
            format!("job {id} has spec version {version}, expected {SPEC_VERSION}"),
        ));
    }
    let spec: JobSpec = serde_json::from_str(json).map_err(|e| corrupt("spec", e))?;
    for (t, task) in spec.tasks.iter().enumerate() {
        if task.deps.iter().any(|d| d.task >= t) {
            return Err(corrupt(
                "spec",
                format!("job {id}: task {t} depends forward"),
            ));
        }
    }
    Ok(spec)
}

/// Every task's items as stored: `(task, chunk number, chunk)` (see
/// [`kiln_core::model::ItemList::chunks`]).
pub(crate) fn item_chunks(spec: &JobSpec) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    for (t, task) in spec.tasks.iter().enumerate() {
        if let Some(list) = task.items.as_ref().and_then(|i| i.list.as_ref()) {
            for (c, chunk) in list.chunks().into_iter().enumerate() {
                out.push((t, c, chunk));
            }
        }
    }
    out
}

/// Keys a change by the record it writes, so that a batch can be coalesced (last write wins).
/// Events are no record: they are kept apart ([`events`]).
fn change_key(c: &Change) -> Option<(u8, &JobId, usize, u32, u32)> {
    Some(match c {
        Change::Job { job, .. } => (0, job, 0, 0, 0),
        Change::Task { job, task, .. } => (1, job, *task, 0, 0),
        Change::Instance {
            job, task, index, ..
        } => (2, job, *task, *index, 0),
        Change::Attempt {
            job,
            task,
            index,
            record,
        } => (3, job, *task, *index, record.attempt),
        Change::Event(_) => return None,
    })
}

/// The job a record's change belongs to (`None` for an event).
pub(crate) fn change_job(c: &Change) -> Option<&JobId> {
    match c {
        Change::Job { job, .. }
        | Change::Task { job, .. }
        | Change::Instance { job, .. }
        | Change::Attempt { job, .. } => Some(job),
        Change::Event(_) => None,
    }
}

/// Only the last change to each record, in the order of those last changes; no events.
pub(crate) fn coalesce(changes: &[Change]) -> Vec<&Change> {
    let mut seen = HashSet::with_capacity(changes.len());
    let mut latest: Vec<&Change> = changes
        .iter()
        .rev()
        .filter(|c| change_key(c).is_some_and(|k| seen.insert(k)))
        .collect();
    latest.reverse();
    latest
}

/// The batch's events, in order.
pub(crate) fn events(changes: &[Change]) -> Vec<&Event> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// An event's detail as stored (JSON).
pub(crate) fn encode_detail(d: &Detail) -> String {
    serde_json::to_string(d).unwrap_or_else(|_| "{}".into())
}

/// A stored event from its columns.
pub(crate) fn stored_event(
    seq: i64,
    at: i64,
    project: String,
    kind: &str,
    job: Option<String>,
    detail: &str,
) -> Result<crate::StoredEvent> {
    Ok(crate::StoredEvent {
        seq: seq as u64,
        event: Event {
            at: at as u64,
            project,
            kind: kind.parse().map_err(|e| corrupt("event", e))?,
            job,
            detail: serde_json::from_str(detail).map_err(|e| corrupt("event", e))?,
        },
    })
}

/// Puts each `(index, attempt)` (in index, then attempt order) into its instance of `page`
/// (in index order); attempts of instances not on the page are dropped.
pub(crate) fn attach_attempts(
    page: &mut [crate::InstancePageItem],
    attempts: impl IntoIterator<Item = (u32, kiln_core::engine::Attempt)>,
) {
    // Both sides are in index order: walk them together.
    let mut slot = 0;
    for (idx, attempt) in attempts {
        while page.get(slot).is_some_and(|(i, _, _)| *i < idx) {
            slot += 1;
        }
        if let Some((i, _, list)) = page.get_mut(slot)
            && *i == idx
        {
            list.push(attempt);
        }
    }
}

/// Per task, counts by state from `(task, state or none, count)` rows in task order (a task
/// with no instances has one row without a state).
pub(crate) fn group_counts(
    job: &str,
    rows: Vec<(i64, Option<String>, u32)>,
) -> Result<Vec<std::collections::BTreeMap<State, u32>>> {
    let mut out: Vec<std::collections::BTreeMap<State, u32>> = Vec::new();
    for (t, state, n) in rows {
        let t = usize::try_from(t).map_err(|e| corrupt("task", e))?;
        // Tasks are numbered 0..n with no gaps.
        if t == out.len() {
            out.push(std::collections::BTreeMap::new());
        } else if t + 1 != out.len() {
            return Err(corrupt(
                "task",
                format!("job {job}: task {t} out of sequence"),
            ));
        }
        if let (Some(state), Some(counts)) = (state, out.last_mut()) {
            counts.insert(parse_state(&state)?, n);
        }
    }
    Ok(out)
}

/// Counts by state as stored: `{"RUNNING": 2, "SUCCEED": 5}`.
pub(crate) fn encode_counts(counts: &std::collections::BTreeMap<State, u32>) -> String {
    let named: std::collections::BTreeMap<&str, u32> =
        counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    serde_json::to_string(&named).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn decode_counts(json: Option<&str>) -> Result<std::collections::BTreeMap<State, u32>> {
    let Some(json) = json else {
        return Ok(std::collections::BTreeMap::new());
    };
    let named: std::collections::BTreeMap<String, u32> =
        serde_json::from_str(json).map_err(|e| corrupt("counts", e))?;
    named
        .into_iter()
        .map(|(s, n)| Ok((parse_state(&s)?, n)))
        .collect()
}

/// A task record from its stored columns.
pub(crate) fn task_record(
    name: String,
    state: &str,
    reason: Option<String>,
    stop: Option<String>,
    unstarted: Option<String>,
    blocked: Option<String>,
    counts: Option<&str>,
) -> Result<crate::TaskRecord> {
    Ok(crate::TaskRecord {
        name,
        state: parse_state(state)?,
        reason: parse_reason(reason)?,
        stop: parse_reason(stop)?,
        unstarted: parse_reason(unstarted)?,
        blocked: parse_reason(blocked)?,
        counts: decode_counts(counts)?,
    })
}
