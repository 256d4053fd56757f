//! `kiln submit`, `kiln jobs`, `kiln job show|terminate|retry|delete`, `kiln logs`, `kiln why`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kiln_api::{ClientError, JobDetail, JobList, JobSummary, TaskDetail};
use kiln_core::spec::{self, SpecErrors, Templates};
use kiln_core::state::State;
use serde_json::json;
use tokio::signal::unix::{Signal, SignalKind};

use super::local::StateDirOpt;
use super::{Conn, Exit, Outcome, OutputOpt, ServerOpts, is_json, or_dash, paren};
use crate::load::{error_json, print_errors, read_error, read_spec_bytes};
use crate::output::print_data;
use crate::output::table;
use crate::{Format, exit};

/// How often `submit --wait` asks for the job.
const POLL: Duration = Duration::from_millis(200);
/// How long `submit --wait` keeps trying while the server cannot be reached.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The job spec (YAML, JSON, or Tencent BatchCompute JSON); `-` reads standard input.
    file: PathBuf,
    /// Wait for the job to end, printing each task as it ends; exit 0 if the job SUCCEED,
    /// 1 otherwise. Ctrl-C stops waiting (exit 130); the job keeps running on the server.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// Only jobs in this state (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEED,
    /// FAILED, FAILED_INTERRUPTED).
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Jobs per page [default: the server's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
    /// Fetch every page, not just the first.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    local: StateDirOpt,
    #[command(flatten)]
    out: OutputOpt,
}

/// `kiln job …`.
#[derive(Debug, clap::Subcommand)]
pub enum JobCmd {
    /// Show a job and its tasks, with instance counts by state.
    Show(ShowArgs),
    /// Stop what runs of a job; what has not run ends FAILED (TERMINATED_BY_USER). With
    /// --task and --index, only that instance.
    Terminate(TerminateArgs),
    /// Re-run the instances of a FAILED or FAILED_INTERRUPTED job that did not succeed, and
    /// the tasks downstream of them.
    Retry(JobIdArgs),
    /// Delete a finished job, its records and its logs.
    Delete(JobIdArgs),
}

#[derive(Debug, clap::Args)]
pub struct JobIdArgs {
    /// The job id (`job-…`).
    id: String,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The job id (`job-…`).
    id: String,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    local: StateDirOpt,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
pub struct TerminateArgs {
    /// The job id (`job-…`).
    id: String,
    /// Terminate only an instance of this task (with --index).
    #[arg(long, requires = "index")]
    task: Option<String>,
    /// The instance of --task to terminate (0-based).
    #[arg(long, requires = "task")]
    index: Option<u32>,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The job id.
    job: String,
    /// The task name.
    task: String,
    /// The instance index (0-based).
    #[arg(default_value_t = 0)]
    index: u32,
    /// Keep printing output as it is written, until the instance ends.
    #[arg(short, long)]
    follow: bool,
    /// Print the instance's standard error instead of its standard output.
    #[arg(long)]
    stderr: bool,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    local: StateDirOpt,
}

#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    /// The job id.
    job: String,
    /// A task of the job.
    task: Option<String>,
    /// An instance of the task (0-based).
    index: Option<u32>,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    local: StateDirOpt,
    #[command(flatten)]
    out: OutputOpt,
}

// ---- submit -----------------------------------------------------------------------------------

