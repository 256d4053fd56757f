//! `kiln template …`, `kiln storage …`, `kiln env …`, `kiln nodes`.

use std::path::{Path, PathBuf};

use kiln_api::{ComputeEnv, ComputeEnvDetail, NodeList, StorageProfileSpec, TaskTemplate};
use kiln_core::spec::SpecErrors;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Exit, Outcome, OutputOpt, ServerOpts, or_dash, parse_document};
use crate::load::read_input;
use crate::output::print_data;
use crate::output::table;
use crate::{Format, exit};

/// `kiln template …`.
#[derive(Debug, clap::Subcommand)]
pub enum TemplateCmd {
    /// Store a task template from a YAML or JSON file: `{name, description, task: {…}}`, where
    /// `task` holds task fields of a job spec. A job's task uses it with `template: NAME`.
    Create(FileArgs),
    /// List the task templates.
    List(ListArgs),
    /// Show one task template.
    Show(NameArgs),
    /// Delete a task template (jobs submitted with it keep their copy).
    Delete(NameArgs),
}

/// Reads a `kiln run --storage-profiles` file: a list of storage profiles in the format of
/// `kiln storage create`, names unique, at most one the default. An error names the item and
/// field, never a value.
pub(crate) fn read_storage_profiles(path: &Path) -> Result<Vec<StorageProfileSpec>, String> {
    let fail = |message: String| {
        format!(
            "{} is not a valid storage profile list: {message}",
            path.display()
        )
    };
    let bytes = read_input(path, "storage profile list")?;
    let value = parse_document(&bytes).map_err(fail)?;
    let items = value.as_array().ok_or_else(|| {
        fail("expected a list of storage profiles (each as `kiln storage create` takes it)".into())
    })?;
    let mut out: Vec<StorageProfileSpec> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = StorageProfileSpec::from_value(item).map_err(|p| {
            fail(if p.field.is_empty() {
                format!("[{i}]: {}", p.message)
            } else {
                format!("[{i}].{}: {}", p.field, p.message)
            })
        })?;
        if out.iter().any(|q| q.name == p.name) {
            return Err(fail(format!("[{i}].name: `{}` is given twice", p.name)));
        }
        if p.default
            && let Some(d) = out.iter().find(|q| q.default)
        {
            return Err(fail(format!(
                "[{i}].default: `{}` is the default already; at most one profile is",
                d.name
            )));
        }
        out.push(p);
    }
    Ok(out)
}

/// `kiln storage …`.
#[derive(Debug, clap::Subcommand)]
pub enum StorageCmd {
    /// Store a storage profile from a YAML or JSON file: `{name, kind: s3|cos, endpoint,
    /// region, path_style, access_key_id, secret_access_key, session_token, default}`. The
    /// secret fields are sealed at rest and never shown again.
    Create(FileArgs),
    /// List the storage profiles.
    List(ListArgs),
    /// Show a storage profile (its secret fields as `***`).
    Show(NameArgs),
    /// Delete a storage profile.
    Delete(NameArgs),
}

/// `kiln env …`.
#[derive(Debug, clap::Subcommand)]
pub enum EnvCmd {
    /// Create a compute environment from a YAML or JSON file: `{name, description, provider:
    /// local|static|docker, desired_nodes, instance_type or resources, image, network, slots}`.
    /// `docker` runs each node as a container of `image` (required; present on the server's
    /// Docker Engine) on `network`, sized by `instance_type` or `resources`; the server must
    /// listen where containers reach it (`kiln server --listen 0.0.0.0:PORT`).
    Create(FileArgs),
    /// List the compute environments.
    List(ListArgs),
    /// Show a compute environment and its nodes.
    Show(NameArgs),
    /// Change how many nodes a compute environment should have.
    Scale(ScaleArgs),
    /// Delete a compute environment.
    Delete(NameArgs),
}

