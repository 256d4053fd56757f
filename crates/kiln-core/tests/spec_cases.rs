//! Data-driven tests of job spec parsing and validation (DESIGN §2, §3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kiln_core::model::{
    Command, DepKind, Dependency, DependencyPolicy, Image, JobSpec, OnFailure, Resources,
    UploadWhen,
};
use kiln_core::spec::{
    MAX_SPEC_BYTES, Parsed, RawTask, SpecErrors, SpecFormat, Templates, parse_job,
    parse_task_template,
};

const PIPELINE: &str = include_str!("../../../examples/pipeline.yaml");
const WORDCOUNT: &str = include_str!("../../../examples/wordcount.yaml");
const TENCENT_SUBMIT: &str = include_str!("../../../examples/tencent-submit-job.json");
const TENCENT_COS: &str = include_str!("../../../examples/tencent-cos-job.json");

/// A job with one task `t` whose fields are `fields` (flow YAML, after `command: echo`).
fn task(fields: &str) -> String {
    format!("name: j\ntasks:\n  t: {{command: echo, {fields}}}\n")
}

/// A job with the given top-level extra lines and tasks a, b, c (one instance each).
fn abc(extra: &str) -> String {
    format!(
        "name: j\n{extra}\ntasks:\n  a: {{command: x}}\n  b: {{command: x}}\n  c: {{command: x}}\n"
    )
}

struct Case {
    name: &'static str,
    input: String,
    /// Empty: must parse. Otherwise exactly these errors: (path, fragment of message or hint).
    errors: Vec<(&'static str, &'static str)>,
}

fn ok(name: &'static str, input: impl Into<String>) -> Case {
    Case {
        name,
        input: input.into(),
        errors: Vec::new(),
    }
}

fn err(
    name: &'static str,
    input: impl Into<String>,
    errors: &[(&'static str, &'static str)],
) -> Case {
    Case {
        name,
        input: input.into(),
        errors: errors.to_vec(),
    }
}