/// `kiln submit FILE [--wait]`.
pub async fn submit(args: SubmitArgs) -> Outcome {
    let format = args.out.output;
    let bytes = match read_spec_bytes(&args.file) {
        Ok(b) => b,
        Err(message) => return Err(spec_errors(&args, &read_error(message))),
    };
    // Validate here first, so that nothing is sent for a spec the server would refuse. Task
    // templates and added instance types are the server's: a spec whose only errors are
    // unknown templates or instance types goes anyway, and the server judges them.
    let mut bytes = bytes;
    match spec::parse_job(&bytes, &Templates::new()) {
        Ok(parsed) => {
            if format == Format::Table {
                for w in &parsed.warnings {
                    eprintln!("warning: {w}");
                }
            }
            match inline_local_items(&args.file, &bytes, &parsed.spec) {
                Ok(Some(inlined)) => bytes = inlined,
                Ok(None) => {}
                Err(errors) => return Err(spec_errors(&args, &errors)),
            }
        }
        Err(errors) if only_server_side(&errors) => {}
        Err(errors) => return Err(spec_errors(&args, &errors)),
    }
    let content_type = if is_json(&bytes) {
        "application/json"
    } else {
        "application/yaml"
    };
    let conn = args.server.connect()?;
    let submitted = conn
        .client
        .submit(bytes, content_type)
        .await
        .map_err(|e| conn.fail(e))?;
    if format == Format::Table {
        println!("{} submitted", submitted.id);
    } else if !args.wait {
        print_data(format, &submitted);
    }
    if !args.wait {
        return Ok(exit::OK);
    }
    flush_stdout();
    let job = wait(&conn, &submitted.id).await?;
    if format == Format::Table {
        print_job(&job);
    } else {
        print_data(format, &job);
    }
    Ok(if job.state == State::Succeed.as_str() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// The server cannot read this machine's files: a task whose `each_line` / `each_json` names
/// a local path (relative to the spec file's directory) gets its items sent along, as `each`.
/// Returns the rewritten spec (JSON), or `None` when no task reads a local file.
fn inline_local_items(
    file: &std::path::Path,
    bytes: &[u8],
    parsed: &kiln_core::model::JobSpec,
) -> Result<Option<Vec<u8>>, SpecErrors> {
    let local: Vec<(usize, String, String)> = spec::unread_items(parsed)
        .into_iter()
        .filter(|(_, at, _)| !at.contains("://"))
        .collect();
    if local.is_empty() {
        return Ok(None);
    }
    let one = |path: &str, message: String| {
        SpecErrors(vec![kiln_core::spec::SpecError {
            path: path.to_string(),
            message,
            hint: None,
        }])
    };
    let mut doc = super::parse_document(bytes).map_err(|e| one("", e))?;
    let base = match file.parent() {
        Some(dir) if file != std::path::Path::new("-") && !dir.as_os_str().is_empty() => {
            dir.to_path_buf()
        }
        _ => PathBuf::from("."),
    };
    for (t, at, path) in local {
        let data = kiln_server::items::read_local(&base.join(&at))
            .map_err(|e| one(&path, format!("cannot read `{at}`: {e}")))?;
        let list = if path.ends_with("each_line") {
            kiln_core::items::from_lines(&data)
        } else {
            kiln_core::items::from_json(&data)
        }
        .map_err(|errors| {
            SpecErrors(
                errors
                    .into_iter()
                    .map(|e| kiln_core::spec::SpecError {
                        path: path.clone(),
                        message: format!("{at}: {e}"),
                        hint: None,
                    })
                    .collect(),
            )
        })?;
        let items: Vec<serde_json::Value> = list
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let name = &parsed.tasks[t].name;
        let Some(task) = doc
            .get_mut("tasks")
            .and_then(|tasks| tasks.get_mut(name))
            .and_then(serde_json::Value::as_object_mut)
        else {
            return Err(one(
                &path,
                format!("task `{name}` is not where it was read"),
            ));
        };
        task.remove("each_line");
        task.remove("each_json");
        task.insert("each".into(), serde_json::Value::Array(items));
    }
    let out = serde_json::to_vec(&doc).map_err(|e| one("", e.to_string()))?;
    // What is sent must be what was checked: parse the rewritten spec once more.
    spec::parse_job(&out, &Templates::new()).map(|_| Some(out))
}

/// Whether every error is an unknown task template (`tasks.NAME.template`).
/// Whether every error is about something only the server knows: task templates and the
/// instance types its configuration adds.
fn only_server_side(errors: &SpecErrors) -> bool {
    !errors.0.is_empty()
        && errors.0.iter().all(|e| {
            e.path.ends_with(".template") || e.message.starts_with("unknown instance type")
        })
}

/// Prints a spec's errors as `kiln validate` does; nothing was sent.
fn spec_errors(args: &SubmitArgs, errors: &SpecErrors) -> Exit {
    if args.out.output == Format::Table {
        print_errors(&args.file, errors);
    } else {
        print_data(
            args.out.output,
            &json!({"valid": false, "errors": error_json(&errors.0)}),
        );
    }
    Exit(exit::INVALID)
}

/// Polls the job until it is terminal, printing each task as it ends (on stderr).
async fn wait(conn: &Conn, id: &str) -> Result<JobDetail, Exit> {
    let mut sigint = match tokio::signal::unix::signal(SignalKind::interrupt()) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("warning: cannot catch Ctrl-C: {e}");
            None
        }
    };
    let stop = |id: &str| {
        eprintln!(
            "\nstopped waiting: job {id} keeps running on the server (`kiln job show {id}`, `kiln job terminate {id}`)"
        );
        Exit(exit::INTERRUPTED)
    };
    let mut reported = BTreeSet::new();
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let answer = tokio::select! {
            answer = conn.client.job(id) => answer,
            () = interrupted(&mut sigint) => return Err(stop(id)),
        };
        match answer {
            Ok(job) => {
                if unreachable_since.take().is_some() {
                    eprintln!("reached the server again");
                }
                for t in &job.tasks {
                    if is_terminal(&t.state) && !reported.contains(&t.name) {
                        eprintln!("task {} {}", t.name, progress_message(t));
                        reported.insert(t.name.clone());
                    }
                }
                if is_terminal(&job.state) {
                    return Ok(job);
                }
            }
            Err(ClientError::Transport(why)) => {
                let since = *unreachable_since.get_or_insert_with(|| {
                    eprintln!("warning: lost the server ({why}); still trying");
                    Instant::now()
                });
                if since.elapsed() > UNREACHABLE_GRACE {
                    let e = conn.fail(ClientError::Transport(why));
                    eprintln!("job {id} may still be running on the server");
                    return Err(e);
                }
            }
            Err(e) => return Err(conn.fail(e)),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = interrupted(&mut sigint) => return Err(stop(id)),
        }
    }
}

