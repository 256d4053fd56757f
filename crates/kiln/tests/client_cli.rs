//! The client commands (`kiln submit`, `jobs`, `job`, `logs`, `why`, `nodes`, `template`, `storage`, `env`)
//! without a server: their help, local validation (nothing is sent), and how they fail when the
//! server cannot be reached or the token cannot be read. Talking to a real `kiln server` is
//! tested end to end elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;

use common::{Sandbox, kiln};
use predicates::prelude::*;
use serde_json::Value;

/// A URL on which nothing listens: a port the OS just handed out, closed again.
fn closed_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// `kiln ARGS` with none of the user's `KILN_*` settings.
fn client(args: &[&str]) -> assert_cmd::Command {
    let mut cmd = kiln();
    cmd.env_remove("KILN_SERVER")
        .env_remove("KILN_TOKEN")
        .env_remove("KILN_TOKEN_FILE")
        .args(args);
    cmd
}

const SERVER_OPTS: [&str; 3] = ["--server", "--token", "--token-file"];

#[test]
fn every_client_command_documents_its_options() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["submit"], &["--wait", "-o, --output", "<FILE>", "Ctrl-C"]),
        (&["jobs"], &["--state", "--limit", "--all", "-o, --output"]),
        (&["job", "show"], &["<ID>", "-o, --output"]),
        (&["job", "terminate"], &["<ID>"]),
        (&["job", "retry"], &["<ID>"]),
        (&["job", "delete"], &["<ID>"]),
        (
            &["logs"],
            &["<JOB>", "<TASK>", "[INDEX]", "-f, --follow", "--stderr"],
        ),
        (&["why"], &["<JOB>", "[TASK]", "[INDEX]", "-o, --output"]),
        (&["nodes"], &["-o, --output"]),
        (&["template", "create"], &["<FILE>", "-o, --output"]),
        (&["template", "list"], &["-o, --output"]),
        (&["template", "show"], &["<NAME>"]),
        (&["template", "delete"], &["<NAME>"]),
        (&["storage", "create"], &["<FILE>", "-o, --output"]),
        (&["storage", "list"], &["-o, --output"]),
        (&["storage", "show"], &["<NAME>"]),
        (&["storage", "delete"], &["<NAME>"]),
        (&["env", "create"], &["<FILE>", "-o, --output"]),
        (&["env", "list"], &["-o, --output"]),
        (&["env", "show"], &["<NAME>"]),
        (&["env", "scale"], &["<NAME>", "--desired <N>"]),
        (&["env", "delete"], &["<NAME>"]),
        (&["project", "create"], &["<NAME>", "--description"]),
        (&["project", "list"], &["-o, --output"]),
        (&["project", "show"], &["<NAME>"]),
        (&["project", "delete"], &["<NAME>"]),
        (
            &["token", "create"],
            &["--project", "--role", "--name", "--expires", "-o, --output"],
        ),
        (&["token", "list"], &["-o, --output"]),
        (&["token", "revoke"], &["<NAME>"]),
        (&["audit"], &["--since", "-o, --output"]),
    ];
    for (args, wants) in cases {
        let out = client(args).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kiln {args:?} --help failed");
        for want in SERVER_OPTS.iter().chain(wants.iter()) {
            assert!(
                help.contains(want),
                "kiln {args:?} --help lacks `{want}`:\n{help}"
            );
        }
        assert!(help.contains("KILN_SERVER"), "kiln {args:?} --help");
    }
    // The groups list their subcommands, and the top level lists every client command.
    for (group, subs) in [
        ("job", &["show", "terminate", "retry", "delete"][..]),
        ("template", &["create", "list", "show", "delete"][..]),
        ("storage", &["create", "list", "show", "delete"][..]),
        ("env", &["create", "list", "show", "scale", "delete"][..]),
    ] {
        let out = client(&[group, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for sub in subs {
            assert!(help.contains(sub), "kiln {group} --help lacks {sub}");
        }
    }
    let out = client(&["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "run",
        "validate",
        "submit",
        "jobs",
        "job",
        "logs",
        "why",
        "nodes",
        "template",
        "storage",
        "env",
        "completions",
    ] {
        assert!(
            help.contains(&format!("  {cmd} ")),
            "kiln --help lacks {cmd}"
        );
    }
}

#[test]
fn help_never_shows_the_token() {
    for args in [&["submit", "--help"][..], &["jobs", "--help"][..]] {
        client(args)
            .env("KILN_TOKEN", "s3cr3t-t0ken")
            .assert()
            .success()
            .stdout(predicate::str::contains("KILN_TOKEN"))
            .stdout(predicate::str::contains("s3cr3t-t0ken").not());
    }
}

#[test]
fn an_invalid_storage_profile_is_refused_before_anything_is_sent() {
    let sb = Sandbox::new();
    let server = closed_server();
    for (body, field) in [
        (
            "name: p\nkind: gcs\naccess_key_id: a\nsecret_access_key: TOPSECRET\n",
            "kind",
        ),
        ("name: p\nkind: s3\naccess_key_id: a\n", "secret_access_key"),
        (
            "name: p\nkind: s3\naccess_key_id: a\nsecret_access_key: [TOPSECRET]\n",
            "secret_access_key",
        ),
    ] {
        let file = sb.spec("profile.yaml", body);
        let out = client(&["storage", "create", "--server", &server])
            .arg(&file)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a valid storage profile"), "{stderr}");
        assert!(stderr.contains(field), "{body}: {stderr}");
        assert!(!stderr.contains("TOPSECRET"), "{stderr}");
        assert!(
            !stderr.contains("cannot reach"),
            "nothing was sent: {stderr}"
        );
    }
}

#[test]
fn an_invalid_spec_is_refused_before_anything_is_sent() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "bad.yaml",
        "name: x\ntasks:\n  a:\n    command: 'true'\n    retires: 2\n  b: {instances: 2}\n",
    );
    let server = closed_server();
    let out = client(&["submit", "--server", &server])
        .arg(&spec)
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a valid job spec (2 errors)"),
        "{stderr}"
    );
    assert!(stderr.contains("tasks.a.retires"), "{stderr}");
    assert!(stderr.contains("tasks.b.command"), "{stderr}");
    assert!(
        !stderr.contains("cannot reach"),
        "nothing is sent: {stderr}"
    );

    // The same as data, with --wait changing nothing.
    let out = client(&["submit", "--wait", "-o", "json", "--server", &server])
        .arg(&spec)
        .assert()
        .code(2)
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(2));

    // A file that cannot be read is invalid input too.
    client(&["submit", "--server", &server])
        .arg(sb.path("missing.yaml"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read"));
}

#[test]
fn unknown_templates_are_left_to_the_server() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "tpl.yaml",
        "name: x\ntasks:\n  a: {template: base}\n  b: {command: 'true'}\ndag: a -> b\n",
    );
    let server = closed_server();
    // Valid but for the template: it is sent (and here cannot be), not refused locally.
    client(&["submit", "--server", &server])
        .arg(&spec)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot reach the Kiln server"))
        .stderr(predicate::str::contains("template").not());
    // Another error beside it: refused locally, with both errors.
    let spec = sb.spec(
        "tpl-bad.yaml",
        "name: x\ntasks:\n  a: {template: base, retires: 1}\n",
    );
    client(&["submit", "--server", &server])
        .arg(&spec)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tasks.a.template"))
        .stderr(predicate::str::contains("tasks.a.retires"));
}