fn cases() -> Vec<Case> {
    vec![
        // --- documents ---
        ok(
            "minimal yaml",
            "name: j\ntasks:\n  t:\n    command: echo hi\n",
        ),
        ok(
            "minimal json",
            r#"{"name": "j", "tasks": {"t": {"command": ["echo", "hi"]}}}"#,
        ),
        ok("examples/pipeline.yaml", PIPELINE),
        ok("examples/wordcount.yaml", WORDCOUNT),
        ok("examples/tencent-submit-job.json", TENCENT_SUBMIT),
        ok("examples/tencent-cos-job.json", TENCENT_COS),
        err("empty document", "", &[("", "empty")]),
        err("whitespace only", "  \n\t\n", &[("", "empty")]),
        err("comments only", "# nothing\n", &[("", "empty")]),
        err(
            "top level list",
            "- a\n- b\n",
            &[("", "expected a mapping, got a list")],
        ),
        err(
            "yaml syntax",
            "name: j\ntasks: [unclosed\n",
            &[("", "line")],
        ),
        err(
            "json syntax",
            "{\"name\": \"j\",\n \"tasks\": }",
            &[("", "line 2")],
        ),
        err(
            "json duplicate key",
            r#"{"name": "j", "name": "k", "tasks": {}}"#,
            &[("", "duplicate key `name`")],
        ),
        err(
            "yaml duplicate key",
            "name: j\nname: k\ntasks: {t: {command: x}}\n",
            &[("", "name")],
        ),
        // --- job fields ---
        err(
            "missing name",
            "tasks: {t: {command: x}}",
            &[("name", "missing required field")],
        ),
        err(
            "bad job name",
            "name: my job\ntasks: {t: {command: x}}",
            &[("name", "only A-Z a-z 0-9 . _ -")],
        ),
        err(
            "long job name",
            format!("name: {}\ntasks: {{t: {{command: x}}}}", "a".repeat(61)),
            &[("name", "at most 60")],
        ),
        ok(
            "60-char job name",
            format!("name: {}\ntasks: {{t: {{command: x}}}}", "a".repeat(60)),
        ),
        err(
            "long description",
            format!(
                "name: j\ndescription: {}\ntasks: {{t: {{command: x}}}}",
                "d".repeat(201)
            ),
            &[("description", "at most 200")],
        ),
        err(
            "priority range",
            "name: j\npriority: 101\ntasks: {t: {command: x}}",
            &[("priority", "between 0 and 100, got 101")],
        ),
        err(
            "priority quoted",
            "name: j\npriority: \"3\"\ntasks: {t: {command: x}}",
            &[("priority", "expected an integer, got a string \"3\"")],
        ),
        err(
            "priority float",
            "name: j\npriority: 1.5\ntasks: {t: {command: x}}",
            &[("priority", "expected an integer, got a number 1.5")],
        ),
        err(
            "too many tags",
            format!(
                "name: j\ntags: {{{}}}\ntasks: {{t: {{command: x}}}}",
                (0..11)
                    .map(|i| format!("k{i}: v"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[("tags", "at most 10 tags")],
        ),
        err(
            "tag value mapping",
            "name: j\ntags: {team: {a: b}}\ntasks: {t: {command: x}}",
            &[("tags.team", "expected a string, got a mapping")],
        ),
        err(
            "dependency policy typo",
            "name: j\ndependency_policy: succeed\ntasks: {t: {command: x}}",
            &[("dependency_policy", "did you mean `succeeded`?")],
        ),
        err(
            "unknown top-level field",
            "name: j\ntaks: {t: {command: x}}",
            &[
                ("taks", "did you mean `tasks`?"),
                ("tasks", "missing required field"),
            ],
        ),
        err(
            "empty tasks",
            "name: j\ntasks: {}",
            &[("tasks", "at least one task")],
        ),
        err(
            "tasks is a list",
            "name: j\ntasks: [a, b]",
            &[("tasks", "expected a mapping, got a list")],
        ),
        err(
            "bad task name",
            "name: j\ntasks: {\"bad name\": {command: x}}",
            &[("tasks.bad name", "invalid task name")],
        ),
        // --- task fields ---
        err(
            "unknown task field",
            "name: j\ntasks: {t: {comand: x}}",
            &[
                ("tasks.t.comand", "did you mean `command`?"),
                ("tasks.t.command", "missing required field `command`"),
            ],
        ),
        err(
            "missing command",
            "name: j\ntasks: {t: {instances: 2}}",
            &[("tasks.t.command", "missing required field")],
        ),
        err(
            "null task",
            "name: j\ntasks: {t: }",
            &[("tasks.t.command", "missing required field")],
        ),
        err(
            "empty command",
            "name: j\ntasks: {t: {command: \"  \"}}",
            &[("tasks.t.command", "must not be empty")],
        ),
        err(
            "empty argv",
            "name: j\ntasks: {t: {command: []}}",
            &[("tasks.t.command", "must not be empty")],
        ),
        err(
            "argv with mapping",
            "name: j\ntasks: {t: {command: [echo, {a: b}]}}",
            &[("tasks.t.command[1]", "expected a string, got a mapping")],
        ),
        err(
            "command number",
            "name: j\ntasks: {t: {command: 3}}",
            &[(
                "tasks.t.command",
                "expected a string or a list of strings, got an integer 3",
            )],
        ),
        err(
            "instances zero",
            task("instances: 0"),
            &[("tasks.t.instances", "between 1 and 1000000, got 0")],
        ),
        err(
            "instances too many",
            task("instances: 1000001"),
            &[("tasks.t.instances", "between 1 and 1000000")],
        ),
        err(
            "instances quoted",
            task("instances: \"3\""),
            &[(
                "tasks.t.instances",
                "expected an integer, got a string \"3\"",
            )],
        ),
        err(
            "instances float",
            task("instances: 2.0"),
            &[("tasks.t.instances", "expected an integer, got a number")],
        ),
        err(
            "max_concurrency negative",
            task("max_concurrency: -1"),
            &[("tasks.t.max_concurrency", "between 0 and")],
        ),
        err(
            "unknown instance type",
            task("instance_type: S1.SMAL1"),
            &[("tasks.t.instance_type", "did you mean `S1.SMALL1`")],
        ),
        err(
            "far instance type",
            task("instance_type: huge"),
            &[(
                "tasks.t.instance_type",
                "known instance types: C2.2XLARGE16, C2.LARGE8",
            )],
        ),
        err(
            "instance type and resources",
            task("instance_type: S1.SMALL1, resources: {cpus: 1}"),
            &[("tasks.t.resources", "not both")],
        ),
        err(
            "cpus zero",
            task("resources: {cpus: 0}"),
            &[("tasks.t.resources.cpus", "greater than 0")],
        ),
        err(
            "cpus too many",
            task("resources: {cpus: 2048}"),
            &[("tasks.t.resources.cpus", "at most 1024")],
        ),
        err(
            "cpus too fine",
            task("resources: {cpus: 0.0005}"),
            &[("tasks.t.resources.cpus", "finer than 0.001")],
        ),
        err(
            "cpus string",
            task("resources: {cpus: \"2\"}"),
            &[("tasks.t.resources.cpus", "got a string \"2\"")],
        ),
        err(
            "bad memory",
            task("resources: {memory: lots, disk: -1G, gpus: 1}"),
            &[
                ("tasks.t.resources.gpus", "unknown field"),
                ("tasks.t.resources.memory", "invalid size `lots`"),
                ("tasks.t.resources.disk", "must not be negative"),
            ],
        ),
        err(
            "bad image",
            task("image: \"Not An Image\""),
            &[("tasks.t.image", "invalid image reference")],
        ),
        err(
            "bad network",
            task("network: \"my net\""),
            &[("tasks.t.network", "invalid network name")],
        ),
        err(
            "bad compute env",
            task("compute_env: \"\""),
            &[("tasks.t.compute_env", "must not be empty")],
        ),
        err(
            "env reserved",
            task("env: {BATCH_JOB_ID: x}"),
            &[("tasks.t.env.BATCH_JOB_ID", "reserved")],
        ),
        err(
            "env bad name",
            task("env: {1ABC: x, A-B: y}"),
            &[
                ("tasks.t.env.1ABC", "invalid environment variable name"),
                ("tasks.t.env.A-B", "invalid environment variable name"),
            ],
        ),
        err(
            "env list value",
            task("env: {A: [1, 2], B: {c: d}, C: }"),
            &[
                ("tasks.t.env.A", "got a list"),
                ("tasks.t.env.B", "got a mapping"),
                ("tasks.t.env.C", "got null"),
            ],
        ),
        err(
            "env not a map",
            task("env: [A]"),
            &[("tasks.t.env", "expected a mapping, got a list")],
        ),
        err(
            "input scheme",
            task("inputs: [{source: \"http://x/y\", target: in/}]"),
            &[(
                "tasks.t.inputs[0].source",
                "unsupported storage URL scheme `http://`",
            )],
        ),
        err(
            "input local source",
            task("inputs: [{source: data/, target: in/}]"),
            &[("tasks.t.inputs[0].source", "expected a storage URL")],
        ),
        err(
            "input escapes",
            task(
                "inputs: [{source: \"s3://bucket/a\", target: ../a}, {source: \"s3://bucket/b\", target: a/../../b}]",
            ),
            &[
                ("tasks.t.inputs[0].target", "escape the working directory"),
                ("tasks.t.inputs[1].target", "escape the working directory"),
            ],
        ),
        ok(
            "input dotdot inside",
            task("inputs: [{source: \"s3://bucket/a\", target: a/../b}]"),
        ),
        err(
            "input same target",
            task(
                "inputs: [{source: \"s3://bucket/a\", target: in/}, {source: \"s3://bucket/b\", target: ./in}]",
            ),
            &[("tasks.t.inputs[1].target", "same target")],
        ),
        err(
            "input missing target",
            task("inputs: [{source: \"s3://bucket/a\", tagret: in/}]"),
            &[
                ("tasks.t.inputs[0].tagret", "did you mean `target`?"),
                ("tasks.t.inputs[0].target", "missing required field"),
            ],
        ),
        err(
            "s3 bucket",
            task("inputs: [{source: \"s3://My_Bucket/a\", target: in/}]"),
            &[("tasks.t.inputs[0].source", "invalid S3 bucket name")],
        ),
        err(
            "cos host",
            task("inputs: [{source: \"cos://demo.cos.ap-guangzhou.myqcloud.com/a\", target: in/}]"),
            &[(
                "tasks.t.inputs[0].source",
                "cos://BUCKET-APPID.cos.REGION.myqcloud.com",
            )],
        ),
        ok(
            "cos ok",
            task(
                "inputs: [{source: \"cos://demo-1250000000.cos.ap-guangzhou.myqcloud.com/a/\", target: in/}]",
            ),
        ),
        err(
            "file url host",
            task("inputs: [{source: \"file://server/share\", target: in/}]"),
            &[("tasks.t.inputs[0].source", "no host")],
        ),
        ok(
            "file url",
            task("inputs: [{source: \"file:///shared/data/\", target: data/}]"),
        ),
        ok(
            "absolute targets in a container",
            task(
                "image: alpine:3.20, network: vpc-a, inputs: [{source: \"file:///shared/data/\", target: /data}], outputs: [{source: /out/, target: \"s3://bucket/out/\"}]",
            ),
        ),
        err(
            "absolute targets on the host",
            task(
                "inputs: [{source: \"file:///shared/data/\", target: /data}], outputs: [{source: /out/, target: \"s3://bucket/out/\"}]",
            ),
            &[
                (
                    "tasks.t.inputs[0].target",
                    "host tasks map inputs inside their working directory",
                ),
                (
                    "tasks.t.outputs[0].source",
                    "host tasks upload outputs from their working directory",
                ),
            ],
        ),
        err(
            "network on the host",
            task("network: vpc-a"),
            &[("tasks.t.network", "needs a container")],
        ),
        err(
            "output when",
            task("outputs: [{source: out/, target: \"s3://bucket/out/\", when: sometimes}]"),
            &[("tasks.t.outputs[0].when", "one of success, failure, always")],
        ),
        err(
            "output source escapes",
            task("outputs: [{source: ../out, target: \"s3://bucket/out/\"}]"),
            &[("tasks.t.outputs[0].source", "escape")],
        ),
        err(
            "output target local",
            task("outputs: [{source: out/, target: /tmp/out}]"),
            &[("tasks.t.outputs[0].target", "expected a storage URL")],
        ),
        err(
            "stdout placeholder",
            task("stdout: \"s3://bucket/logs/${BATCH_TASK_NAM}.log\""),
            &[("tasks.t.stdout", "did you mean `BATCH_TASK_NAME`")],
        ),
        err(
            "stdout unknown placeholder",
            task("stderr: \"s3://bucket/logs/${HOME}.log\""),
            &[("tasks.t.stderr", "unknown placeholder `${HOME}`")],
        ),
        err(
            "stdout no key",
            task("stdout: \"s3://bucket\""),
            &[("tasks.t.stdout", "neither a prefix nor an object URL")],
        ),
        err(
            "stdout unterminated",
            task("stdout: \"s3://bucket/${BATCH_JOB_ID\""),
            &[("tasks.t.stdout", "unterminated")],
        ),
        ok(
            "stdout prefix and object",
            task(
                "stdout: \"s3://bucket/logs/\", stderr: \"s3://bucket/logs/${BATCH_JOB_ID}-${BATCH_TASK_NAME}-${BATCH_TASK_INSTANCE_INDEX}-${BATCH_TASK_INSTANCE_ATTEMPT}.err\"",
            ),
        ),
        err(
            "retries",
            task("retries: 11, resource_retries: 101"),
            &[
                ("tasks.t.retries", "between 0 and 10"),
                ("tasks.t.resource_retries", "between 0 and 100"),
            ],
        ),
        err(
            "timeout zero",
            task("timeout: 0s"),
            &[("tasks.t.timeout", "greater than zero")],
        ),
        err(
            "timeout too long",
            task("timeout: 8d"),
            &[("tasks.t.timeout", "at most 7 days")],
        ),
        err(
            "timeout garbage",
            task("timeout: 10 parsecs"),
            &[("tasks.t.timeout", "invalid duration")],
        ),
        err(
            "timeout list",
            task("timeout: [1]"),
            &[("tasks.t.timeout", "expected a duration")],
        ),
        err(
            "on_failure",
            task("on_failure: stop"),
            &[("tasks.t.on_failure", "expected one of terminate, interrupt")],
        ),
        err(
            "unknown template",
            task("template: bas"),
            &[("tasks.t.template", "unknown task template `bas`")],
        ),
        // --- dependencies ---
        err(
            "depends_on unknown",
            "name: j\ntasks:\n  split: {command: x}\n  b: {command: x, depends_on: [splt]}\n",
            &[("tasks.b.depends_on[0]", "did you mean `split`?")],
        ),
        err(
            "depends_on self",
            "name: j\ntasks:\n  a: {command: x, depends_on: [a]}\n",
            &[("tasks.a.depends_on[0]", "cannot depend on itself")],
        ),
        err(
            "depends_on not a list",
            "name: j\ntasks:\n  a: {command: x, depends_on: {b: 1}}\n",
            &[("tasks.a.depends_on", "expected a list of task names")],
        ),
        err(
            "dag unknown task",
            abc("dag: a -> d"),
            &[("dag", "line 1: unknown task `d`")],
        ),
        err(
            "dag typo",
            abc("dag: |\n  a -> b\n  b -> cc"),
            &[("dag", "line 2: unknown task `cc`")],
        ),
        err(
            "dag dangling arrow",
            abc("dag: a ->"),
            &[("dag", "line 1: dangling arrow")],
        ),
        err(
            "dag leading arrow",
            abc("dag: \"-> a\""),
            &[("dag", "line 1: an arrow with nothing before it")],
        ),
        err(
            "dag empty list item",
            abc("dag: \"a, -> b\""),
            &[("dag", "line 1: empty task name")],
        ),
        err(
            "dag no arrow",
            abc("dag: a b"),
            &[("dag", "line 1: `a b` has no arrow")],
        ),
        err(
            "dag bad name",
            abc("dag: a -> b c"),
            &[("dag", "line 1: bad task name `b c`")],
        ),
        err(
            "dag self edge",
            abc("dag: a -> a"),
            &[("dag", "line 1: self-edge")],
        ),
        err(
            "dag cycle",
            abc("dag: |\n  a -> b\n  b -> c\n  c -> a"),
            &[("dag", "cycle: a -> b -> c -> a (dag lines 1, 2, 3)")],
        ),
        err(
            "dag and depends_on cycle",
            "name: j\ndag: a -> b\ntasks:\n  a: {command: x, depends_on: [b]}\n  b: {command: x}\n",
            &[(
                "dag",
                "cycle: a -> b -> a (dag line 1; tasks.a.depends_on[0])",
            )],
        ),
        err(
            "depends_on cycle",
            "name: j\ntasks:\n  a: {command: x, depends_on: [b]}\n  b: {command: x, depends_on: [a]}\n",
            &[("tasks.b.depends_on[0]", "cycle: a -> b -> a")],
        ),
        err(
            "instance edge mismatch",
            "name: j\ndag: a => b\ntasks:\n  a: {command: x, instances: 6}\n  b: {command: x, instances: 4}\n",
            &[(
                "dag",
                "line 1: `a => b` needs the same instance count on both sides, but `a` has 6 and `b` has 4",
            )],
        ),
        ok(
            "storage profiles on a task and its mappings",
            "name: j\ntasks:\n  t:\n    command: x\n    storage_profile: lab\n    inputs: [{source: 's3://bucket/in/', target: in/, profile: other}]\n    outputs: [{source: out/, target: 's3://bucket/out/', profile: lab, when: always}]\n",
        ),
        err(
            "storage profile names are names",
            task(
                "storage_profile: 'a b', inputs: [{source: 's3://bucket/x', target: x, profile: 7}], outputs: [{source: y, target: 's3://bucket/y', profile: ''}]",
            ),
            &[
                ("tasks.t.storage_profile", "storage profile name"),
                ("tasks.t.inputs[0].profile", "expected a string"),
                ("tasks.t.outputs[0].profile", "storage profile name"),
            ],
        ),
        err(
            "dag not a string",
            "name: j\ndag: [a]\ntasks: {a: {command: x}}",
            &[("dag", "expected a string, got a list")],
        ),
    ]
}

fn run(input: &str) -> Result<Parsed, SpecErrors> {
    parse_job(input.as_bytes(), &Templates::new())
}

#[test]
fn table() {
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 30);
    for case in &all {
        let result = run(&case.input);
        match (&result, case.errors.is_empty()) {
            (Ok(_), true) => {}
            (Ok(_), false) => failures.push(format!(
                "{}: parsed, expected errors {:?}",
                case.name, case.errors
            )),
            (Err(e), true) => failures.push(format!("{}: expected Ok, got:\n{e}", case.name)),
            (Err(e), false) => {
                let matched = e.0.len() == case.errors.len()
                    && case.errors.iter().all(|(path, frag)| {
                        e.0.iter().any(|x| {
                            x.path == *path
                                && (x.message.contains(frag)
                                    || x.hint.as_deref().is_some_and(|h| h.contains(frag)))
                        })
                    });
                if !matched {
                    failures.push(format!(
                        "{}: expected {:?}, got:\n{e}\n{:?}",
                        case.name, case.errors, e.0
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_error_at_once() {
    let input = "
name: bad name
priority: 500
tasks:
  a:
    command: x
    instances: 0
    timeout: forever
  b:
    comand: x
dag: a -> c
";
    let errors = run(input).unwrap_err().0;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "name",
            "priority",
            "tasks.a.instances",
            "tasks.a.timeout",
            "tasks.b.comand",
            "tasks.b.command",
            "dag"
        ],
        "{errors:?}"
    );
}

#[test]
fn error_display_one_per_line() {
    let e = run("name: j\ntasks: {t: {comand: x}}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "tasks.t.comand: unknown field `comand` (hint: did you mean `command`?)\n\
         tasks.t.command: missing required field `command`"
    );
    let whole = run("").unwrap_err();
    assert_eq!(whole.to_string(), "the spec is empty");
}

#[test]
fn invalid_utf8_says_where() {
    let mut bytes = b"name: j\ntasks: {t: {command: \"ab".to_vec();
    bytes.push(0xff);
    bytes.extend_from_slice(b"\"}}\n");
    let e = parse_job(&bytes, &Templates::new()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].message.contains("not valid UTF-8"), "{e}");
    assert!(e.0[0].message.contains("line 2, column 25"), "{e}");
}

#[test]
fn oversized_spec_is_refused() {
    let big = vec![b' '; MAX_SPEC_BYTES + 1];
    let e = parse_job(&big, &Templates::new()).unwrap_err();
    assert!(e.0[0].message.contains("at most"), "{e}");
}

#[test]
fn defaults_and_field_values() {
    let input = r#"
name: thumbnails
description: resize images
priority: 70
tags: {team: media, version: 2}
dependency_policy: partly_succeeded
tasks:
  split:
    command: ./split.sh in/ parts/
  resize:
    command: [convert, -resize, 50%, 1]
    image: alpine:3.20
    instances: 10
    max_concurrency: 4
    resources: {cpus: 0.5, memory: 512MiB, disk: 1G}
    network: default
    compute_env: pool-a
    env: {KEY: value, N: 3, FLAG: true}
    inputs: [{source: "s3://bucket/in/", target: in/}]
    outputs: [{source: out/, target: "s3://bucket/out/"}, {source: log/, target: "file:///shared/logs/", when: always}]
    stdout: "s3://bucket/logs/"
    stderr: "s3://bucket/logs/${BATCH_TASK_NAME}-${BATCH_TASK_INSTANCE_INDEX}.err"
    retries: 2
    resource_retries: 5
    timeout: 1h30m
    on_failure: interrupt
    depends_on: [split]
  small:
    command: x
    instance_type: S1.MEDIUM4
"#;
    let p = run(input).unwrap();
    assert_eq!(p.format, SpecFormat::Native);
    // The one warning: a disk size is accepted but not enforced.
    let warnings: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("resources.disk") && warnings[0].contains("not enforced"),
        "{warnings:?}"
    );
    let s = &p.spec;
    assert_eq!(s.name, "thumbnails");
    assert_eq!(s.description.as_deref(), Some("resize images"));
    assert_eq!(s.priority, 70);
    assert_eq!(s.tags.get("version").map(String::as_str), Some("2"));
    assert_eq!(s.dependency_policy, DependencyPolicy::PartlySucceeded);
    let split = &s.tasks[0];
    assert_eq!(
        split.command,
        Command::Shell("./split.sh in/ parts/".into())
    );
    assert_eq!(split.image, Image::Host);
    assert_eq!(split.instances, 1);
    assert_eq!(split.max_concurrency, 0);
    assert_eq!(split.resources, Resources::default());
    assert_eq!(split.retries, 0);
    assert_eq!(split.resource_retries, 3);
    assert_eq!(split.timeout_ms, None);
    assert_eq!(split.on_failure, OnFailure::Terminate);
    let r = &s.tasks[1];
    assert_eq!(r.name, "resize");
    assert_eq!(
        r.command,
        Command::Argv(vec![
            "convert".into(),
            "-resize".into(),
            "50%".into(),
            "1".into()
        ])
    );
    assert_eq!(r.image, Image::Docker("alpine:3.20".into()));
    assert_eq!((r.instances, r.max_concurrency), (10, 4));
    assert_eq!(
        r.resources,
        Resources {
            millicpus: 500,
            memory: 512 << 20,
            disk: 1_000_000_000
        }
    );
    assert_eq!(r.instance_type, None);
    assert_eq!(r.network.as_deref(), Some("default"));
    assert_eq!(r.compute_env.as_deref(), Some("pool-a"));
    assert_eq!(r.env.get("N").map(String::as_str), Some("3"));
    assert_eq!(r.env.get("FLAG").map(String::as_str), Some("true"));
    assert_eq!(r.inputs[0].target, "in/");
    assert_eq!(r.outputs[0].when, UploadWhen::Success);
    assert_eq!(r.outputs[1].when, UploadWhen::Always);
    assert_eq!(r.stdout.as_deref(), Some("s3://bucket/logs/"));
    assert_eq!((r.retries, r.resource_retries), (2, 5));
    assert_eq!(r.timeout_ms, Some(5_400_000));
    assert_eq!(r.on_failure, OnFailure::Interrupt);
    assert_eq!(
        r.deps,
        vec![Dependency {
            task: 0,
            kind: DepKind::Task
        }]
    );
    let small = &s.tasks[2];
    assert_eq!(small.instance_type.as_deref(), Some("S1.MEDIUM4"));
    assert_eq!(small.resources.millicpus, 2000);
    assert_eq!(small.resources.memory, 4 << 30);
}

#[test]
fn native_yaml_and_json_agree() {
    let yaml = run(
        "name: j\ntasks:\n  a: {command: x, instances: 2}\n  b: {command: [y], depends_on: [a]}\n",
    )
    .unwrap();
    let json = run(r#"{"name": "j", "tasks": {"a": {"command": "x", "instances": 2}, "b": {"command": ["y"], "depends_on": ["a"]}}}"#).unwrap();
    assert_eq!(yaml.spec, json.spec);
}

#[test]
fn order_is_topological_and_keeps_file_order() {
    // File order: publish, encode, render, extra; DAG forces render before encode before publish.
    let p = run("name: j\ndag: |\n  render => encode -> publish\ntasks:\n  publish: {command: x}\n  encode: {command: x, instances: 3}\n  render: {command: x, instances: 3}\n  extra: {command: x}\n").unwrap();
    let names: Vec<&str> = p.spec.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["render", "encode", "publish", "extra"]);
    assert_eq!(
        p.spec.tasks[1].deps,
        vec![Dependency {
            task: 0,
            kind: DepKind::Instance
        }]
    );
    assert_eq!(
        p.spec.tasks[2].deps,
        vec![Dependency {
            task: 1,
            kind: DepKind::Task
        }]
    );
    assert!(p.spec.tasks[3].deps.is_empty());
}

#[test]
fn whole_task_edge_beats_instance_edge_and_duplicates_collapse() {
    let p = run("name: j\ndag: |\n  a => b\n  a -> b\n  a => b\ntasks:\n  a: {command: x}\n  b: {command: x, depends_on: [a, a]}\n").unwrap();
    assert_eq!(
        p.spec.tasks[1].deps,
        vec![Dependency {
            task: 0,
            kind: DepKind::Task
        }]
    );
}

#[test]
fn pipeline_example() {
    let p = run(PIPELINE).unwrap();
    let s: &JobSpec = &p.spec;
    assert_eq!(s.name, "frames");
    let names: Vec<&str> = s.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["render", "encode", "publish"]);
    assert_eq!(s.tasks[0].instances, 6);
    assert_eq!(s.tasks[0].max_concurrency, 2);
    assert!(s.tasks[1].has_instance_deps());
    assert_eq!(
        s.tasks[2].deps,
        vec![Dependency {
            task: 1,
            kind: DepKind::Task
        }]
    );
}

#[test]
fn wordcount_example() {
    let p = run(WORDCOUNT).unwrap();
    let s = &p.spec;
    assert_eq!((s.name.as_str(), s.priority), ("wordcount", 60));
    let count = &s.tasks[1];
    assert_eq!(count.name, "count");
    assert_eq!(
        (count.instances, count.max_concurrency, count.retries),
        (8, 4, 1)
    );
    assert_eq!(count.timeout_ms, Some(300_000));
    assert!(matches!(&count.command, Command::Shell(c) if c.contains("wc -w")));
}

#[test]
fn tencent_submit_job_field_by_field() {
    let p = run(TENCENT_SUBMIT).unwrap();
    assert_eq!(p.format, SpecFormat::Tencent);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let s = &p.spec;
    assert_eq!(s.name, "tencent-format-demo");
    assert_eq!(
        s.description.as_deref(),
        Some("A SubmitJob request body in Tencent BatchCompute's format")
    );
    assert_eq!(s.priority, 1);
    assert_eq!(s.dependency_policy, DependencyPolicy::Succeeded);
    let pre = &s.tasks[0];
    assert_eq!(pre.name, "pre_task");
    assert_eq!(pre.instances, 3);
    assert_eq!(
        pre.command,
        Command::Shell(
            "echo pre $BATCH_TASK_INSTANCE_INDEX/$BATCH_TASK_INSTANCE_NUM $STAGE".into()
        )
    );
    assert_eq!(pre.image, Image::Host);
    assert_eq!(pre.env.get("STAGE").map(String::as_str), Some("prepare"));
    assert_eq!(pre.retries, 1);
    assert_eq!(pre.timeout_ms, Some(600_000));
    assert_eq!(pre.max_concurrency, 2);
    assert_eq!(pre.on_failure, OnFailure::Terminate);
    let post = &s.tasks[1];
    assert_eq!(post.name, "post_task");
    assert_eq!(post.instances, 1);
    assert_eq!(post.retries, 0);
    assert_eq!(
        post.deps,
        vec![Dependency {
            task: 0,
            kind: DepKind::Task
        }]
    );
}

#[test]
fn tencent_cos_job_field_by_field() {
    let p = run(TENCENT_COS).unwrap();
    assert_eq!(p.format, SpecFormat::Tencent);
    let warned: Vec<&str> = p.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        warned,
        [
            "Tasks[0].ComputeEnv.EnvData.ImageId",
            "Tasks[0].ComputeEnv.EnvData.SystemDisk"
        ]
    );
    let s = &p.spec;
    assert_eq!((s.name.as_str(), s.priority), ("cos-mapping-demo", 5));
    let t = &s.tasks[0];
    assert_eq!(t.name, "render");
    assert_eq!(t.instances, 4);
    assert_eq!(
        t.image,
        Image::Docker("ccr.ccs.tencentyun.com/demo/render:1.0".into())
    );
    assert_eq!(t.instance_type.as_deref(), Some("S1.SMALL1"));
    assert_eq!(t.resources.millicpus, 1000);
    assert_eq!(
        t.inputs[0].source,
        "cos://demo-1250000000.cos.ap-guangzhou.myqcloud.com/scenes/"
    );
    assert_eq!(t.inputs[0].target, "/data/scenes/");
    assert_eq!(t.outputs[0].source, "/data/frames/");
    assert_eq!(t.outputs[0].when, UploadWhen::Success);
    assert_eq!(
        t.stdout.as_deref(),
        Some(
            "cos://demo-1250000000.cos.ap-guangzhou.myqcloud.com/logs/out.${BATCH_JOB_ID}.${BATCH_TASK_NAME}.${BATCH_TASK_INSTANCE_INDEX}.log"
        )
    );
    assert_eq!(
        t.stderr.as_deref(),
        Some("cos://demo-1250000000.cos.ap-guangzhou.myqcloud.com/logs/")
    );
    assert_eq!(t.retries, 2);
    assert_eq!(t.timeout_ms, Some(3_600_000));
}

#[test]
fn tencent_other_fields() {
    let input = r#"{
  "JobName": "t",
  "Priority": "7",
  "TaskExecutionDependOn": "PRE_TASK_FINISHED",
  "Tags": [{"Key": "team", "Value": "render"}],
  "Notifications": [{"TopicName": "x"}],
  "Tasks": [
    {"TaskName": "a", "Application": {"DeliveryForm": "PACKAGE", "PackagePath": "cos://demo-1250000000.cos.ap-guangzhou.myqcloud.com/p.tgz", "Command": "run",
       "Docker": {"Image": "alpine", "User": "u", "Password": "secret", "Server": "registry"}},
     "EnvId": "env-abc123", "FailedAction": "INTERRUPT", "ResourceMaxRetryCount": 7, "ResourceRequired": {"Cpu": 2, "Memory": 1024},
     "RedirectInfo": {"StdoutRedirectPath": "s3://bucket/logs"}},
    {"TaskName": "b", "Application": {"Command": "x"}, "FailedAction": "FAST_INTERRUPT"}
  ],
  "Dependences": [{"StartTask": "a", "EndTask": "b"}]
}"#;
    let p = run(input).unwrap();
    let s = &p.spec;
    assert_eq!(s.priority, 7);
    assert_eq!(s.dependency_policy, DependencyPolicy::Finished);
    assert_eq!(s.tags.get("team").map(String::as_str), Some("render"));
    let a = &s.tasks[0];
    assert_eq!(a.compute_env.as_deref(), Some("env-abc123"));
    assert_eq!(a.on_failure, OnFailure::Interrupt);
    assert_eq!(a.resource_retries, 7);
    assert_eq!(
        a.resources,
        Resources {
            millicpus: 2000,
            memory: 1 << 30,
            disk: 0
        }
    );
    assert_eq!(a.stdout.as_deref(), Some("s3://bucket/logs/"));
    assert_eq!(a.timeout_ms, Some(86_400_000), "Tencent's default Timeout");
    assert_eq!(s.tasks[1].on_failure, OnFailure::Interrupt);
    let warned: Vec<&str> = p.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        warned,
        [
            "Priority",
            "Notifications",
            "Tasks[0].Application.DeliveryForm",
            "Tasks[0].Application.PackagePath",
            "Tasks[1].FailedAction",
        ]
    );
    assert!(p.warnings.iter().all(|w| !w.message.contains("secret")));
    let login = p.credentials.tasks["a"].registry.as_ref().unwrap();
    assert_eq!(
        (
            login.server.as_deref(),
            login.username.as_str(),
            login.password.as_str()
        ),
        (Some("registry"), "u", "secret")
    );
    assert!(!format!("{:?}", p.credentials).contains("secret"));
    assert!(!serde_json::to_string(&p.spec).unwrap().contains("secret"));
}

/// `Authentications` (COS keys) and `Application.Docker.User/Password/Server` are the job's
/// credentials, kept out of its spec, no longer ignored; bad ones are errors naming the field
/// that never repeat the value.
#[test]
fn tencent_credentials() {
    let input = r#"{"Job": {"JobName": "t", "Tasks": [
    {"TaskName": "a", "Application": {"Command": "run",
       "Docker": {"Image": "reg.example/p/i:1", "User": "robot", "Password": "pw-Zq81x", "Server": "reg.example"}},
     "Authentications": [{"Scene": "COS", "SecretId": "AKIDcos", "SecretKey": "sk-Hw29v"}]},
    {"TaskName": "b", "Application": {"Command": "x"}}]}}"#;
    let p = run(input).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let a = &p.credentials.tasks["a"];
    let keys = a.cos.as_ref().unwrap();
    assert_eq!(
        (keys.secret_id.as_str(), keys.secret_key.as_str()),
        ("AKIDcos", "sk-Hw29v")
    );
    assert_eq!(a.registry.as_ref().unwrap().password, "pw-Zq81x");
    assert!(!p.credentials.tasks.contains_key("b"));
    let shown = format!(
        "{:?} {}",
        p.credentials,
        serde_json::to_string(&p.spec).unwrap()
    );
    assert!(
        !shown.contains("sk-Hw29v") && !shown.contains("pw-Zq81x"),
        "{shown}"
    );

    let bad = r#"{"Job": {"JobName": "t", "Tasks": [
    {"TaskName": "a", "Application": {"Command": "run",
       "Docker": {"Image": "alpine", "Password": "pw-Zq81x"}},
     "Authentications": [{"Scene": "CFS", "SecretId": "AKIDcos", "SecretKey": "sk-Hw29v"},
                         {"Scene": "COS", "SecretId": "", "SecretKey": 7}]}]}}"#;
    let e = run(bad).unwrap_err();
    let got: Vec<(&str, &str)> =
        e.0.iter()
            .map(|x| (x.path.as_str(), x.message.as_str()))
            .collect();
    assert_eq!(
        got,
        [
            (
                "Job.Tasks[0].Application.Docker.User",
                "`User` and `Password` go together; give both"
            ),
            (
                "Job.Tasks[0].Authentications[0].Scene",
                "unsupported scene; expected `COS`"
            ),
            (
                "Job.Tasks[0].Authentications[1].SecretId",
                "must not be empty"
            ),
            (
                "Job.Tasks[0].Authentications[1].SecretKey",
                "expected a string"
            ),
        ]
    );
    assert!(!e.to_string().contains("sk-Hw29v") && !e.to_string().contains("pw-Zq81x"));
}

