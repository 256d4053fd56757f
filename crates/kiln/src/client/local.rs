//! `kiln jobs|job show|logs|why --state-dir [DIR]`: the same answers as a server's, read from
//! the records a `kiln run` keeps in its state directory — read-only, also while it runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_api::JobList;
use kiln_server::jobs::JobOpError;
use kiln_server::views;
use kiln_store::{JobQuery, SqliteStore, Store};

use super::{Exit, Outcome};
use crate::output::print_data;
use crate::{Format, exit};

/// `--state-dir`: flattened into the client commands that can read a `kiln run`'s records.
#[derive(Debug, Clone, clap::Args)]
pub struct StateDirOpt {
    /// Read the jobs of `kiln run` kept in DIR instead of asking a server (read-only, also
    /// while a run goes on). Without DIR: `kiln run`'s default ($KILN_STATE_DIR, else
    /// ~/.local/share/kiln).
    #[arg(
        long,
        value_name = "DIR",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with = "server",
        value_parser = crate::absolute_path
    )]
    pub state_dir: Option<PathBuf>,
}

/// An open state directory.
pub struct Local {
    store: SqliteStore,
    dir: PathBuf,
}

impl StateDirOpt {
    /// The state directory to read, if one was asked for.
    pub fn open(&self) -> Result<Option<Local>, Exit> {
        let Some(dir) = &self.state_dir else {
            return Ok(None);
        };
        let dir = if dir.as_os_str().is_empty() {
            std::env::var_os("KILN_STATE_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(crate::run::default_state_dir)
        } else {
            dir.clone()
        };
        match SqliteStore::open_read_only(&dir.join("kiln.db")) {
            Ok(store) => Ok(Some(Local { store, dir })),
            Err(e) => {
                eprintln!(
                    "error: cannot read the state directory {}: {e}",
                    dir.display()
                );
                eprintln!("hint: it is the --state-dir a `kiln run` was given");
                Err(Exit(exit::INVALID))
            }
        }
    }
}

/// Prints why a read failed and picks the exit code.
fn fail(e: JobOpError) -> Exit {
    match e {
        JobOpError::NotFound(m) | JobOpError::Conflict(m) => {
            eprintln!("error: {m}");
            Exit(exit::INVALID)
        }
        JobOpError::Invalid { field, message } => {
            eprintln!("error: {field}: {message}");
            Exit(exit::INVALID)
        }
        JobOpError::Driver(e) => {
            eprintln!("error: {e}");
            Exit(exit::FAILED)
        }
    }
}

impl Local {
    /// `kiln jobs`: newest first, every page (a state directory holds few jobs).
    pub fn jobs(&self, state: Option<&str>, format: Format) -> Outcome {
        let state = match state.map(|s| s.to_ascii_uppercase().parse()) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                eprintln!("error: --state: {e}");
                return Err(Exit(exit::INVALID));
            }
            None => None,
        };
        let rows = self
            .store
            .list_jobs(&JobQuery {
                state,
                name_prefix: None,
                project: None,
                after_seq: None,
                limit: u32::MAX,
            })
            .map_err(|e| fail(e.into()))?;
        let list = JobList {
            items: rows.iter().map(kiln_server::wire::job_summary).collect(),
            next: None,
        };
        super::jobs::print_jobs(format, &list);
        Ok(exit::OK)
    }

    /// `kiln job show ID`.
    pub fn show(&self, id: &str, format: Format) -> Outcome {
        let job = views::job_detail(&self.store, id).map_err(fail)?;
        if format == Format::Table {
            super::jobs::print_job(&job);
        } else {
            print_data(format, &job);
        }
        Ok(exit::OK)
    }

    /// `kiln why JOB [TASK [INDEX]]`.
    pub fn why(&self, id: &str, task: Option<&str>, index: Option<u32>, format: Format) -> Outcome {
        if index.is_some() && task.is_none() {
            eprintln!("error: an instance index needs a task");
            return Err(Exit(exit::INVALID));
        }
        let why = views::why(&self.store, id, task, index, &|_| None).map_err(fail)?;
        if format == Format::Table {
            println!("{}", why.explanation);
        } else {
            print_data(format, &why);
        }
        Ok(exit::OK)
    }

    /// `kiln logs JOB TASK INDEX [-f] [--stderr]`: the latest attempt's output, from the file
    /// the run writes; with `follow`, until that attempt ends.
    pub async fn logs(
        &self,
        id: &str,
        task: &str,
        index: u32,
        stderr: bool,
        follow: bool,
    ) -> Outcome {
        let (attempt, _) = views::latest_attempt(&self.store, id, task, index).map_err(fail)?;
        let stream = if stderr { "stderr" } else { "stdout" };
        let path = log_path(&self.dir, id, task, index, attempt, stream);
        let mut offset = 0u64;
        let mut out = std::io::stdout().lock();
        loop {
            let chunk = read_from(&path, offset);
            if !chunk.is_empty() {
                offset += chunk.len() as u64;
                if let Err(e) = out.write_all(&chunk).and_then(|()| out.flush()) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(exit::OK);
                    }
                    eprintln!("error: cannot write the output: {e}");
                    return Err(Exit(exit::FAILED));
                }
                continue;
            }
            if !follow {
                return Ok(exit::OK);
            }
            let still = views::latest_attempt(&self.store, id, task, index)
                .is_ok_and(|(a, active)| active && a == attempt);
            if !still {
                // What was written before the end was recorded.
                let rest = read_from(&path, offset);
                let _ = out.write_all(&rest).and_then(|()| out.flush());
                return Ok(exit::OK);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Where `kiln run` keeps an attempt's output: `logs/JOB/TASK/INDEX.ATTEMPT.STREAM`.
fn log_path(dir: &Path, id: &str, task: &str, index: u32, attempt: u32, stream: &str) -> PathBuf {
    dir.join("logs")
        .join(id)
        .join(task)
        .join(format!("{index}.{attempt}.{stream}"))
}

/// Up to 256 KiB of a file from `offset`; empty if there is nothing (yet).
fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    match f.take(256 * 1024).read_to_end(&mut buf) {
        Ok(_) => buf,
        Err(_) => Vec::new(),
    }
}
