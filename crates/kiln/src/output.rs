//! Rendering data as a table, JSON or YAML.

use comfy_table::{Table, presets::NOTHING};
use kiln_api::TaskDetail;
use kiln_core::state::State;
use serde::Serialize;

use crate::Format;

/// Prints `value` as JSON or YAML on stdout (tables are rendered by each command).
pub fn print_data(format: Format, value: &impl Serialize) {
    let text = match format {
        Format::Yaml => serde_saphyr::to_string(value).map_err(|e| e.to_string()),
        Format::Json | Format::Table => {
            serde_json::to_string_pretty(value).map_err(|e| e.to_string())
        }
    };
    match text {
        Ok(t) => println!("{}", t.trim_end()),
        Err(e) => eprintln!("error: cannot render output: {e}"),
    }
}

/// A plain table (no borders) with this header.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(header);
    t
}

/// Per task: state, instance counts (succeeded, failed, the rest) and reason.
pub fn task_table(tasks: &[TaskDetail]) -> Table {
    let mut t = table([
        "TASK",
        "STATE",
        "INSTANCES",
        "SUCCEED",
        "FAILED",
        "OTHER",
        "REASON",
    ]);
    for task in tasks {
        let get = |s: State| task.counts.get(s.as_str()).copied().unwrap_or(0);
        let succeed = get(State::Succeed);
        let failed = get(State::Failed) + get(State::FailedInterrupted);
        let other = task.instances.saturating_sub(succeed + failed);
        t.add_row([
            task.name.clone(),
            task.state.clone(),
            task.instances.to_string(),
            succeed.to_string(),
            failed.to_string(),
            other.to_string(),
            task.reason.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}