#[test]
fn tencent_errors() {
    let input = r#"{"Job": {
  "JobName": "t",
  "Tasks": [
    {"TaskName": "bad name", "Application": {"Command": "x"}},
    {"TaskName": "ok", "TaskInstanceNum": 0, "Application": {"Comand": "x"}, "MaxRetryCount": 20,
     "ComputeEnv": {"EnvData": {"InstanceType": "S9.HUGE"}}, "EnvId": "e",
     "EnvVars": [{"Name": "BATCH_X", "Value": "1"}], "TimeOut": 5},
    {"TaskName": "ok", "Application": {"Command": "x"}}
  ],
  "Dependences": [{"StartTask": "ok", "EndTask": "missing"}]
}, "Placement": {"Zone": "ap-guangzhou-3"}}"#;
    let e = run(input).unwrap_err();
    let got: Vec<(&str, &str)> =
        e.0.iter()
            .map(|x| (x.path.as_str(), x.message.as_str()))
            .collect();
    let expect = [
        ("Job.Tasks[0].TaskName", "invalid task name"),
        ("Job.Tasks[1].TimeOut", "unknown field `TimeOut`"),
        ("Job.Tasks[1].TaskInstanceNum", "between 1 and 1000000"),
        ("Job.Tasks[1].Application.Comand", "unknown field"),
        ("Job.Tasks[1].EnvId", "not both"),
        (
            "Job.Tasks[1].ComputeEnv.EnvData.InstanceType",
            "unknown instance type",
        ),
        ("Job.Tasks[1].EnvVars[0].Name", "reserved"),
        ("Job.Tasks[1].MaxRetryCount", "between 0 and 10"),
        ("Job.Tasks[2].TaskName", "duplicate task name `ok`"),
        ("Job.Dependences[0].EndTask", "unknown task `missing`"),
        ("Job.Tasks[1].Application.Command", "missing required field"),
    ];
    for (path, frag) in expect {
        assert!(
            got.iter().any(|(p, m)| *p == path && m.contains(frag)),
            "missing {path}: {frag} in\n{e}"
        );
    }
    assert_eq!(got.len(), expect.len(), "{e}");
    assert_eq!(e.0[1].hint.as_deref(), Some("did you mean `Timeout`?"));
}

