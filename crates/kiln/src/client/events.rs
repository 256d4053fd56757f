//! `kiln events`: the server's journal, as a table or data, once or followed.

use std::io::Write;
use std::time::Duration;

use kiln_api::{ClientError, EventRecord};
use kiln_core::journal::EventKind;

use super::{Conn, Exit, Outcome, OutputOpt, ServerOpts};
use crate::output::print_data;
use crate::{Format, exit};

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only this job's events.
    #[arg(long)]
    job: Option<String>,
    /// Only events of these types, comma-separated (e.g. `InstanceFailed,JobSucceeded`).
    #[arg(long = "type", value_name = "TYPES")]
    kind: Option<String>,
    /// Only events after this sequence number [default: from the oldest kept].
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    after: u64,
    /// Keep printing events as they happen, until Ctrl-C; a server restart or failover is
    /// followed through without losing or repeating one. With `-o json`, one object a line.
    #[arg(short, long)]
    follow: bool,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

/// Events per page when reading without --follow.
const PAGE: u32 = 1000;

/// `kiln events`.
pub async fn events(args: EventsArgs) -> Outcome {
    if let Some(job) = &args.job
        && !valid_id(job)
    {
        eprintln!("error: --job: `{job}` is not a valid job id");
        return Err(Exit(exit::INVALID));
    }
    if let Some(list) = &args.kind {
        for k in list.split(',') {
            if let Err(e) = k.trim().parse::<EventKind>() {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                eprintln!("error: --type: {e}; the types are {}", known.join(", "));
                return Err(Exit(exit::INVALID));
            }
        }
    }
    let conn = args.server.connect()?;
    if args.follow {
        return follow(&conn, &args).await;
    }
    let mut after = args.after;
    let mut all = Vec::new();
    loop {
        let page = conn
            .client
            .events(after, Some(PAGE), args.job.as_deref(), args.kind.as_deref())
            .await
            .map_err(|e| conn.fail(e))?;
        let n = page.items.len();
        after = page.next;
        if args.out.output == Format::Table {
            for e in &page.items {
                if !print_line(&line(e)) {
                    return Ok(exit::OK);
                }
            }
        } else {
            all.extend(page.items);
        }
        if n < PAGE as usize {
            break;
        }
    }
    if args.out.output != Format::Table {
        print_data(args.out.output, &all);
    }
    Ok(exit::OK)
}

/// Follows the stream, reconnecting after the last event seen whenever it breaks.
async fn follow(conn: &Conn, args: &EventsArgs) -> Outcome {
    let mut after = args.after;
    let mut broken = false;
    loop {
        let resp = conn
            .client
            .event_stream(after, args.job.as_deref(), args.kind.as_deref())
            .await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(e @ (ClientError::Transport(_) | ClientError::Http { status: 503, .. })) => {
                if !broken {
                    eprintln!("kiln: the event stream broke ({e}); reconnecting");
                    broken = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(conn.fail(e)),
        };
        broken = false;
        let mut parser = kiln_api::sse::Parser::default();
        while let Ok(Some(bytes)) = resp.chunk().await {
            for m in parser.push(&bytes) {
                let Ok(e) = serde_json::from_str::<EventRecord>(&m.data) else {
                    continue;
                };
                // Never twice, even if a server sent one again.
                if e.seq <= after {
                    continue;
                }
                after = e.seq;
                let text = match args.out.output {
                    Format::Table => line(&e),
                    Format::Json => serde_json::to_string(&e).unwrap_or_default(),
                    Format::Yaml => format!(
                        "---\n{}",
                        serde_saphyr::to_string(&e).unwrap_or_default().trim_end()
                    ),
                };
                if !print_line(&text) {
                    return Ok(exit::OK);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints a line; `false` once stdout is closed (`kiln events | head`).
fn print_line(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
}

/// One event as a table line: `SEQ TIME TYPE JOB TASK[INDEX]#ATTEMPT details`.
fn line(e: &EventRecord) -> String {
    let mut what = String::new();
    if let Some(task) = &e.task {
        what.push_str(task);
        if let Some(i) = e.index {
            what.push_str(&format!("[{i}]"));
        }
        if let Some(a) = e.attempt {
            what.push_str(&format!("#{a}"));
        }
    }
    let mut details = Vec::new();
    if let Some(n) = &e.node {
        details.push(format!("node={n}"));
    }
    if let Some(c) = &e.compute_env {
        details.push(format!("env={c}"));
    }
    if let Some(r) = &e.reason {
        details.push(format!("reason={r}"));
    }
    if let Some(x) = e.exit_code {
        details.push(format!("exit={x}"));
    }
    if let Some(d) = e.desired_nodes {
        details.push(format!("desired={d}"));
    }
    format!(
        "{:<7} {:<24} {:<20} {:<14} {:<16} {}",
        e.seq,
        e.at,
        e.kind,
        e.job.as_deref().unwrap_or("-"),
        if what.is_empty() { "-" } else { &what },
        details.join(" ")
    )
    .trim_end()
    .to_string()
}

/// A job id as the API takes it.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
