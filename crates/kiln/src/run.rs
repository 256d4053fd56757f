//! `kiln run`: the embedded mode. One job, this machine, state in SQLite, no server.

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_core::engine::{JobRun, Node, TaskView};
use kiln_core::model::{Image, JobSpec};
use kiln_core::spec::{SpecError, SpecErrors};
use kiln_core::state::State;
use kiln_server::{Driver, LocalConfig};
use serde_json::json;

use crate::load::{error_json, load_spec, print_errors};
use crate::output::print_data;
use crate::{Format, exit};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job spec (YAML, JSON, or Tencent BatchCompute JSON). Optional with --resume.
    #[arg(required_unless_present = "resume")]
    file: Option<PathBuf>,
    /// Where jobs, logs and working directories are kept [default: the user's data directory,
    /// e.g. ~/.local/share/kiln].
    #[arg(long, env = "KILN_STATE_DIR", value_parser = crate::absolute_path)]
    state_dir: Option<PathBuf>,
    /// Storage profiles for the job's mappings: a list in the format of `kiln storage create`
    /// (YAML or JSON). Tasks name them (`storage_profile`, a mapping's `profile`); a
    /// `default: true` one maps what names none; else the `AWS_*` environment.
    #[arg(long, value_name = "FILE", value_parser = crate::absolute_path)]
    storage_profiles: Option<PathBuf>,
    /// Continue an unfinished job of this state directory (after Ctrl-C or a crash).
    #[arg(long, value_name = "JOB_ID", conflicts_with = "fresh")]
    resume: Option<String>,
    /// Start a new job even if an unfinished run of the same spec exists.
    #[arg(long)]
    fresh: bool,
    /// Keep the working directories of succeeded attempts (failed ones are always kept).
    #[arg(long)]
    keep_work_dirs: bool,
    /// Seconds a stopped instance gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    kill_grace: u64,
    /// CPUs this machine offers to instances [default: all].
    #[arg(long)]
    cpus: Option<f64>,
    /// Output format of the final summary.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
    /// No live progress.
    #[arg(short, long)]
    quiet: bool,
}

/// The default state directory: `$XDG_DATA_HOME/kiln`, else `~/.local/share/kiln`.
pub(crate) fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("kiln");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/kiln"),
        None => PathBuf::from(".kiln"),
    }
}

/// Total memory of this machine in bytes, from /proc/meminfo.
pub(crate) fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb * 1024)
}

/// Whether a Docker Engine answers (checked before anything is stored).
fn docker_available() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(kiln_agent::DockerRuntime::connect())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Reads the items of tasks with `each_line` / `each_json`: a path relative to the spec
/// file's directory (the working directory for a spec on standard input), or an object in
/// remote storage (credentials from the standard AWS variables).
fn read_local_items(spec: &mut JobSpec, file: &Path) -> Result<(), SpecErrors> {
    if kiln_core::spec::unread_items(spec).is_empty() {
        return Ok(());
    }
    let base = match file.parent() {
        Some(dir) if file != Path::new("-") && !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    kiln_server::items::read_items_here(spec, &base)
}

/// Checks what this runner can honour: nothing is run if any task asks for more.
fn check_runnable(spec: &JobSpec, node: &Node) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let images: Vec<(&str, &str)> = spec
        .tasks
        .iter()
        .filter_map(|t| match &t.image {
            Image::Docker(image) => Some((t.name.as_str(), image.as_str())),
            Image::Host => None,
        })
        .collect();
    if let Some(Err(e)) = images.first().map(|_| docker_available()) {
        for (task, image) in images {
            errors.push(SpecError {
                path: format!("tasks.{task}.image"),
                message: format!("`{image}` is a Docker image, but {e}"),
                hint: Some("start Docker (or set DOCKER_HOST), or use `image: host`".into()),
            });
        }
    }
    for t in spec.tasks.iter().filter(|t| !node.could_fit(&t.resources)) {
        errors.push(SpecError {
            path: format!("tasks.{}.resources", t.name),
            message: format!(
                "an instance needs {} CPUs and {} bytes of memory, but this machine offers {} CPUs and {} bytes",
                f64::from(t.resources.millicpus) / 1000.0,
                t.resources.memory,
                node.millicpus as f64 / 1000.0,
                node.memory
            ),
            hint: Some("ask for less, or run on a bigger machine".into()),
        });
    }
    errors
}

