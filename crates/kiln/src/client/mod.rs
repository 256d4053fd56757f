//! The client commands: `kiln submit`, `jobs`, `job`, `logs`, `why`, `nodes`, `template` and
//! `env` talk to a `kiln server` through [`kiln_api::Client`]. They parse arguments, make the
//! calls and render the answers; every decision is the server's.
//!
//! Exit codes (see [`crate::exit`]): 0 done; 1 the server failed, could not be reached,
//! refused the token, or the job failed; 2 invalid input, whether found here (a spec, a file, an
//! option) or answered by the server (400, 404, 409, 413, 422); 130 when Ctrl-C stops
//! `submit --wait` (the job keeps running on the server).

mod access;
mod events;
mod jobs;
mod local;
mod resources;

use std::future::Future;
use std::io::Read;
use std::path::PathBuf;

use kiln_api::{Client, ClientError, ErrorDetail};

use crate::{Format, exit};

pub use access::{AuditArgs, ProjectCmd, TokenCmd, audit, project, token};
pub use events::{EventsArgs, events};
pub use jobs::{JobCmd, JobsArgs, LogsArgs, SubmitArgs, WhyArgs, job, jobs, logs, submit, why};
pub(crate) use resources::read_storage_profiles;
pub use resources::{
    EnvCmd, NodesArgs, ServerCmd, StorageCmd, TemplateCmd, env, nodes, server_cmd, storage,
    template,
};

/// Where `kiln server` listens by default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";

/// How to reach the server: flattened into every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerOpts {
    /// URL of the Kiln server (http:// or https://; may have a path prefix; several,
    /// comma-separated, for servers sharing one database).
    #[arg(long, env = "KILN_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// Check an https:// server's certificate against the PEM CA certificates in FILE
    /// instead of the system's trust roots (a private CA).
    #[arg(long, env = "KILN_CA_FILE", value_name = "FILE", value_parser = crate::absolute_path)]
    pub ca_file: Option<PathBuf>,
    /// API token, sent as `Authorization: Bearer TOKEN`; wins over --token-file.
    #[arg(long, env = "KILN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Read the API token from FILE (surrounding whitespace is ignored).
    #[arg(long, env = "KILN_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// `-o`: flattened into every client command that prints data.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutputOpt {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Format,
}

/// A command ended early: what went wrong is printed already; this is the exit code.
#[derive(Debug)]
pub struct Exit(pub u8);

/// What a client command returns: its exit code, or an early end.
pub type Outcome = Result<u8, Exit>;

/// Runs a client command on a fresh single-threaded runtime and turns it into an exit code.
pub fn block_on(fut: impl Future<Output = Outcome>) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    match rt.block_on(fut) {
        Ok(code) | Err(Exit(code)) => code,
    }
}

/// Longest token file read: a token is a line, not a document.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

impl ServerOpts {
    /// The token to send: `--token`/`KILN_TOKEN`, else the trimmed content of `--token-file`.
    fn token(&self) -> Result<Option<String>, Exit> {
        if let Some(t) = self.token.as_deref().filter(|t| !t.is_empty()) {
            return check_token(t.trim(), "--token").map(Some);
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let mut text = String::new();
        let read = std::fs::File::open(path)
            .and_then(|f| f.take(MAX_TOKEN_FILE).read_to_string(&mut text));
        if let Err(e) = read {
            eprintln!("error: cannot read the token file {}: {e}", path.display());
            return Err(Exit(exit::INVALID));
        }
        let token = text.trim();
        if token.is_empty() {
            eprintln!("error: the token file {} is empty", path.display());
            return Err(Exit(exit::INVALID));
        }
        check_token(token, &format!("the token file {}", path.display())).map(Some)
    }

    /// A client of the server, with the token resolved.
    pub fn connect(&self) -> Result<Conn, Exit> {
        let token = self.token()?;
        let ca_file = self
            .ca_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        match Client::with_ca_file(&self.server, token, ca_file) {
            Ok(client) => Ok(Conn {
                client,
                server: self.server.clone(),
            }),
            Err(ClientError::InvalidUrl(e)) => {
                eprintln!("error: invalid --server URL {e}");
                Err(Exit(exit::INVALID))
            }
            Err(ClientError::CaFile(e)) => {
                eprintln!("error: --ca-file: {e}");
                Err(Exit(exit::INVALID))
            }
            Err(e) => {
                eprintln!("error: {e}");
                Err(Exit(exit::FAILED))
            }
        }
    }
}

/// A token must fit in an HTTP header; say so without ever printing it.
fn check_token(token: &str, source: &str) -> Result<String, Exit> {
    if token.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(token.to_string())
    } else {
        eprintln!(
            "error: the token from {source} has spaces or characters that cannot be sent in an HTTP header"
        );
        Err(Exit(exit::INVALID))
    }
}