#[test]
fn tencent_redirect_file_without_path() {
    let e = run(r#"{"JobName": "t", "Tasks": [{"TaskName": "a", "Application": {"Command": "x"}, "RedirectInfo": {"StderrRedirectFileName": "e.log"}}]}"#).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path, "Tasks[0].RedirectInfo.StderrRedirectFileName");
}

fn template(text: &str) -> RawTask {
    parse_task_template(text.as_bytes()).unwrap()
}

#[test]
fn templates_override_field_by_field() {
    let mut templates = Templates::new();
    templates.insert(
        "base".into(),
        template("command: base-cmd\nimage: alpine\ninstances: 4\nretries: 2\nenv: {A: a, B: b}\ninstance_type: S1.SMALL2\ntimeout: 10m\n"),
    );
    let input = "name: j\ntasks:\n  t: {template: base, instances: 8, env: {C: c}, resources: {cpus: 2}}\n  u: {template: base, command: own}\n";
    let p = parse_job(input.as_bytes(), &templates).unwrap();
    let t = &p.spec.tasks[0];
    assert_eq!(t.command, Command::Shell("base-cmd".into()));
    assert_eq!(t.image, Image::Docker("alpine".into()));
    assert_eq!(t.instances, 8, "the job's field wins");
    assert_eq!(t.retries, 2, "the template's field stays");
    assert_eq!(t.env.len(), 1, "maps are replaced whole");
    assert_eq!(
        t.instance_type, None,
        "resources replace the template's instance type"
    );
    assert_eq!(t.resources.millicpus, 2000);
    assert_eq!(t.timeout_ms, Some(600_000));
    let u = &p.spec.tasks[1];
    assert_eq!(u.command, Command::Shell("own".into()));
    assert_eq!(u.instances, 4);
    assert_eq!(u.instance_type.as_deref(), Some("S1.SMALL2"));
    assert_eq!(u.resources.memory, 2 << 30);
}

#[test]
fn unknown_template_suggests_and_suppresses_missing_command() {
    let mut templates = Templates::new();
    templates.insert("resize".into(), template("command: x"));
    let e = parse_job(b"name: j\ntasks: {t: {template: resze}}", &templates).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path, "tasks.t.template");
    assert_eq!(e.0[0].hint.as_deref(), Some("did you mean `resize`?"));
}