/// Holds an exclusive lock on a job for the lifetime of a run, so that two runners never drive
/// the same job.
fn lock_job(state_dir: &Path, id: &str) -> Result<File, String> {
    let dir = state_dir.join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{id}.lock"));
    let file = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(format!("job {id} is being run by another `kiln run`"))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

fn is_locked(state_dir: &Path, id: &str) -> bool {
    lock_job(state_dir, id).is_err()
}

pub fn run(args: RunArgs) -> u8 {
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let cpus = args
        .cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64));
    if !(cpus.is_finite() && cpus > 0.0) {
        eprintln!("error: --cpus must be a positive number");
        return exit::INVALID;
    }
    let node = Node::new("local", (cpus * 1000.0).round() as u64, host_memory());
    let json_out = args.output != Format::Table;

    // Validate everything before touching the state directory.
    let profiles = match &args.storage_profiles {
        Some(path) => match crate::client::read_storage_profiles(path) {
            Ok(list) => list,
            Err(message) => {
                if json_out {
                    print_data(
                        args.output,
                        &json!({"errors": [{"field": "--storage-profiles", "message": message}]}),
                    );
                } else {
                    eprintln!("error: {message}");
                }
                return exit::INVALID;
            }
        },
        None => Vec::new(),
    };
    let known = |registry: bool| -> Vec<&str> {
        profiles
            .iter()
            .filter(|p| p.is_registry() == registry)
            .map(|p| p.name.as_str())
            .collect()
    };
    let (storage_known, registry_known) = (known(false), known(true));
    let parsed = match &args.file {
        Some(file) if args.resume.is_none() => match load_spec(file).and_then(|mut p| {
            read_local_items(&mut p.spec, file)?;
            // The profiles a task names must be in --storage-profiles.
            kiln_core::spec::check_profiles(&p.spec, &storage_known, &registry_known)?;
            Ok(p)
        }) {
            Ok(p) => {
                let errors = check_runnable(&p.spec, &node);
                if !errors.is_empty() {
                    let errors = kiln_core::spec::SpecErrors(errors);
                    if json_out {
                        print_data(args.output, &json!({"errors": error_json(&errors.0)}));
                    } else {
                        print_errors(file, &errors);
                    }
                    return exit::INVALID;
                }
                Some(p)
            }
            Err(errors) => {
                if json_out {
                    print_data(args.output, &json!({"errors": error_json(&errors.0)}));
                } else {
                    print_errors(file, &errors);
                }
                return exit::INVALID;
            }
        },
        _ => None,
    };
    if let Some(p) = &parsed {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
        for t in p.spec.tasks.iter().filter(|t| t.compute_env.is_some()) {
            eprintln!(
                "warning: tasks.{}.compute_env: `kiln run` runs every task on this machine",
                t.name
            );
        }
    }
    // Every task runs on this machine's one node, whatever compute environment it names.
    let parsed = parsed.map(|mut p| {
        for t in &mut p.spec.tasks {
            t.compute_env = None;
        }
        p
    });

    // Connect to Docker only for jobs that need it (a resumed job's spec is read later).
    let containers = parsed.as_ref().is_none_or(|p| {
        p.spec
            .tasks
            .iter()
            .any(|t| matches!(t.image, Image::Docker(_)))
    });
    let cfg = LocalConfig {
        db: None,
        state_dir: state_dir.clone(),
        node,
        kill_grace: Duration::from_secs(args.kill_grace),
        keep_work_dirs: args.keep_work_dirs,
        containers,
    };
    let mut runner = match Driver::open(cfg) {
        Ok(r) => r.with_storage_profiles(profiles),
        Err(e) => {
            eprintln!(
                "error: cannot open the state directory {}: {e}",
                state_dir.display()
            );
            return exit::FAILED;
        }
    };
    // A job's own credentials (Tencent `Authentications`, …) are sealed with a key kept in the
    // state directory, made when a job first carries some.
    let carries = parsed.as_ref().is_some_and(|p| !p.credentials.is_empty());
    if carries || state_dir.join("secrets.key").exists() {
        match kiln_store::secrets::SecretBox::open_or_create(&state_dir) {
            Ok(key) => runner = runner.with_job_key(std::sync::Arc::new(key)),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        }
    }

    // Pick the job: resume one, or submit a new one.
    let (job, _lock) = match pick_job(&mut runner, &state_dir, &args, parsed) {
        Ok(picked) => picked,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code;
        }
    };

    let stop = crate::signals::stop_requests(
        "stopping: running instances get SIGTERM (Ctrl-C again to kill them now)",
    );
    let live = !args.quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let mut progress = Progress::new(live);
    let end = runner.run(&job, &stop, Duration::from_millis(100), &mut |run| {
        progress.update(run)
    });
    progress.finish();
    let end = match end {
        Ok(end) => end,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let Some(run) = runner.engine().job(&job) else {
        eprintln!("error: job {job} vanished");
        return exit::FAILED;
    };
    let run = run.clone();
    summarize(&mut runner, &run, &state_dir, args.output);
    if end.interrupted {
        eprintln!(
            "interrupted: job {job} is unfinished; continue it with `kiln run --resume {job}{}`",
            args.state_dir
                .as_ref()
                .map(|d| format!(" --state-dir {}", d.display()))
                .unwrap_or_default()
        );
        return exit::INTERRUPTED;
    }
    if end.state == State::Succeed {
        exit::OK
    } else {
        exit::FAILED
    }
}

