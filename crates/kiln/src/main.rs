//! `kiln`: the one binary. Parses the command line, renders output, wires the pieces together;
//! nothing else lives here.

mod client;
mod daemon;
mod load;
mod output;
mod run;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// Exit codes shared by every command.
pub mod exit {
    /// The job succeeded, or the command did what was asked.
    pub const OK: u8 = 0;
    /// The job failed.
    pub const FAILED: u8 = 1;
    /// Invalid input: nothing was stored or run.
    pub const INVALID: u8 = 2;
    /// Stopped by Ctrl-C (or SIGTERM): `kiln run`'s job can be resumed; `kiln submit --wait`
    /// stopped waiting and the job keeps running on the server.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Self-hosted batch compute: jobs of tasks joined by a DAG, run as task instances",
    long_about = None,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Output format of commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a job on this machine, with no server: state in SQLite under --state-dir.
    ///
    /// Exits 0 if the job SUCCEED, 1 if it failed, 2 for invalid input (nothing is run), 130
    /// when stopped with Ctrl-C (the job stays resumable: run the same command again, or use
    /// --resume JOB_ID).
    Run(run::RunArgs),
    /// Check a job spec and print every error; exits 0 if valid, 2 if not.
    Validate {
        /// The job spec (YAML, JSON, or Tencent BatchCompute JSON); `-` reads standard input.
        file: PathBuf,
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Run the control plane: REST API, scheduler and built-in executor, state in --data-dir.
    ///
    /// On first start it writes an admin token (`DATA_DIR/admin-token`, for the CLI) and a node
    /// join token (`DATA_DIR/agent-token`, for `kiln agent`), readable by the owner only. The
    /// join token only registers: each node is then given a credential of its own, good for
    /// its own attempts only. `kiln server rotate-join-token` replaces the join token.
    Server(daemon::ServerArgs),
    /// Run a compute node: registers with a server and runs the task instances it is given.
    Agent(daemon::AgentArgs),

    // ---- client commands: they talk to a `kiln server` (crate::client) ----
    /// Submit a job spec to the server; print the job id.
    ///
    /// The spec is checked here first: an invalid spec exits 2 with every error and nothing is
    /// sent (task templates are the server's, so unknown ones are left to it). With --wait,
    /// exits 0 if the job SUCCEED, 1 if it failed, 130 on Ctrl-C (the job keeps running).
    Submit(client::SubmitArgs),
    /// List the server's jobs: the first page, or every page with --all.
    Jobs(client::JobsArgs),
    /// Show, terminate, retry or delete one job.
    Job {
        #[command(subcommand)]
        cmd: client::JobCmd,
    },
    /// Print the output of a task instance, as it arrives.
    Logs(client::LogsArgs),
    /// Explain why a job, one of its tasks, or one instance is in its state.
    Why(client::WhyArgs),
    /// Print the server's journal of events (changes of state and operations), or follow it
    /// with -f.
    Events(client::EventsArgs),
    /// List the compute nodes the server knows, or cut one off (`kiln nodes revoke NAME`).
    Nodes(client::NodesArgs),
    /// Manage task templates (reusable task fields a job's task names with `template:`).
    Template {
        #[command(subcommand)]
        cmd: client::TemplateCmd,
    },
    /// Manage storage profiles (endpoints and credentials of remote storage, kept sealed by
    /// the server).
    Storage {
        #[command(subcommand)]
        cmd: client::StorageCmd,
    },
    /// Manage compute environments (pools of nodes tasks run on).
    Env {
        #[command(subcommand)]
        cmd: client::EnvCmd,
    },
    /// Manage projects (they own jobs, templates, profiles and environments).
    Project {
        #[command(subcommand)]
        cmd: client::ProjectCmd,
    },
    /// Manage API tokens of a project and role (admin).
    Token {
        #[command(subcommand)]
        cmd: client::TokenCmd,
    },
    /// Print the audit log of state-changing API calls (admin).
    Audit(client::AuditArgs),

    /// Print the REST API's OpenAPI document (the one `kiln server` serves at
    /// /v1/openapi.json), e.g. to generate a client from it.
    Openapi,

    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Parses a path the user passed and makes it absolute against the directory the program was
/// started in, so a relative path means the same thing to every part of the program (a docker
/// bind mount, a child process started in another directory, a server that changes directory).
/// An empty value stays empty: some options give it the meaning "the default".
pub(crate) fn absolute_path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Ok(PathBuf::new());
    }
    std::path::absolute(s).map_err(|e| format!("cannot make {s:?} an absolute path: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Cmd::Run(args) => run::run(args),
        Cmd::Server(args) => daemon::server(args),
        Cmd::Agent(args) => daemon::agent(args),
        Cmd::Validate { file, output } => load::validate(&file, output),
        Cmd::Submit(args) => client::block_on(client::submit(args)),
        Cmd::Jobs(args) => client::block_on(client::jobs(args)),
        Cmd::Job { cmd } => client::block_on(client::job(cmd)),
        Cmd::Logs(args) => client::block_on(client::logs(args)),
        Cmd::Why(args) => client::block_on(client::why(args)),
        Cmd::Events(args) => client::block_on(client::events(args)),
        Cmd::Nodes(args) => client::block_on(client::nodes(args)),
        Cmd::Template { cmd } => client::block_on(client::template(cmd)),
        Cmd::Storage { cmd } => client::block_on(client::storage(cmd)),
        Cmd::Env { cmd } => client::block_on(client::env(cmd)),
        Cmd::Project { cmd } => client::block_on(client::project(cmd)),
        Cmd::Token { cmd } => client::block_on(client::token(cmd)),
        Cmd::Audit(args) => client::block_on(client::audit(args)),
        Cmd::Openapi => match serde_json::to_string_pretty(kiln_server::api::openapi_doc()) {
            Ok(text) => {
                println!("{text}");
                exit::OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit::FAILED
            }
        },
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            exit::OK
        }
    };
    ExitCode::from(code)
}