/// A connected client and the URL it was given, for messages.
pub struct Conn {
    pub client: Client,
    server: String,
}

impl Conn {
    /// Prints what went wrong with a call and picks the exit code.
    pub fn fail(&self, e: ClientError) -> Exit {
        match e {
            ClientError::Transport(why) => {
                eprintln!(
                    "error: cannot reach the Kiln server at {}: {why}",
                    self.server
                );
                eprintln!(
                    "hint: start one with `kiln server`, or point --server or KILN_SERVER at a running one"
                );
                Exit(exit::FAILED)
            }
            ClientError::Http { status: 401, error } => {
                eprintln!(
                    "error: the server refused the token: {} (use --token, --token-file or \
                     KILN_TOKEN)",
                    error.message
                );
                Exit(exit::FAILED)
            }
            ClientError::Http {
                status: 400 | 404 | 409 | 413 | 422,
                error,
            } => {
                eprintln!("error: {}", describe(&error));
                Exit(exit::INVALID)
            }
            ClientError::Http { status, error } => {
                eprintln!("error: the server answered {status}: {}", describe(&error));
                Exit(exit::FAILED)
            }
            ClientError::Decode(why) => {
                eprintln!(
                    "error: unexpected answer from the Kiln server at {}: {why}",
                    self.server
                );
                Exit(exit::FAILED)
            }
            ClientError::InvalidUrl(why) => {
                eprintln!("error: invalid URL {why}");
                Exit(exit::INVALID)
            }
            ClientError::CaFile(why) => {
                eprintln!("error: --ca-file: {why}");
                Exit(exit::INVALID)
            }
            ClientError::Tls(why) => {
                eprintln!(
                    "error: cannot reach the Kiln server at {}: {why}",
                    self.server
                );
                Exit(exit::FAILED)
            }
        }
    }
}

/// The server's error for people: `field: message`, or just the message.
fn describe(error: &ErrorDetail) -> String {
    match error.field.as_deref().filter(|f| !f.is_empty()) {
        Some(field) => format!("{field}: {}", error.message),
        None => error.message.clone(),
    }
}

/// An empty table in the style of `kiln run`'s summary.
/// `value` or `-`.
fn or_dash(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_string()
}

/// ` (reason)` or nothing.
fn paren(reason: Option<&str>) -> String {
    reason
        .filter(|r| !r.is_empty())
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

/// Parses a YAML or JSON document (JSON when its first non-blank character is `{`).
fn parse_document(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not valid UTF-8: {e}"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    if is_json(text.as_bytes()) {
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
    } else {
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        options.strict_booleans = true;
        options.leading_zero_numbers_as_strings = true;
        serde_saphyr::from_str_with_options(text, options).map_err(|e| format!("invalid YAML: {e}"))
    }
}

/// Whether a document is JSON: its first non-blank byte (after a BOM) is `{`.
fn is_json(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_told_from_yaml() {
        assert!(is_json(b"  \n{\"name\": 1}"));
        assert!(is_json(b"\xEF\xBB\xBF{}"));
        assert!(!is_json(b"name: x\n"));
        assert!(!is_json(b"# {\n"));
        assert!(!is_json(b""));
    }

    #[test]
    fn documents_parse_in_both_formats() {
        let y = parse_document(b"name: a\ntask: {command: 'true'}\n");
        let j = parse_document(br#"{"name": "a", "task": {"command": "true"}}"#);
        assert_eq!(y, j);
        assert!(parse_document(b"  \n").is_err());
        assert!(parse_document(b"{bad").is_err());
    }

    #[test]
    fn tokens_must_fit_a_header() {
        assert!(check_token("abc.DEF-123_~", "x").is_ok());
        assert!(check_token("a b", "x").is_err());
        assert!(check_token("a\nb", "x").is_err());
        assert!(check_token("é", "x").is_err());
    }
}