#[test]
fn template_parsing_rejects_job_only_fields() {
    let e = parse_task_template(b"command: x\ntemplate: other\ndepends_on: [a]\ninstances: 0\n")
        .unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(paths, ["template", "depends_on", "instances"], "{e}");
}

#[test]
fn a_catalog_adds_and_redefines_instance_types() {
    use kiln_core::model::{Catalog, Resources};
    let big = Resources {
        millicpus: 64_000,
        memory: 512 << 30,
        disk: 0,
    };
    let small = Resources {
        millicpus: 500,
        memory: 256 << 20,
        disk: 0,
    };
    let catalog = Catalog::with([
        ("G1.HUGE".to_string(), big),
        ("S1.SMALL1".to_string(), small),
    ]);
    let spec = "name: j\ntasks:\n  a: {command: x, instance_type: G1.HUGE}\n  b: {command: x, instance_type: S1.SMALL1}\n";
    let parsed =
        kiln_core::spec::parse_job_in(spec.as_bytes(), &Templates::new(), &catalog).unwrap();
    assert_eq!(parsed.spec.tasks[0].resources, big);
    assert_eq!(parsed.spec.tasks[1].resources, small);
    // The built-in catalog does not know the added type, and says which exist.
    let err = kiln_core::spec::parse_job(spec.as_bytes(), &Templates::new()).unwrap_err();
    assert_eq!(err.0[0].path, "tasks.a.instance_type");
    assert!(
        err.0[0].hint.as_deref().unwrap().contains("S1.SMALL1"),
        "{err:?}"
    );
}

