//! Projects and tokens through the `kiln` binary against a real server: an admin makes a
//! project and a token of it, the token works in its own project only, `kiln token revoke`
//! cuts it off at once, and `kiln audit` shows who did what; no token is ever printed again or
//! logged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};

use serde_json::Value;
use support::{Cluster, kiln_bin};

/// Runs a client command with `token`; returns (exit code, stdout, stderr).
fn as_token(c: &Cluster, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(kiln_bin())
        .args(args)
        .args(["--server", &c.url(), "--token", token])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_project_token_works_in_its_project_until_it_is_revoked() {
    let c = Cluster::new();
    let p = c.json(&["project", "create", "ml", "--description", "models"]);
    assert_eq!(p["name"], "ml");
    let t = c.json(&[
        "token",
        "create",
        "--project",
        "ml",
        "--role",
        "submitter",
        "--name",
        "ci",
        "--expires",
        "30d",
    ]);
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["expires_at", "name", "project", "role", "token"],
        "{t}"
    );
    assert_eq!(
        (
            t["name"].as_str(),
            t["project"].as_str(),
            t["role"].as_str()
        ),
        (Some("ci"), Some("ml"), Some("submitter"))
    );
    let token = t["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kiln-token:ci:"));
    let viewer = c.json(&[
        "token",
        "create",
        "--project",
        "default",
        "--role",
        "viewer",
    ]);
    let viewer = viewer["token"].as_str().unwrap().to_string();

    // The submitter submits into its project; a viewer of another project sees nothing of it.
    let spec = c.spec("j.yaml", "name: j\ntasks:\n  t: {command: 'true'}\n");
    let (code, out, err) = as_token(
        &c,
        &token,
        &["submit", spec.to_str().unwrap(), "-o", "json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, _) = as_token(&c, &token, &["jobs", "-o", "json"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id));
    let (code, out, _) = as_token(&c, &viewer, &["jobs", "-o", "json"]);
    assert_eq!(code, 0);
    assert!(!out.contains(&id), "another project's job is listed: {out}");
    let (code, _, err) = as_token(&c, &viewer, &["job", "show", &id]);
    assert_ne!(code, 0);
    assert!(err.contains("404") || err.contains("no job"), "{err}");
    let (code, _, err) = as_token(&c, &viewer, &["submit", spec.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("submitter"),
        "a 403 names the role needed: {err}"
    );

    // Lists never show a secret; revocation holds at the next call.
    let (code, list) = c.kiln(&["token", "list", "-o", "json"]);
    assert_eq!(code, 0);
    assert!(list.contains("\"ci\"") && !list.contains(&token), "{list}");
    let (code, _) = c.kiln(&["token", "revoke", "ci"]);
    assert_eq!(code, 0);
    let (code, _, err) = as_token(&c, &token, &["jobs"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("revoked"), "{err}");

    // Bad input is refused before anything is sent.
    let (code, _) = c.kiln(&["token", "create", "--project", "ml", "--role", "root"]);
    assert_eq!(code, 2);
    let (code, _) = c.kiln(&["project", "create", "no spaces"]);
    assert_eq!(code, 2);

    // The audit log names the token and the job, and holds no token.
    let audit = c.json(&["audit", "--since", "1h"]);
    let items = audit["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|e| e["token"] == "ci" && e["object"] == format!("job/{id}")),
        "{audit}"
    );
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "POST /v1/tokens/{name}/revoke")
    );
    let admin = std::fs::read_to_string(c.data().join("admin-token")).unwrap();
    let everything = format!("{audit}{}", c.server_log.lock().unwrap().join("\n"));
    for secret in [token.as_str(), viewer.as_str(), admin.trim()] {
        assert!(
            !everything.contains(secret),
            "a token is in the audit log or the server's log"
        );
    }
}
