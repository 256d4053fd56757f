//! Malformed specs through both `kiln validate` and `kiln run`: exit code 2, the error names
//! the field, and `kiln run` stores nothing (it validates before it touches the state
//! directory, so the directory is not even created).

// Tests may unwrap (clippy.toml allows it in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Sandbox, kiln};
use serde_json::Value;

/// What a case's spec file is.
enum Input {
    Text(&'static str),
    Bytes(Vec<u8>),
    /// No file at that path.
    Missing,
    /// A directory instead of a file.
    Directory,
}

struct Case {
    label: &'static str,
    input: Input,
    /// The `field` of one reported error (`""` for the whole document).
    field: &'static str,
    /// Text the error message must contain.
    says: &'static str,
}

fn cases() -> Vec<Case> {
    use Input::*;
    let case = |label, input, field, says| Case {
        label,
        input,
        field,
        says,
    };
    vec![
        case(
            "bad YAML",
            Text("name: x\ntasks: {a: {command: [unclosed}\n"),
            "",
            "invalid YAML",
        ),
        case(
            "unknown field",
            Text("name: x\ntasks:\n  a:\n    command: 'true'\n    retires: 2\n"),
            "tasks.a.retires",
            "did you mean `retries`",
        ),
        case(
            "missing command",
            Text("name: x\ntasks: {a: {instances: 2}}\n"),
            "tasks.a.command",
            "missing",
        ),
        case(
            "instances 0",
            Text("name: x\ntasks: {a: {command: 'true', instances: 0}}\n"),
            "tasks.a.instances",
            "got 0",
        ),
        case(
            "instances 1_000_001",
            Text("name: x\ntasks: {a: {command: 'true', instances: 1000001}}\n"),
            "tasks.a.instances",
            "got 1000001",
        ),
        case(
            "bad size",
            Text("name: x\ntasks: {a: {command: 'true', resources: {cpus: 1, memory: 12QB}}}\n"),
            "tasks.a.resources.memory",
            "12QB",
        ),
        case(
            "bad duration",
            Text("name: x\ntasks: {a: {command: 'true', timeout: 5 parsecs}}\n"),
            "tasks.a.timeout",
            "5 parsecs",
        ),
        case(
            "cycle",
            Text(
                "name: x\ndag: |\n  a -> b -> c -> a\ntasks: {a: {command: 'true'}, b: {command: 'true'}, c: {command: 'true'}}\n",
            ),
            "dag",
            "a -> b -> c -> a",
        ),
        case(
            "unknown task in dag",
            Text("name: x\ndag: a -> bb\ntasks: {a: {command: 'true'}, b: {command: 'true'}}\n"),
            "dag",
            "did you mean `b`",
        ),
        case(
            "unknown task in depends_on",
            Text(
                "name: x\ntasks: {a: {command: 'true'}, b: {command: 'true', depends_on: [aa]}}\n",
            ),
            "tasks.b.depends_on[0]",
            "did you mean `a`",
        ),
        case(
            "self-edge",
            Text("name: x\ndag: a -> a\ntasks: {a: {command: 'true'}}\n"),
            "dag",
            "self-edge",
        ),
        case(
            "=> with different counts",
            Text(
                "name: x\ndag: a => b\ntasks: {a: {command: 'true', instances: 2}, b: {command: 'true', instances: 3}}\n",
            ),
            "dag",
            "same instance count",
        ),
        case(
            "bad job name",
            Text("name: 'bad name!'\ntasks: {a: {command: 'true'}}\n"),
            "name",
            "bad name!",
        ),
        case(
            "bad task name",
            Text("name: x\ntasks: {'a/b': {command: 'true'}}\n"),
            "tasks.a/b",
            "a/b",
        ),
        case(
            "priority 101",
            Text("name: x\npriority: 101\ntasks: {a: {command: 'true'}}\n"),
            "priority",
            "101",
        ),
        case(
            "retries 11",
            Text("name: x\ntasks: {a: {command: 'true', retries: 11}}\n"),
            "tasks.a.retries",
            "11",
        ),
        case(
            "env key BATCH_",
            Text("name: x\ntasks: {a: {command: 'true', env: {BATCH_FOO: x}}}\n"),
            "tasks.a.env.BATCH_FOO",
            "reserved",
        ),
        case(
            "bad on_failure",
            Text("name: x\ntasks: {a: {command: 'true', on_failure: explode}}\n"),
            "tasks.a.on_failure",
            "explode",
        ),
        case(
            "bad URL scheme in inputs",
            Text(
                "name: x\ntasks: {a: {command: 'true', inputs: [{source: 'ftp://h/x', target: in/}]}}\n",
            ),
            "tasks.a.inputs[0].source",
            "ftp://",
        ),
        case(
            "Tencent JSON with an unknown key",
            Text(
                r#"{"JobName": "x", "Tasks": [{"TaskName": "a", "TaskInstanceNum": 1, "Application": {"DeliveryForm": "LOCAL", "Command": "true"}, "Bogus": 1}]}"#,
            ),
            "Tasks[0].Bogus",
            "Bogus",
        ),
        case("file missing", Missing, "", "cannot read"),
        case("a directory", Directory, "", "directory"),
        case(
            "invalid UTF-8",
            Bytes(b"name: x\xff\ntasks: {a: {command: 'true'}}\n".to_vec()),
            "",
            "UTF-8",
        ),
        case("empty file", Text(""), "", "empty"),
        case(
            "larger than 16 MiB",
            Bytes(vec![b' '; 16 * 1024 * 1024 + 1]),
            "",
            "16 MiB",
        ),
    ]
}

/// Errors of a `-o json` answer as (field, message and hint).
fn json_errors(stdout: &[u8]) -> Vec<(String, String)> {
    let v: Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)));
    v["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{} {}",
                    e["message"].as_str().unwrap_or_default(),
                    e["hint"].as_str().unwrap_or_default()
                ),
            )
        })
        .collect()
}