#[test]
fn an_unreachable_server_exits_1_and_says_where() {
    let sb = Sandbox::new();
    let spec = sb.spec("ok.yaml", "name: x\ntasks:\n  a: {command: 'true'}\n");
    let server = closed_server();
    let spec = spec.to_str().unwrap();
    let commands: &[&[&str]] = &[
        &["submit", spec],
        &["submit", spec, "--wait"],
        &["jobs", "--all"],
        &["job", "show", "job-1"],
        &["job", "terminate", "job-1"],
        &["job", "retry", "job-1"],
        &["job", "delete", "job-1"],
        &["logs", "job-1", "a", "-f"],
        &["why", "job-1", "a", "0"],
        &["nodes"],
        &["template", "list"],
        &["template", "show", "t"],
        &["template", "delete", "t"],
        &["storage", "list"],
        &["storage", "show", "p"],
        &["storage", "delete", "p"],
        &["env", "list"],
        &["env", "show", "e"],
        &["env", "scale", "e", "--desired", "2"],
        &["env", "delete", "e"],
    ];
    for args in commands {
        let out = client(args)
            .env("KILN_SERVER", &server)
            .env("KILN_TOKEN", "s3cr3t-t0ken")
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "kiln {args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot reach the Kiln server at {server}")),
            "kiln {args:?}: {stderr}"
        );
        assert!(stderr.contains("kiln server"), "a hint: {stderr}");
        assert!(stderr.contains("KILN_SERVER"), "a hint: {stderr}");
        let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
        assert!(!all.contains("s3cr3t-t0ken"), "the token is never printed");
    }
}