/// Resolves on SIGINT; never when it cannot be caught.
async fn interrupted(sigint: &mut Option<Signal>) {
    match sigint {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Whether a state name is terminal (an unknown name is not).
fn is_terminal(state: &str) -> bool {
    state.parse::<State>().is_ok_and(State::is_terminal)
}

/// `STATE (reason) n STATE, …`, leaving out instances still waiting, as `kiln run` does.
fn progress_message(t: &TaskDetail) -> String {
    let waiting = [State::Pending.as_str(), State::Runnable.as_str()];
    let counts: Vec<String> = t
        .counts
        .iter()
        .filter(|(s, n)| **n > 0 && !waiting.contains(&s.as_str()))
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    format!(
        "{}{} {}",
        t.state,
        paren(t.reason.as_deref()),
        counts.join(", ")
    )
    .trim_end()
    .to_string()
}

fn flush_stdout() {
    let _ = std::io::stdout().flush();
}

// ---- jobs -------------------------------------------------------------------------------------

/// `kiln jobs`.
pub async fn jobs(args: JobsArgs) -> Outcome {
    if let Some(local) = args.local.open()? {
        return local.jobs(args.state.as_deref(), args.out.output);
    }
    let conn = args.server.connect()?;
    let state = args.state.as_deref().map(str::to_ascii_uppercase);
    let mut list = conn
        .client
        .jobs(state.as_deref(), args.limit, None)
        .await
        .map_err(|e| conn.fail(e))?;
    if args.all {
        let mut seen = BTreeSet::new();
        while let Some(cursor) = list.next.take() {
            if !seen.insert(cursor.clone()) {
                eprintln!("error: the server answered the same page cursor twice");
                return Err(Exit(exit::FAILED));
            }
            let page = conn
                .client
                .jobs(state.as_deref(), args.limit, Some(&cursor))
                .await
                .map_err(|e| conn.fail(e))?;
            list.items.extend(page.items);
            list.next = page.next;
        }
    }
    print_jobs(args.out.output, &list);
    Ok(exit::OK)
}

pub(super) fn print_jobs(format: Format, list: &JobList) {
    if format != Format::Table {
        print_data(format, list);
        return;
    }
    let mut t = table(["ID", "NAME", "STATE", "REASON", "PRIORITY", "CREATED"]);
    for j in &list.items {
        t.add_row([
            j.id.clone(),
            j.name.clone(),
            j.state.clone(),
            or_dash(j.reason.as_deref()),
            j.priority.to_string(),
            j.created_at.clone(),
        ]);
    }
    if list.items.is_empty() {
        eprintln!("no jobs");
    } else {
        println!("{t}");
    }
    if list.next.is_some() {
        eprintln!("(more jobs: use --all to list them all)");
    }
}

// ---- job show | terminate | retry | delete ----------------------------------------------------

/// `kiln job …`.
pub async fn job(cmd: JobCmd) -> Outcome {
    match cmd {
        JobCmd::Show(a) => {
            if let Some(local) = a.local.open()? {
                return local.show(&a.id, a.out.output);
            }
            let conn = a.server.connect()?;
            let job = conn.client.job(&a.id).await.map_err(|e| conn.fail(e))?;
            if a.out.output == Format::Table {
                print_job(&job);
            } else {
                print_data(a.out.output, &job);
            }
        }
        JobCmd::Terminate(a) => {
            let conn = a.server.connect()?;
            let job = match (&a.task, a.index) {
                (Some(task), Some(index)) => {
                    conn.client.terminate_instance(&a.id, task, index).await
                }
                _ => conn.client.terminate(&a.id).await,
            }
            .map_err(|e| conn.fail(e))?;
            print_summary(a.out.output, &job);
        }
        JobCmd::Retry(a) => {
            let conn = a.server.connect()?;
            let job = conn.client.retry(&a.id).await.map_err(|e| conn.fail(e))?;
            print_summary(a.out.output, &job);
        }
        JobCmd::Delete(a) => {
            let conn = a.server.connect()?;
            conn.client.delete(&a.id).await.map_err(|e| conn.fail(e))?;
            if a.out.output == Format::Table {
                println!("job {} deleted", a.id);
            } else {
                print_data(a.out.output, &json!({"id": a.id, "deleted": true}));
            }
        }
    }
    Ok(exit::OK)
}

fn print_summary(format: Format, job: &JobSummary) {
    if format == Format::Table {
        println!(
            "job {} {}{}",
            job.id,
            job.state,
            paren(job.reason.as_deref())
        );
    } else {
        print_data(format, job);
    }
}

/// A job as a table: per task, instance counts by state; then the job's line.
pub(super) fn print_job(job: &JobDetail) {
    let t = crate::output::task_table(&job.tasks);
    println!("{t}");
    println!(
        "job {} `{}` {}{} (priority {}, created {})",
        job.id,
        job.name,
        job.state,
        paren(job.reason.as_deref()),
        job.priority,
        job.created_at
    );
}

// ---- logs -------------------------------------------------------------------------------------

/// `kiln logs JOB TASK [INDEX]`: the body goes to stdout as it arrives.
pub async fn logs(args: LogsArgs) -> Outcome {
    if let Some(local) = args.local.open()? {
        return local
            .logs(&args.job, &args.task, args.index, args.stderr, args.follow)
            .await;
    }
    let conn = args.server.connect()?;
    let stream = if args.stderr {
        kiln_api::STDERR
    } else {
        kiln_api::STDOUT
    };
    let mut resp = conn
        .client
        .logs(&args.job, &args.task, args.index, stream, args.follow)
        .await
        .map_err(|e| conn.fail(e))?;
    let mut out = std::io::stdout().lock();
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                let written = out.write_all(&bytes).and_then(|()| out.flush());
                if let Err(e) = written {
                    // `kiln logs … | head` closes the pipe early: that is not an error.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(exit::OK);
                    }
                    eprintln!("error: cannot write the output: {e}");
                    return Err(Exit(exit::FAILED));
                }
            }
            Ok(None) => return Ok(exit::OK),
            Err(e) => {
                let _ = out.flush();
                drop(out);
                return Err(conn.fail(ClientError::Transport(format!("the log stream broke: {e}"))));
            }
        }
    }
}