type Picked = (kiln_core::engine::JobId, File);

fn pick_job(
    runner: &mut Driver,
    state_dir: &Path,
    args: &RunArgs,
    parsed: Option<kiln_core::spec::Parsed>,
) -> Result<Picked, (u8, String)> {
    let fail = |e: &dyn std::fmt::Display| (exit::FAILED, e.to_string());
    if let Some(id) = &args.resume {
        let lock = lock_job(state_dir, id).map_err(|e| fail(&e))?;
        let job = runner
            .resume(id)
            .map_err(|e| (exit::INVALID, e.to_string()))?;
        eprintln!("resuming job {job}");
        return Ok((job, lock));
    }
    let Some(parsed) = parsed else {
        return Err((exit::INVALID, "no job spec given".into()));
    };
    if !args.fresh {
        let unfinished = runner
            .store()
            .unfinished_with_spec(&parsed.spec)
            .map_err(|e| fail(&e))?;
        if let Some(row) = unfinished.iter().find(|r| !is_locked(state_dir, &r.id)) {
            let lock = lock_job(state_dir, &row.id).map_err(|e| fail(&e))?;
            let job = runner.resume(&row.id).map_err(|e| fail(&e))?;
            eprintln!(
                "resuming job {job}: an unfinished run of this spec (use --fresh to start over)"
            );
            return Ok((job, lock));
        }
    }
    let job = runner
        .submit_carrying(parsed.spec, &parsed.credentials)
        .map_err(|e| fail(&e))?;
    let lock = lock_job(state_dir, &job).map_err(|e| fail(&e))?;
    eprintln!("job {job} submitted");
    Ok((job, lock))
}

/// Live progress: one bar per task on a terminal; otherwise a line whenever a task finishes.
struct Progress {
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    reported: Vec<State>,
}