#[test]
fn token_files_are_read_and_checked() {
    let sb = Sandbox::new();
    let server = closed_server();
    let missing = sb.path("no-such-token");
    // A missing token file: exit 2 before any connection.
    client(&["jobs", "--server", &server, "--token-file"])
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the token file"))
        .stderr(predicate::str::contains("no-such-token"))
        .stderr(predicate::str::contains("cannot reach").not());
    // The same through the environment.
    client(&["nodes", "--server", &server])
        .env("KILN_TOKEN_FILE", &missing)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the token file"));
    // An empty one.
    let empty = sb.spec("empty-token", "  \n");
    client(&["jobs", "--server", &server, "--token-file"])
        .arg(&empty)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is empty"));
    // One that cannot go in a header: refused without being shown.
    let bad = sb.spec("bad-token", "s3cr3t t0ken\n");
    client(&["jobs", "--server", &server, "--token-file"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("HTTP header"))
        .stderr(predicate::str::contains("s3cr3t").not());
    // A good one (trimmed) gets as far as the network.
    let good = sb.spec("token", "\n  s3cr3t-t0ken \n");
    client(&["jobs", "--server", &server, "--token-file"])
        .arg(&good)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot reach"))
        .stderr(predicate::str::contains("s3cr3t").not());
    // --token wins over a token file, even a missing one.
    client(&["jobs", "--server", &server, "--token", "t0k"])
        .arg("--token-file")
        .arg(&missing)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot reach"));
}

#[test]
fn bad_server_urls_are_invalid_input() {
    for url in ["ftp://kiln.example", "127.0.0.1:7878", "http://h/?x=1"] {
        client(&["jobs", "--server", url])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("invalid --server URL"));
    }
}

#[test]
fn templates_and_environments_are_checked_before_sending() {
    let sb = Sandbox::new();
    let server = closed_server();
    let cases = [
        (
            "template",
            "t1.yaml",
            "name: t\ntask: {comand: x}\n",
            "task.comand",
        ),
        (
            "template",
            "t2.json",
            r#"{"name": "t", "task": {}, "extra": 1}"#,
            "unknown field `extra`",
        ),
        (
            "template",
            "t3.yaml",
            "name: t\ntask: {command: [unclosed}\n",
            "invalid YAML",
        ),
        (
            "env",
            "e1.yaml",
            "name: e\nprovider: local\ndesired: 2\n",
            "unknown field `desired`",
        ),
        ("env", "e2.yaml", "name: e\n", "missing field `provider`"),
    ];
    for (group, file, text, says) in cases {
        let path = sb.spec(file, text);
        client(&[group, "create", "--server", &server])
            .arg(&path)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says))
            .stderr(predicate::str::contains("cannot reach").not());
    }
    // Valid ones are sent.
    for (group, file, text) in [
        (
            "template",
            "t-ok.yaml",
            "name: t\ndescription: d\ntask: {command: 'true', retries: 2}\n",
        ),
        (
            "env",
            "e-ok.json",
            r#"{"name": "e", "provider": "local", "desired_nodes": 1}"#,
        ),
    ] {
        let path = sb.spec(file, text);
        client(&[group, "create", "--server", &server])
            .arg(&path)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("cannot reach"));
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["jobs", "--limit", "0"][..],
        &["env", "scale", "e"][..],
        &["logs", "job-1"][..],
        &["jobs", "-o", "xml"][..],
    ] {
        client(args).assert().code(2);
    }
}