#[test]
fn malformed_specs_are_rejected_by_validate_and_run_and_nothing_is_stored() {
    let cases = cases();
    assert!(cases.len() >= 15);
    let mut problems = Vec::new();
    for (n, c) in cases.iter().enumerate() {
        let sb = Sandbox::new();
        let file = sb.path(&format!("case-{n}.yaml"));
        match &c.input {
            Input::Text(t) => std::fs::write(&file, t).unwrap(),
            Input::Bytes(b) => std::fs::write(&file, b).unwrap(),
            Input::Missing => {}
            Input::Directory => std::fs::create_dir(&file).unwrap(),
        }
        let field_shown = if c.field.is_empty() {
            c.says.to_string()
        } else {
            format!("{}:", c.field)
        };
        let mut check = |what: &str, ok: bool, detail: &dyn std::fmt::Display| {
            if !ok {
                problems.push(format!("[{}] {what}\n{detail}", c.label));
            }
        };

        // kiln validate (table output: errors on stderr).
        let out = kiln().arg("validate").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        check("validate exits 2", out.status.code() == Some(2), &stderr);
        check(
            "validate names the field",
            stderr.contains(&field_shown),
            &stderr,
        );
        check(
            "validate says what is wrong",
            stderr.contains(c.says),
            &stderr,
        );

        // kiln validate -o json: the field is machine-readable.
        let out = kiln()
            .arg("validate")
            .arg(&file)
            .args(["-o", "json"])
            .output()
            .unwrap();
        let errors = json_errors(&out.stdout);
        check(
            "validate -o json exits 2",
            out.status.code() == Some(2),
            &format!("{errors:?}"),
        );
        check(
            "validate -o json has the field",
            errors
                .iter()
                .any(|(f, m)| f == c.field && m.contains(c.says)),
            &format!("{errors:?}"),
        );

        // kiln run: same errors, nothing stored.
        for json in [false, true] {
            let mut cmd = kiln();
            cmd.arg("run")
                .arg(&file)
                .arg("--state-dir")
                .arg(sb.state_dir());
            if json {
                cmd.args(["-o", "json"]);
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            check("run exits 2", out.status.code() == Some(2), &stderr);
            if json {
                let errors = json_errors(&out.stdout);
                check(
                    "run -o json has the field",
                    errors.iter().any(|(f, _)| f == c.field),
                    &format!("{errors:?}"),
                );
            } else {
                check(
                    "run names the field",
                    stderr.contains(&field_shown),
                    &stderr,
                );
            }
            check(
                "run does not create the state dir",
                !sb.state_dir().exists(),
                &sb.state_dir().display(),
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn run_rejects_what_this_machine_cannot_honour() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "docker.yaml",
        "name: x\ntasks:\n  a: {command: 'true', image: 'alpine:3', network: vpc-1}\n  b: {command: 'true', resources: {cpus: 1000, memory: 1GiB}}\n",
    );
    let ok = kiln().arg("validate").arg(&spec).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "valid spec: {ok:?}");
    // No Docker Engine answers where this run looks for one.
    let out = kiln()
        .arg("run")
        .arg(&spec)
        .arg("--state-dir")
        .arg(sb.state_dir())
        .env(
            "DOCKER_HOST",
            format!("unix://{}", sb.path("no-docker.sock").display()),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for field in ["tasks.a.image:", "tasks.b.resources:"] {
        assert!(stderr.contains(field), "{field}: {stderr}");
    }
    assert!(stderr.contains("no Docker Engine answers"), "{stderr}");
    assert!(!sb.state_dir().exists());
}

#[test]
fn run_refuses_storage_profiles_it_does_not_have() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "profiles.yaml",
        "name: x\ntasks:\n  a:\n    command: 'true'\n    storage_profile: lab\n",
    );
    // A server may have the profile: validate leaves the name to it.
    let ok = kiln().arg("validate").arg(&spec).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "valid spec: {ok:?}");
    let out = kiln()
        .arg("run")
        .arg(&spec)
        .arg("--state-dir")
        .arg(sb.state_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tasks.a.storage_profile"), "{stderr}");
    assert!(stderr.contains("unknown storage profile `lab`"), "{stderr}");
    assert!(!sb.state_dir().exists());
}

#[test]
fn run_checks_its_storage_profiles_file_before_anything_runs() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "uses-lab.yaml",
        "name: x\ntasks:\n  a:\n    command: 'true'\n    storage_profile: lab\n",
    );
    let run = |profiles: &std::path::Path| {
        let out = kiln()
            .arg("run")
            .arg(&spec)
            .arg("--storage-profiles")
            .arg(profiles)
            .arg("--state-dir")
            .arg(sb.state_dir())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let secret = "sEcReT-never-echoed-42";
    let cases = [
        (
            format!(
                "- {{name: lab, kind: s3, access_key_id: a, secret_access_key: {secret}, bucket: b}}\n"
            ),
            "[0].bucket",
        ),
        (
            format!(
                "- {{name: lab, kind: s3, access_key_id: a, secret_access_key: {secret}}}\n- {{name: lab, kind: s3, access_key_id: a, secret_access_key: {secret}}}\n"
            ),
            "[1].name",
        ),
        (
            format!(
                "- {{name: a, kind: s3, access_key_id: a, secret_access_key: {secret}, default: true}}\n- {{name: lab, kind: s3, access_key_id: a, secret_access_key: {secret}, default: true}}\n"
            ),
            "[1].default",
        ),
        (
            format!("name: lab\nkind: s3\naccess_key_id: a\nsecret_access_key: {secret}\n"),
            "expected a list",
        ),
        (
            format!("- {{name: lob, kind: s3, access_key_id: a, secret_access_key: {secret}}}\n"),
            "did you mean `lob`",
        ),
    ];
    for (i, (text, says)) in cases.iter().enumerate() {
        let file = sb.spec(&format!("profiles-{i}.yaml"), text);
        let (code, stderr) = run(&file);
        assert_eq!(code, Some(2), "{text}: {stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(!stderr.contains(secret), "{stderr}");
        assert!(!sb.state_dir().exists());
    }
    let (code, stderr) = run(&sb.path("no-such-profiles.yaml"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!sb.state_dir().exists());
}

#[test]
fn run_usage_errors_exit_2() {
    let sb = Sandbox::new();
    // No spec and no --resume.
    let out = kiln().arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // --resume conflicts with --fresh.
    let out = kiln()
        .args(["run", "--resume", "job-x", "--fresh", "--state-dir"])
        .arg(sb.state_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Bad --cpus.
    let spec = sb.spec("ok.yaml", "name: x\ntasks: {a: {command: 'true'}}\n");
    let out = kiln()
        .arg("run")
        .arg(&spec)
        .args(["--cpus", "0", "--state-dir"])
        .arg(sb.state_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!sb.state_dir().exists());
}
