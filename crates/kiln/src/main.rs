//! `kiln`: the one binary. Parses the command line, renders output, wires the pieces together;
//! nothing else lives here.

mod load;
mod output;
mod run;

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
    /// Stopped by Ctrl-C (or SIGTERM); the job can be resumed.
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
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Cmd::Run(args) => run::run(args),
        Cmd::Validate { file, output } => load::validate(&file, output),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            exit::OK
        }
    };
    ExitCode::from(code)
}