#[derive(Debug, clap::Args)]
pub struct FileArgs {
    /// The YAML or JSON file; `-` reads standard input.
    file: PathBuf,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// Its name.
    name: String,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The compute environment's name.
    name: String,
    /// How many nodes it should have.
    #[arg(long, value_name = "N")]
    desired: u32,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodesArgs {
    #[command(subcommand)]
    cmd: Option<NodesCmd>,
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    out: OutputOpt,
}

#[derive(Debug, clap::Subcommand)]
pub enum NodesCmd {
    /// Cut a node off: its credential stops working at once (its next call is refused and its
    /// agent exits), and the instances it held run again elsewhere (NODE_LOST).
    ///
    /// The node can join again only with the join token: rotate it as well (`kiln server
    /// rotate-join-token`) if the node's copy is not to be trusted. A node the server started
    /// itself (a `local`, `docker` or `slurm` environment) is started again by its
    /// environment; scale the environment down to remove it.
    Revoke {
        /// The node's name (as `kiln nodes` lists it).
        name: String,
        #[command(flatten)]
        server: ServerOpts,
        #[command(flatten)]
        out: OutputOpt,
    },
}

/// `kiln server …` commands that talk to a running server.
#[derive(Debug, clap::Subcommand)]
pub enum ServerCmd {
    /// Replace the node join token and print the new one (once).
    ///
    /// The server writes it to its DATA_DIR/agent-token too (other servers of the same
    /// database pick it up when they start or take over). The old token registers nothing any
    /// more; nodes that registered before keep working with their own credentials. Needs the
    /// admin token.
    RotateJoinToken {
        #[command(flatten)]
        server: ServerOpts,
        #[command(flatten)]
        out: OutputOpt,
    },
}

/// Reads a YAML or JSON file into `T`; on failure says why and ends with exit 2.
fn read_file<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T, Exit> {
    let fail = |message: String| {
        eprintln!("error: {} is not a valid {what}: {message}", path.display());
        Exit(exit::INVALID)
    };
    let bytes = read_input(path, what).map_err(|message| {
        eprintln!("error: {message}");
        Exit(exit::INVALID)
    })?;
    let value = parse_document(&bytes).map_err(fail)?;
    serde_json::from_value(value).map_err(|e| fail(e.to_string()))
}

// ---- templates --------------------------------------------------------------------------------

/// `kiln template …`.
pub async fn template(cmd: TemplateCmd) -> Outcome {
    match cmd {
        TemplateCmd::Create(a) => {
            let template: TaskTemplate = read_file(&a.file, "task template")?;
            check_template(&a.file, &template)?;
            let conn = a.server.connect()?;
            let created = conn
                .client
                .create_template(&template)
                .await
                .map_err(|e| conn.fail(e))?;
            if a.out.output == Format::Table {
                println!("template {} created", created.name);
            } else {
                print_data(a.out.output, &created);
            }
        }
        TemplateCmd::List(a) => {
            let conn = a.server.connect()?;
            let list = conn.client.templates().await.map_err(|e| conn.fail(e))?;
            if a.out.output != Format::Table {
                print_data(a.out.output, &list);
            } else if list.items.is_empty() {
                eprintln!("no task templates");
            } else {
                let mut t = table(["NAME", "DESCRIPTION", "COMMAND"]);
                for tpl in &list.items {
                    t.add_row([
                        tpl.name.clone(),
                        or_dash(tpl.description.as_deref()),
                        command_text(&tpl.task["command"]),
                    ]);
                }
                println!("{t}");
            }
        }
        TemplateCmd::Show(a) => {
            let conn = a.server.connect()?;
            let tpl = conn
                .client
                .template(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            // A template is a document: its table form is YAML.
            let format = match a.out.output {
                Format::Table => Format::Yaml,
                f => f,
            };
            print_data(format, &tpl);
        }
        TemplateCmd::Delete(a) => {
            let conn = a.server.connect()?;
            conn.client
                .delete_template(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            deleted(a.out.output, "template", &a.name);
        }
    }
    Ok(exit::OK)
}

/// Checks a template's task fields here, as the server would, printing every error.
fn check_template(file: &Path, template: &TaskTemplate) -> Result<(), Exit> {
    let bytes = serde_json::to_vec(&template.task).map_err(|e| {
        eprintln!("error: cannot encode the template: {e}");
        Exit(exit::FAILED)
    })?;
    let Err(SpecErrors(errors)) = kiln_core::spec::parse_task_template(&bytes) else {
        return Ok(());
    };
    let n = errors.len();
    eprintln!(
        "error: {} is not a valid task template ({n} error{}):",
        file.display(),
        if n == 1 { "" } else { "s" }
    );
    for e in &errors {
        let path = if e.path.is_empty() {
            "task".to_string()
        } else {
            format!("task.{}", e.path)
        };
        let hint = e
            .hint
            .as_ref()
            .map(|h| format!(" (hint: {h})"))
            .unwrap_or_default();
        eprintln!("  {path}: {}{hint}", e.message);
    }
    Err(Exit(exit::INVALID))
}

/// A task's `command` for a table: a string as is, a list joined, cut to a table cell.
fn command_text(command: &serde_json::Value) -> String {
    let text = match command {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(words) => words
            .iter()
            .map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let text = text.replace('\n', " ");
    const WIDTH: usize = 60;
    if text.chars().count() > WIDTH {
        format!("{}…", text.chars().take(WIDTH - 1).collect::<String>())
    } else {
        text
    }
}

fn deleted(format: Format, what: &str, name: &str) {
    if format == Format::Table {
        println!("{what} {name} deleted");
    } else {
        print_data(format, &json!({"name": name, "deleted": true}));
    }
}

// ---- storage profiles -------------------------------------------------------------------------

/// Reads a storage profile file; on failure names the field (never a value) and ends with
/// exit 2.
fn read_profile(path: &Path) -> Result<StorageProfileSpec, Exit> {
    let fail = |message: String| {
        eprintln!(
            "error: {} is not a valid storage profile: {message}",
            path.display()
        );
        Exit(exit::INVALID)
    };
    let bytes = read_input(path, "storage profile").map_err(|message| {
        eprintln!("error: {message}");
        Exit(exit::INVALID)
    })?;
    let value = parse_document(&bytes).map_err(fail)?;
    StorageProfileSpec::from_value(&value).map_err(|p| {
        if p.field.is_empty() {
            fail(p.message)
        } else {
            fail(format!("{}: {}", p.field, p.message))
        }
    })
}

/// `kiln storage …`.
pub async fn storage(cmd: StorageCmd) -> Outcome {
    match cmd {
        StorageCmd::Create(a) => {
            let profile = read_profile(&a.file)?;
            let conn = a.server.connect()?;
            let created = conn
                .client
                .create_storage_profile(&profile)
                .await
                .map_err(|e| conn.fail(e))?;
            if a.out.output == Format::Table {
                println!("storage profile {} created", created.name);
            } else {
                print_data(a.out.output, &created);
            }
        }
        StorageCmd::List(a) => {
            let conn = a.server.connect()?;
            let list = conn
                .client
                .storage_profiles()
                .await
                .map_err(|e| conn.fail(e))?;
            if a.out.output != Format::Table {
                print_data(a.out.output, &list);
            } else if list.items.is_empty() {
                eprintln!("no storage profiles");
            } else {
                let mut t = table(["NAME", "KIND", "ENDPOINT", "REGION", "DEFAULT"]);
                for p in &list.items {
                    t.add_row([
                        p.name.clone(),
                        p.kind.clone(),
                        // A registry login's address is its server.
                        or_dash(p.endpoint.as_deref().or(p.server.as_deref())),
                        or_dash(p.region.as_deref()),
                        if p.default { "yes" } else { "no" }.to_string(),
                    ]);
                }
                println!("{t}");
            }
        }
        StorageCmd::Show(a) => {
            let conn = a.server.connect()?;
            let p = conn
                .client
                .storage_profile(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            // The server answers secret fields as `***` already.
            let format = match a.out.output {
                Format::Table => Format::Yaml,
                f => f,
            };
            print_data(format, &p);
        }
        StorageCmd::Delete(a) => {
            let conn = a.server.connect()?;
            conn.client
                .delete_storage_profile(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            deleted(a.out.output, "storage profile", &a.name);
        }
    }
    Ok(exit::OK)
}

// ---- compute environments ---------------------------------------------------------------------

/// `kiln env …`.
pub async fn env(cmd: EnvCmd) -> Outcome {
    match cmd {
        EnvCmd::Create(a) => {
            let env: ComputeEnv = read_file(&a.file, "compute environment")?;
            let conn = a.server.connect()?;
            let created = conn
                .client
                .create_compute_env(&env)
                .await
                .map_err(|e| conn.fail(e))?;
            if a.out.output == Format::Table {
                println!("compute environment {} created", created.env.name);
            } else {
                print_data(a.out.output, &created);
            }
        }
        EnvCmd::List(a) => {
            let conn = a.server.connect()?;
            let list = conn.client.compute_envs().await.map_err(|e| conn.fail(e))?;
            if a.out.output != Format::Table {
                print_data(a.out.output, &list);
            } else if list.items.is_empty() {
                eprintln!("no compute environments");
            } else {
                let mut t = table([
                    "NAME",
                    "PROVIDER",
                    "SIZE",
                    "NODES",
                    "SHAPE",
                    "SLOTS",
                    "DESCRIPTION",
                ]);
                for e in &list.items {
                    t.add_row([
                        e.env.name.clone(),
                        e.env.provider.clone(),
                        size(&e.env),
                        e.nodes.len().to_string(),
                        shape(&e.env),
                        e.env.slots.map_or_else(|| "-".into(), |s| s.to_string()),
                        or_dash(e.env.description.as_deref()),
                    ]);
                }
                println!("{t}");
            }
        }
        EnvCmd::Show(a) => {
            let conn = a.server.connect()?;
            let env = conn
                .client
                .compute_env(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            print_env(a.out.output, &env);
        }
        EnvCmd::Scale(a) => {
            let conn = a.server.connect()?;
            let env = conn
                .client
                .scale(&a.name, a.desired)
                .await
                .map_err(|e| conn.fail(e))?;
            if a.out.output == Format::Table {
                println!(
                    "compute environment {}: {} node{} desired, {} now",
                    env.env.name,
                    env.env.desired_nodes,
                    if env.env.desired_nodes == 1 { "" } else { "s" },
                    env.nodes.len()
                );
            } else {
                print_data(a.out.output, &env);
            }
        }
        EnvCmd::Delete(a) => {
            let conn = a.server.connect()?;
            conn.client
                .delete_compute_env(&a.name)
                .await
                .map_err(|e| conn.fail(e))?;
            deleted(a.out.output, "compute environment", &a.name);
        }
    }
    Ok(exit::OK)
}

/// An environment's node shape: its instance type, or its resources (`slurm`: what each
/// allocation asks for).
fn shape(env: &ComputeEnv) -> String {
    match (&env.instance_type, &env.resources) {
        (Some(t), _) => t.clone(),
        (None, Some(r)) => r.to_string(),
        (None, None) if env.provider == "slurm" => format!(
            "{} node(s) x {} CPU(s){}",
            env.nodes_per_allocation.unwrap_or(1),
            env.cpus_per_node.unwrap_or(1),
            env.memory_per_node
                .as_deref()
                .map_or_else(String::new, |m| format!(", {m}"))
        ),
        (None, None) => "-".into(),
    }
}

/// `3` for a fixed size, `0..4` under backlog scaling.
fn size(env: &ComputeEnv) -> String {
    match env.max_nodes {
        Some(max) => format!("{}..{max}", env.min_nodes.unwrap_or(0)),
        None => env.desired_nodes.to_string(),
    }
}

fn print_env(format: Format, env: &ComputeEnvDetail) {
    if format != Format::Table {
        print_data(format, env);
        return;
    }
    let e = &env.env;
    let opt = |v: &Option<String>| or_dash(v.as_deref());
    println!("name:          {}", e.name);
    println!("description:   {}", opt(&e.description));
    println!("provider:      {}", e.provider);
    match e.max_nodes {
        Some(max) => println!(
            "nodes:         {} to {max}, with the backlog (idle_timeout {}, at most {} pending)",
            e.min_nodes.unwrap_or(0),
            e.idle_timeout.as_deref().unwrap_or("5m"),
            e.max_pending_allocations.unwrap_or(4)
        ),
        None => println!("desired_nodes: {}", e.desired_nodes),
    }
    println!("shape:         {}", shape(e));
    if e.provider == "docker" {
        println!("image:         {}", opt(&e.image));
        println!("network:       {}", opt(&e.network));
    }
    if e.provider == "slurm" {
        for (k, v) in [
            ("partition:    ", &e.partition),
            ("account:      ", &e.account),
            ("qos:          ", &e.qos),
            ("time_limit:   ", &e.time_limit),
        ] {
            println!("{k} {}", opt(v));
        }
        if let Some(args) = &e.sbatch_args {
            println!("sbatch_args:   {}", args.join(" "));
        }
    }
    println!(
        "slots:         {}",
        e.slots.map_or_else(|| "-".into(), |s| s.to_string())
    );
    println!("state:         {}", env.state);
    if let Some(status) = &env.status {
        println!("status:        {status}");
    }
    if let Some(e) = &env.last_error {
        println!("last error:    {} ({})", e.message, e.at);
    }
    if env.creation_failures > 0 {
        println!("failed creations: {}", env.creation_failures);
    }
    if env.nodes.is_empty() {
        println!("nodes:         none");
    } else {
        let mut t = table(["NODE", "NAME", "STATE", "ERROR"]);
        for n in &env.nodes {
            t.add_row([
                or_dash(Some(n.id.as_str())),
                n.name.clone(),
                n.state.clone(),
                or_dash(n.error.as_deref()),
            ]);
        }
        println!("nodes:\n{t}");
    }
    if !env.allocations.is_empty() {
        let mut t = table(["SLURM JOB", "STATE", "REASON", "AGENTS", "ENDS"]);
        for a in &env.allocations {
            t.add_row([
                a.job_id.clone(),
                a.state.clone(),
                or_dash(a.reason.as_deref()),
                format!("{}/{}", a.registered, a.workers),
                or_dash(a.ends_at.as_deref()),
            ]);
        }
        println!("allocations:\n{t}");
    }
    if !env.activities.is_empty() {
        let mut t = table(["TIME", "ACTIVITY", "NODE", "STATE", "CAUSE"]);
        for a in &env.activities {
            let cause = match &a.state_reason {
                Some(r) => format!("{}: {r}", a.cause),
                None => a.cause.clone(),
            };
            let node = a
                .compute_node_id
                .clone()
                .or_else(|| a.instance_id.as_ref().map(|i| format!("job {i}")));
            t.add_row([
                a.start_time.clone(),
                a.compute_node_activity_type.clone(),
                or_dash(node.as_deref()),
                a.activity_state.clone(),
                cause,
            ]);
        }
        println!("activities (newest first):\n{t}");
    }
}

// ---- nodes ------------------------------------------------------------------------------------

/// `kiln nodes`, `kiln nodes revoke`.
pub async fn nodes(args: NodesArgs) -> Outcome {
    if let Some(NodesCmd::Revoke { name, server, out }) = args.cmd {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            eprintln!(
                "error: NAME: `{name}` is not a node name (1-64 of A-Z a-z 0-9 . _ -; see `kiln nodes`)"
            );
            return Err(Exit(exit::INVALID));
        }
        let conn = server.connect()?;
        let revoked = conn
            .client
            .revoke_node(&name)
            .await
            .map_err(|e| conn.fail(e))?;
        if out.output == Format::Table {
            eprintln!(
                "node {} is revoked: its credential no longer works, and what it ran runs again \
                 elsewhere",
                revoked.name
            );
        } else {
            print_data(out.output, &revoked);
        }
        return Ok(exit::OK);
    }
    let conn = args.server.connect()?;
    let list = conn.client.nodes().await.map_err(|e| conn.fail(e))?;
    print_nodes(args.out.output, &list);
    Ok(exit::OK)
}

/// `kiln server rotate-join-token`.
pub async fn server_cmd(cmd: ServerCmd) -> Outcome {
    let ServerCmd::RotateJoinToken { server, out } = cmd;
    let conn = server.connect()?;
    let token = conn
        .client
        .rotate_join_token()
        .await
        .map_err(|e| conn.fail(e))?;
    if out.output == Format::Table {
        println!("{}", token.token);
        eprintln!(
            "the join token is replaced (also in the server's DATA_DIR/agent-token); give the \
             new one to nodes that are to join from now on"
        );
    } else {
        print_data(out.output, &token);
    }
    Ok(exit::OK)
}

fn print_nodes(format: Format, list: &NodeList) {
    if format != Format::Table {
        print_data(format, list);
        return;
    }
    if list.items.is_empty() {
        eprintln!("no nodes");
        return;
    }
    let mut t = table([
        "NAME",
        "STATE",
        "ENV",
        "SLOTS",
        "RUNNING",
        "CPUS",
        "MEMORY",
        "LAST_SEEN",
    ]);
    for n in &list.items {
        t.add_row([
            n.name.clone(),
            n.state.clone(),
            or_dash(n.compute_env.as_deref()),
            n.slots.to_string(),
            n.running.to_string(),
            n.cpus.to_string(),
            bytes_text(n.memory),
            or_dash(n.last_seen.as_deref()),
        ]);
    }
    println!("{t}");
}

/// Bytes for people: `512 MiB`, `15.6 GiB`.
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_well() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(512 << 20), "512 MiB");
        assert_eq!(bytes_text(16_750_000_000), "15.6 GiB");
    }

    #[test]
    fn commands_fit_a_cell() {
        assert_eq!(command_text(&json!(["echo", "hi"])), "echo hi");
        assert_eq!(command_text(&json!("a\nb")), "a b");
        assert_eq!(command_text(&serde_json::Value::Null), "-");
        assert_eq!(command_text(&json!("x".repeat(100))).chars().count(), 60);
    }
}