#[test]
fn instance_type_files_are_checked_field_by_field() {
    let catalog =
        kiln_core::spec::parse_instance_types(b"G1.LARGE: {cpus: 8, memory: 64GiB}\n").unwrap();
    assert_eq!(catalog.get("G1.LARGE").unwrap().millicpus, 8000);
    assert!(catalog.get("S1.SMALL1").is_some(), "built-in types stay");
    let err = kiln_core::spec::parse_instance_types(
        b"G1.LARGE: {cpus: 8, memroy: 1GiB}\nbad name: {cpus: 1}\n",
    )
    .unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["G1.LARGE.memroy", "bad name"], "{err:?}");
}

#[test]
fn profiles_are_kept_and_unknown_ones_named() {
    let p = run("name: j\ntasks:\n  t:\n    command: x\n    storage_profile: lab\n    inputs: [{source: 's3://bucket/in/', target: in/, profile: other}]\n    outputs: [{source: out/, target: 's3://bucket/out/'}]\n").unwrap();
    let t = &p.spec.tasks[0];
    assert_eq!(t.storage_profile.as_deref(), Some("lab"));
    assert_eq!(t.inputs[0].profile.as_deref(), Some("other"));
    assert_eq!(t.outputs[0].profile, None);
    kiln_core::spec::check_profiles(&p.spec, &["lab", "other"], &[]).unwrap();
    let e = kiln_core::spec::check_profiles(&p.spec, &["lab", "othr"], &[]).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path, "tasks.t.inputs[0].profile");
    assert!(e.0[0].hint.as_deref().unwrap().contains("`othr`"), "{e}");
    let e = kiln_core::spec::check_profiles(&p.spec, &[], &["lab", "other"]).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    // A registry login is named by `registry_profile`, and only there.
    let p = run("name: j\ntasks:\n  t:\n    command: x\n    image: r.example/app:1\n    registry_profile: ccr\n").unwrap();
    assert_eq!(p.spec.tasks[0].registry_profile.as_deref(), Some("ccr"));
    kiln_core::spec::check_profiles(&p.spec, &[], &["ccr"]).unwrap();
    let e = kiln_core::spec::check_profiles(&p.spec, &["ccr"], &["cr"]).unwrap_err();
    assert_eq!(e.0[0].path, "tasks.t.registry_profile");
    assert!(
        e.0[0].message.contains("unknown registry profile `ccr`"),
        "{e}"
    );
    // The stored form round-trips with them, and a spec stored before them still reads.
    let text = serde_json::to_string(&p.spec).unwrap();
    let back: JobSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p.spec);
    assert!(
        !serde_json::to_string(&run("name: j\ntasks:\n  t: {command: x}\n").unwrap().spec)
            .unwrap()
            .contains("profile")
    );
}