// ---- why --------------------------------------------------------------------------------------

/// `kiln why JOB [TASK [INDEX]]`.
pub async fn why(args: WhyArgs) -> Outcome {
    if let Some(local) = args.local.open()? {
        return local.why(&args.job, args.task.as_deref(), args.index, args.out.output);
    }
    let conn = args.server.connect()?;
    let why = conn
        .client
        .why(&args.job, args.task.as_deref(), args.index)
        .await
        .map_err(|e| conn.fail(e))?;
    if args.out.output == Format::Table {
        println!("{}", why.explanation);
        if let Some(reason) = &why.reason {
            println!("reason: {reason}");
        }
    } else {
        print_data(args.out.output, &why);
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use kiln_core::spec::SpecError;

    fn err(path: &str) -> SpecError {
        SpecError {
            path: path.into(),
            message: "m".into(),
            hint: None,
        }
    }

    #[test]
    fn only_template_errors_are_left_to_the_server() {
        assert!(only_server_side(&SpecErrors(vec![
            err("tasks.a.template"),
            err("tasks.b.template")
        ])));
        assert!(!only_server_side(&SpecErrors(vec![
            err("tasks.a.template"),
            err("tasks.a.command")
        ])));
        assert!(!only_server_side(&SpecErrors(vec![])));
    }

    #[test]
    fn unknown_templates_give_only_template_errors() {
        let spec = b"name: j\ntasks:\n  a: {template: base}\n  b: {template: base, instances: 2}\n  c: {command: 'true'}\ndag: a -> c\n";
        let Err(errors) = spec::parse_job(spec, &Templates::new()) else {
            panic!("templates are unknown locally");
        };
        assert!(only_server_side(&errors), "{errors}");
    }

    #[test]
    fn progress_leaves_out_waiting_instances() {
        let t = TaskDetail {
            name: "a".into(),
            state: "FAILED".into(),
            reason: Some("EXIT_CODE 3".into()),
            instances: 4,
            counts: BTreeMap::from([
                ("SUCCEED".into(), 2),
                ("FAILED".into(), 1),
                ("PENDING".into(), 1),
            ]),
        };
        assert_eq!(
            progress_message(&t),
            "FAILED (EXIT_CODE 3) 1 FAILED, 2 SUCCEED"
        );
        assert!(is_terminal("FAILED_INTERRUPTED"));
        assert!(!is_terminal("RUNNING"));
        assert!(!is_terminal("NOPE"));
    }
}