impl Progress {
    fn new(live: bool) -> Self {
        let bars = live.then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
                Vec::new(),
            )
        });
        Progress {
            bars,
            reported: Vec::new(),
        }
    }

    fn update(&mut self, run: &JobRun) {
        let views = run.task_views();
        match &mut self.bars {
            Some((multi, bars)) => {
                if bars.is_empty() {
                    let width = views.iter().map(|v| v.name.len()).max().unwrap_or(4);
                    let style = ProgressStyle::with_template(&format!(
                        "{{prefix:<{width}}} [{{bar:30}}] {{pos}}/{{len}} {{msg}}"
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    for v in &views {
                        let bar = multi.add(ProgressBar::new(u64::from(v.instances)));
                        bar.set_style(style.clone());
                        bar.set_prefix(v.name.clone());
                        bars.push(bar);
                    }
                }
                for (bar, v) in bars.iter().zip(&views) {
                    let done: u32 = v
                        .counts
                        .iter()
                        .filter(|(s, _)| s.is_terminal())
                        .map(|(_, n)| n)
                        .sum();
                    bar.set_position(u64::from(done));
                    bar.set_message(progress_message(v));
                }
            }
            None => {
                if self.reported.is_empty() {
                    self.reported = views.iter().map(|_| State::Submitted).collect();
                }
                for (seen, v) in self.reported.iter_mut().zip(&views) {
                    if v.state.is_terminal() && !seen.is_terminal() {
                        eprintln!("task {} {}", v.name, progress_message(v));
                    }
                    *seen = v.state;
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some((multi, bars)) = &self.bars {
            for b in bars {
                b.abandon();
            }
            let _ = multi.clear();
        }
    }
}

fn progress_message(v: &TaskView) -> String {
    let counts: Vec<String> = v
        .counts
        .iter()
        .filter(|(s, _)| !matches!(s, State::Pending | State::Runnable))
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let reason = v
        .reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!("{}{reason} {}", v.state, counts.join(", "))
}

/// The final report: per task counts by state, then every failed instance with its exit code
/// and where its stderr is.
fn summarize(runner: &mut Driver, run: &JobRun, state_dir: &Path, format: Format) {
    let views = run.task_views();
    let mut failed = Vec::new();
    for (t, v) in views.iter().enumerate() {
        for (index, inst, _) in run.failed_instances(t) {
            let paths = runner
                .runtime()
                .paths(&run.id, &v.name, index, inst.attempt.max(1));
            let stderr = paths
                .stderr
                .exists()
                .then(|| paths.stderr.display().to_string());
            failed.push((v.name.clone(), index, inst, stderr));
        }
    }
    let tasks: Vec<kiln_api::TaskDetail> = views
        .iter()
        .cloned()
        .map(kiln_server::wire::task_detail)
        .collect();
    if format != Format::Table {
        let failed: Vec<_> = failed
            .iter()
            .map(|(task, index, inst, stderr)| {
                json!({
                    "task": task, "index": index, "attempt": inst.attempt,
                    "reason": inst.reason.as_ref().map(ToString::to_string),
                    "exit_code": inst.exit_code, "stderr": stderr,
                })
            })
            .collect();
        print_data(
            format,
            &json!({
                "id": &*run.id, "name": run.spec.name, "state": run.state().as_str(),
                "reason": run.reason().map(ToString::to_string),
                "state_dir": state_dir.display().to_string(),
                "tasks": tasks, "failed_instances": failed,
            }),
        );
        return;
    }
    let table = crate::output::task_table(&tasks);
    println!("{table}");
    const SHOWN: usize = 20;
    for (task, index, inst, stderr) in failed.iter().take(SHOWN) {
        let reason = inst
            .reason
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let stderr = stderr
            .as_ref()
            .map(|p| format!("\n    stderr: {p}"))
            .unwrap_or_default();
        println!(
            "  {task}[{index}] attempt {}: {reason}{stderr}",
            inst.attempt
        );
    }
    if failed.len() > SHOWN {
        println!("  … and {} more failed instances", failed.len() - SHOWN);
    }
    let reason = run.reason().map(|r| format!(" ({r})")).unwrap_or_default();
    println!("job {} {}{reason}", run.id, run.state());
}
