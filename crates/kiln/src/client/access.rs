//! `kiln project …`, `kiln token …`, `kiln audit`.

use kiln_api::{ProjectSpec, TokenRequest};

use super::{Exit, Outcome, OutputOpt, ServerOpts, or_dash};
use crate::output::{print_data, table};
use crate::{Format, exit};

/// `kiln project …`.
#[derive(Debug, clap::Subcommand)]
pub enum ProjectCmd {
    /// Create a project (admin): it owns the jobs, templates, profiles and environments its
    /// tokens make.
    Create {
        /// The project's name (1-60 of A-Z a-z 0-9 . _ -).
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        server: ServerOpts,
        #[command(flatten)]
        out: OutputOpt,
    },
    /// List the projects the token may see (an admin's: all).
    List(Args),
    /// Show a project.
    Show(NamedArgs),
    /// Delete a project that owns nothing any more (admin); `default` stays.
    Delete(NamedArgs),
}

/// `kiln token …` (admin).
#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Create an API token of a project and role and print it, once: the server keeps only
    /// its digest. `-o json` prints {"name", "token", "project", "role", "expires_at"}.
    Create {
        /// The project it acts in.
        #[arg(long)]
        project: String,
        /// viewer (read), submitter (+ jobs), operator (+ templates, profiles, environments)
        /// or admin (everything, every project).
        #[arg(long)]
        role: String,
        /// Its name [default: a new tok-… name].
        #[arg(long)]
        name: Option<String>,
        /// How long it works, e.g. 30d, 12h [default: until revoked].
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        server: ServerOpts,
        #[command(flatten)]
        out: OutputOpt,
    },
    /// List the tokens (never their secrets).
    List(Args),
    /// Revoke a token: its next call, on any server, is refused.
    Revoke(NamedArgs),
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
pub struct NamedArgs {
    /// Its name.
    name: String,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

/// `kiln audit` (admin).
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only calls from then on: RFC 3339 (2026-01-02T03:04:05Z) or a duration back from now
    /// (1h, 7d).
    #[arg(long)]
    since: Option<String>,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

fn valid_name(name: &str) -> bool {
    (1..=60).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Refuses a name no project or token can have before anything is sent (exit 2).
fn check_name(what: &str, field: &str, name: &str) -> Result<(), Exit> {
    if valid_name(name) {
        return Ok(());
    }
    eprintln!("error: {field}: `{name}` is not a {what} name (1-60 of A-Z a-z 0-9 . _ -)");
    Err(Exit(exit::INVALID))
}

pub async fn project(cmd: ProjectCmd) -> Outcome {
    match cmd {
        ProjectCmd::Create {
            name,
            description,
            server,
            out,
        } => {
            check_name("project", "NAME", &name)?;
            let conn = server.connect()?;
            let p = conn
                .client
                .create_project(&ProjectSpec { name, description })
                .await
                .map_err(|e| conn.fail(e))?;
            if out.output == Format::Table {
                println!("project {} created", p.name);
            } else {
                print_data(out.output, &p);
            }
        }
        ProjectCmd::List(a) => {
            let conn = a.server.connect()?;
            let list = conn.client.projects().await.map_err(|e| conn.fail(e))?;
            if a.out.output != Format::Table {
                print_data(a.out.output, &list);
            } else {
                let mut t = table(["NAME", "DESCRIPTION", "CREATED"]);
                for p in &list.items {
                    t.add_row([
                        p.name.clone(),
                        or_dash(p.description.as_deref()),
                        p.created_at.clone(),
                    ]);
                }
                println!("{t}");
            }
        }
        ProjectCmd::Show(a) => {
            check_name("project", "NAME", &a.name)?;
            let conn = a.server.connect()?;
            let p = conn
                .client
                .project(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            let format = match a.out.output {
                Format::Table => Format::Yaml,
                f => f,
            };
            print_data(format, &p);
        }
        ProjectCmd::Delete(a) => {
            check_name("project", "NAME", &a.name)?;
            let conn = a.server.connect()?;
            conn.client
                .delete_project(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            if a.out.output == Format::Table {
                println!("project {} deleted", a.name);
            } else {
                print_data(
                    a.out.output,
                    &serde_json::json!({"name": a.name, "deleted": true}),
                );
            }
        }
    }
    Ok(exit::OK)
}

pub async fn token(cmd: TokenCmd) -> Outcome {
    match cmd {
        TokenCmd::Create {
            project,
            role,
            name,
            expires,
            server,
            out,
        } => {
            check_name("project", "--project", &project)?;
            if let Some(n) = &name {
                check_name("token", "--name", n)?;
            }
            if !["viewer", "submitter", "operator", "admin"].contains(&role.as_str()) {
                eprintln!(
                    "error: --role: `{role}` is not a role (viewer, submitter, operator, admin)"
                );
                return Err(Exit(exit::INVALID));
            }
            if let Some(e) = &expires
                && let Err(why) = kiln_core::spec::parse_duration(e)
            {
                eprintln!("error: --expires: {why}");
                return Err(Exit(exit::INVALID));
            }
            let conn = server.connect()?;
            let created = conn
                .client
                .create_token(&TokenRequest {
                    project,
                    role,
                    name,
                    expires,
                })
                .await
                .map_err(|e| conn.fail(e))?;
            if out.output == Format::Table {
                println!("{}", created.token);
                eprintln!(
                    "token {} ({} of project {}{}) created; it is shown only now",
                    created.name,
                    created.role,
                    created.project,
                    created
                        .expires_at
                        .as_deref()
                        .map(|at| format!(", until {at}"))
                        .unwrap_or_default()
                );
            } else {
                print_data(out.output, &created);
            }
        }
        TokenCmd::List(a) => {
            let conn = a.server.connect()?;
            let list = conn.client.tokens().await.map_err(|e| conn.fail(e))?;
            if a.out.output != Format::Table {
                print_data(a.out.output, &list);
            } else {
                let mut t = table(["NAME", "PROJECT", "ROLE", "STATE", "EXPIRES"]);
                for tok in &list.items {
                    t.add_row([
                        tok.name.clone(),
                        tok.project.clone(),
                        tok.role.clone(),
                        tok.state.clone(),
                        or_dash(tok.expires_at.as_deref()),
                    ]);
                }
                println!("{t}");
            }
        }
        TokenCmd::Revoke(a) => {
            check_name("token", "NAME", &a.name)?;
            let conn = a.server.connect()?;
            let info = conn
                .client
                .revoke_token(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            if a.out.output == Format::Table {
                println!("token {} revoked", info.name);
            } else {
                print_data(a.out.output, &info);
            }
        }
    }
    Ok(exit::OK)
}

pub async fn audit(a: AuditArgs) -> Outcome {
    let conn = a.server.connect()?;
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = conn
            .client
            .audit(a.since.as_deref(), cursor.as_deref(), Some(1000))
            .await
            .map_err(|e| conn.fail(e))?;
        items.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if a.out.output != Format::Table {
        print_data(a.out.output, &kiln_api::AuditList { items, next: None });
    } else {
        let mut t = table(["AT", "TOKEN", "PROJECT", "ACTION", "OBJECT", "RESULT"]);
        for e in &items {
            t.add_row([
                e.at.clone(),
                e.token.clone(),
                or_dash(e.project.as_deref()),
                e.action.clone(),
                e.object.clone(),
                e.result.to_string(),
            ]);
        }
        println!("{t}");
    }
    Ok(exit::OK)
}