#[test]
fn a_job_names_its_project_natively_or_by_tencent_placement() {
    let spec = |input: &str| run(input).unwrap().spec;
    assert_eq!(spec(&abc("")).project, None);
    assert_eq!(spec(&abc("project: ml")).project.as_deref(), Some("ml"));
    let e = run(&abc("project: 'no spaces'")).unwrap_err();
    assert_eq!(e.0[0].path, "project", "{e:?}");

    let tencent = |placement: &str| {
        format!(
            r#"{{"Job": {{"JobName": "j", "Tasks": [{{"TaskName": "t", "Application": {{"Command": "x"}}}}]}}, "Placement": {placement}}}"#
        )
    };
    assert_eq!(
        spec(&tencent(r#"{"ProjectId": 0}"#)).project.as_deref(),
        Some("default")
    );
    assert_eq!(
        spec(&tencent(r#"{"ProjectId": 1001, "Zone": "ap-guangzhou-3"}"#))
            .project
            .as_deref(),
        Some("1001")
    );
    assert_eq!(
        spec(&tencent(r#"{"ProjectId": "ml"}"#)).project.as_deref(),
        Some("ml")
    );
    assert_eq!(
        spec(&tencent(r#"{"Zone": "ap-guangzhou-3"}"#)).project,
        None
    );
    let e = run(&tencent(r#"{"ProjectId": -1}"#)).unwrap_err();
    assert_eq!(e.0[0].path, "Placement.ProjectId", "{e:?}");
}
