//! Data-driven tests of the spec fields for items (`each`, `each_line`, `each_json`), more
//! memory after running out (`on_out_of_memory`) and the job's `timeout`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kiln_core::items::Item;
use kiln_core::model::{ItemSource, OomPolicy};
use kiln_core::spec::{
    Parsed, SpecErrors, Templates, attach_items, parse_job, parse_task_template, unread_items,
};

/// A job with one task `t` whose fields are `fields` (flow YAML).
fn task(fields: &str) -> String {
    format!("name: j\ntasks:\n  t: {{{fields}}}\n")
}

/// A container task with 64MiB of memory and `extra` fields.
fn boxed(extra: &str) -> String {
    task(&format!(
        "command: x, image: busybox, resources: {{memory: 64MiB}}, {extra}"
    ))
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
        // --- each ---
        ok("each strings", task("command: x, each: [a, b, c]")),
        ok(
            "each numbers and booleans",
            task("command: x, each: [1, 2.5, true]"),
        ),
        ok(
            "each objects",
            task("command: x, each: [{sample: s1, reads: 3}, {sample: s2}]"),
        ),
        ok("each nested lists", task("command: x, each: [[1, 2], [3]]")),
        err(
            "each not a list",
            task("command: x, each: a"),
            &[("tasks.t.each", "expected a list of items")],
        ),
        err(
            "each empty",
            task("command: x, each: []"),
            &[("tasks.t.each", "no items")],
        ),
        err(
            "each null item",
            task("command: x, each: [a, null]"),
            &[("tasks.t.each[1]", "must not be null")],
        ),
        err(
            "each object key not a variable name",
            task("command: x, each: [{a-b: 1}]"),
            &[("tasks.t.each[0]", "cannot become an environment variable")],
        ),
        err(
            "each object keys differing in case",
            task("command: x, each: [{k: 1, K: 2}]"),
            &[("tasks.t.each[0]", "BATCH_ITEM_K")],
        ),
        err(
            "each and instances",
            task("command: x, instances: 3, each: [a]"),
            &[("tasks.t.each", "only one of `instances` and `each`")],
        ),
        err(
            "each and each_line",
            task("command: x, each: [a], each_line: f.txt"),
            &[("tasks.t.each_line", "only one of `each` and `each_line`")],
        ),
        // --- each_line / each_json ---
        ok(
            "each_line local file",
            task("command: x, each_line: samples.txt"),
        ),
        ok(
            "each_line in storage",
            task("command: x, each_line: 's3://bkt/items.txt'"),
        ),
        ok(
            "each_json shared file",
            task("command: x, each_json: 'file:///shared/items.json'"),
        ),
        err(
            "each_line empty",
            task("command: x, each_line: ''"),
            &[("tasks.t.each_line", "empty")],
        ),
        err(
            "each_line not a string",
            task("command: x, each_line: [a]"),
            &[("tasks.t.each_line", "expected a string")],
        ),
        err(
            "each_json bad URL",
            task("command: x, each_json: 'ftp://host/items.json'"),
            &[("tasks.t.each_json", "unsupported storage URL scheme")],
        ),
        err(
            "each_line bad bucket",
            task("command: x, each_line: 's3://B/items.txt'"),
            &[("tasks.t.each_line", "invalid S3 bucket name")],
        ),
        // --- the item placeholder ---
        ok(
            "placeholder in argv, mappings and redirects",
            task(
                "command: [cat, 'in/${BATCH_TASK_INSTANCE_ITEM}'], each: [f1, f2], \
                 inputs: [{source: 's3://bkt/in/${BATCH_TASK_INSTANCE_ITEM}', target: 'in/${BATCH_TASK_INSTANCE_ITEM}'}], \
                 outputs: [{source: out/, target: 's3://bkt/out/${BATCH_TASK_INSTANCE_ITEM}/'}], \
                 stdout: 's3://bkt/logs/${BATCH_TASK_INSTANCE_ITEM}.log'",
            ),
        ),
        ok(
            "placeholder in a shell command needs no items",
            task("command: 'echo ${BATCH_TASK_INSTANCE_ITEM}'"),
        ),
        err(
            "placeholder without items",
            task(
                "command: [cat, '${BATCH_TASK_INSTANCE_ITEM}'], \
                 inputs: [{source: 's3://bkt/in/${BATCH_TASK_INSTANCE_ITEM}', target: in/}], \
                 stderr: 's3://bkt/logs/${BATCH_TASK_INSTANCE_ITEM}.err'",
            ),
            &[
                ("tasks.t.command[1]", "needs items"),
                ("tasks.t.inputs[0].source", "needs items"),
                ("tasks.t.stderr", "needs items"),
            ],
        ),
        err(
            "an item that escapes the working directory",
            task(
                "command: x, each: [ok, '../../etc'], inputs: [{source: 's3://bkt/in/', target: 'in/${BATCH_TASK_INSTANCE_ITEM}'}]",
            ),
            &[("tasks.t.inputs[0].target", "item 1 makes it invalid")],
        ),
        err(
            "an absolute item on a host task",
            task(
                "command: x, each: ['/etc'], outputs: [{source: '${BATCH_TASK_INSTANCE_ITEM}', target: 's3://bkt/out/'}]",
            ),
            &[("tasks.t.outputs[0].source", "item 0 makes it invalid")],
        ),
        err(
            "an item that breaks a URL",
            task(
                "command: x, each: [\"a\\a\"], outputs: [{source: out/, target: 's3://bkt/${BATCH_TASK_INSTANCE_ITEM}'}]",
            ),
            &[("tasks.t.outputs[0].target", "item 0 makes it invalid")],
        ),
        // --- `=>` over items ---
        ok(
            "=> over the same items",
            "name: j\ndag: a => b\ntasks:\n  a: {command: x, each: [p, q]}\n  b: {command: x, each: [p, q]}\n",
        ),
        ok(
            "=> over items and an equal count",
            "name: j\ndag: a => b\ntasks:\n  a: {command: x, each: [p, q]}\n  b: {command: x, instances: 2}\n",
        ),
        err(
            "=> over different item counts",
            "name: j\ndag: a => b\ntasks:\n  a: {command: x, each: [p, q]}\n  b: {command: x, each: [p]}\n",
            &[("dag", "same instance count")],
        ),
        ok(
            "=> over items read later is checked later",
            "name: j\ndag: a => b\ntasks:\n  a: {command: x, each_line: a.txt}\n  b: {command: x, instances: 7}\n",
        ),
        // --- on_out_of_memory ---
        ok(
            "on_out_of_memory in full",
            boxed("on_out_of_memory: {retries: 2, factor: 2, max: 16GiB}"),
        ),
        ok("on_out_of_memory defaults", boxed("on_out_of_memory: {}")),
        ok(
            "on_out_of_memory with an instance type",
            task(
                "command: x, image: busybox, instance_type: S1.SMALL1, on_out_of_memory: {factor: 1.5}",
            ),
        ),
        err(
            "on_out_of_memory not a mapping",
            boxed("on_out_of_memory: 2"),
            &[("tasks.t.on_out_of_memory", "expected a mapping")],
        ),
        err(
            "on_out_of_memory unknown field",
            boxed("on_out_of_memory: {retires: 2}"),
            &[("tasks.t.on_out_of_memory.retires", "did you mean `retries`")],
        ),
        err(
            "on_out_of_memory retries 0",
            boxed("on_out_of_memory: {retries: 0}"),
            &[("tasks.t.on_out_of_memory.retries", "between 1 and 10")],
        ),
        err(
            "on_out_of_memory retries 11",
            boxed("on_out_of_memory: {retries: 11}"),
            &[("tasks.t.on_out_of_memory.retries", "between 1 and 10")],
        ),
        err(
            "on_out_of_memory factor 1",
            boxed("on_out_of_memory: {factor: 1}"),
            &[("tasks.t.on_out_of_memory.factor", "greater than 1")],
        ),
        err(
            "on_out_of_memory factor 17",
            boxed("on_out_of_memory: {factor: 17}"),
            &[("tasks.t.on_out_of_memory.factor", "at most 16")],
        ),
        err(
            "on_out_of_memory factor text",
            boxed("on_out_of_memory: {factor: twice}"),
            &[("tasks.t.on_out_of_memory.factor", "expected a number")],
        ),
        err(
            "on_out_of_memory max bad size",
            boxed("on_out_of_memory: {max: lots}"),
            &[("tasks.t.on_out_of_memory.max", "invalid size")],
        ),
        err(
            "on_out_of_memory max zero",
            boxed("on_out_of_memory: {max: 0}"),
            &[("tasks.t.on_out_of_memory.max", "greater than zero")],
        ),
        err(
            "on_out_of_memory max below the memory",
            boxed("on_out_of_memory: {max: 32MiB}"),
            &[(
                "tasks.t.on_out_of_memory.max",
                "max 32MiB is less than the task's memory 64MiB",
            )],
        ),
        err(
            "on_out_of_memory without memory",
            task("command: x, image: busybox, on_out_of_memory: {}"),
            &[("tasks.t.on_out_of_memory", "needs a memory limit")],
        ),
        err(
            "on_out_of_memory on a host task",
            task("command: x, resources: {memory: 64MiB}, on_out_of_memory: {}"),
            &[(
                "tasks.t.on_out_of_memory",
                "host tasks have no memory limit",
            )],
        ),
        // --- the job's timeout ---
        ok(
            "job timeout",
            "name: j\ntimeout: 2h\ntasks: {t: {command: x}}\n",
        ),
        ok(
            "job timeout in seconds",
            "name: j\ntimeout: 90\ntasks: {t: {command: x}}\n",
        ),
        ok(
            "job timeout of 30 days",
            "name: j\ntimeout: 30d\ntasks: {t: {command: x}}\n",
        ),
        err(
            "job timeout zero",
            "name: j\ntimeout: 0s\ntasks: {t: {command: x}}\n",
            &[("timeout", "greater than zero")],
        ),
        err(
            "job timeout negative",
            "name: j\ntimeout: -5\ntasks: {t: {command: x}}\n",
            &[("timeout", "must not be negative")],
        ),
        err(
            "job timeout too long",
            "name: j\ntimeout: 31d\ntasks: {t: {command: x}}\n",
            &[("timeout", "at most 30 days")],
        ),
        err(
            "job timeout bad text",
            "name: j\ntimeout: soon\ntasks: {t: {command: x}}\n",
            &[("timeout", "invalid duration")],
        ),
        err(
            "job timeout a list",
            "name: j\ntimeout: [1]\ntasks: {t: {command: x}}\n",
            &[("timeout", "expected a duration")],
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
fn each_sets_the_instance_count_and_keeps_its_items() {
    let spec = run(&task("command: x, each: [a, {k: v}, 3]")).unwrap().spec;
    let t = &spec.tasks[0];
    assert_eq!(t.instances, 3);
    let items = t.items.as_ref().unwrap();
    assert_eq!(items.source, ItemSource::Each);
    let list = items.list.as_ref().unwrap();
    let texts: Vec<String> = list
        .iter()
        .map(|l| Item::parse(l).unwrap().text())
        .collect();
    assert_eq!(texts, ["a", r#"{"k":"v"}"#, "3"]);
    // The items are not in the stored spec; their digest is.
    let json = serde_json::to_string(&spec).unwrap();
    assert!(json.contains(items.digest.as_deref().unwrap()));
    assert!(!json.contains("\"v\""), "{json}");
    let other = run(&task("command: x, each: [a, {k: w}, 3]")).unwrap().spec;
    assert_ne!(serde_json::to_string(&other).unwrap(), json);
}

#[test]
fn items_read_later_are_attached_and_checked() {
    let text = "name: j\ndag: a => b\ntasks:\n  a: {command: x, each_line: a.txt}\n  b: {command: x, each_json: 's3://bkt/b.json', \
                outputs: [{source: out, target: 's3://bkt/${BATCH_TASK_INSTANCE_ITEM}/'}]}\n";
    let mut spec = run(text).unwrap().spec;
    let unread = unread_items(&spec);
    assert_eq!(
        unread,
        [
            (0, "a.txt".to_string(), "tasks.a.each_line".to_string()),
            (
                1,
                "s3://bkt/b.json".to_string(),
                "tasks.b.each_json".to_string()
            )
        ]
    );
    // Different counts across `=>`, and an item that breaks b's output URL.
    let mut bad = spec.clone();
    let e = attach_items(
        &mut bad,
        vec![
            (0, b"p\nq\nr\n".to_vec()),
            (1, br#"["p", "q\u0007"]"#.to_vec()),
        ],
    )
    .unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(paths, ["tasks.b.outputs[0].target", "dag"], "{e}");
    assert!(e.0[1].message.contains("`a` has 3 and `b` has 2"), "{e}");
    // A file that is not what it should be is named with where it came from.
    let mut bad = spec.clone();
    let e = attach_items(&mut bad, vec![(0, b"\n".to_vec()), (1, b"{}".to_vec())]).unwrap_err();
    assert_eq!(e.0[0].path, "tasks.a.each_line");
    assert!(
        e.0[0].message.starts_with("a.txt: there are no items"),
        "{e}"
    );
    assert!(
        e.0[1]
            .message
            .starts_with("s3://bkt/b.json: expected a JSON array"),
        "{e}"
    );

    attach_items(
        &mut spec,
        vec![(0, b"p\nq\n".to_vec()), (1, br#"[{"s": 1}, "q"]"#.to_vec())],
    )
    .unwrap();
    assert_eq!((spec.tasks[0].instances, spec.tasks[1].instances), (2, 2));
    assert!(unread_items(&spec).is_empty());
    assert!(spec.tasks[1].items.as_ref().unwrap().digest.is_some());
}

#[test]
fn on_out_of_memory_values() {
    let spec = run(&boxed(
        "on_out_of_memory: {retries: 3, factor: 1.5, max: 1GiB}",
    ))
    .unwrap()
    .spec;
    assert_eq!(
        spec.tasks[0].on_out_of_memory,
        Some(OomPolicy {
            retries: 3,
            factor_milli: 1500,
            max: Some(1 << 30)
        })
    );
    let spec = run(&boxed("on_out_of_memory: {}")).unwrap().spec;
    assert_eq!(
        spec.tasks[0].on_out_of_memory,
        Some(OomPolicy {
            retries: 1,
            factor_milli: 2000,
            max: None
        })
    );
    assert_eq!(
        run("name: j\ntimeout: 1h30m\ntasks: {t: {command: x}}\n")
            .unwrap()
            .spec
            .timeout_ms,
        Some(5_400_000)
    );
}

#[test]
fn templates_carry_items_and_a_task_may_replace_them() {
    let base = parse_task_template(b"command: x\neach: [a, b]\non_out_of_memory: {}\nimage: busybox\nresources: {memory: 1GiB}\n").unwrap();
    let templates = Templates::from([("base".to_string(), base)]);
    let spec = parse_job(
        b"name: j\ntasks:\n  t: {template: base}\n  u: {template: base, instances: 5}\n",
        &templates,
    )
    .unwrap()
    .spec;
    assert_eq!(spec.tasks[0].instances, 2);
    assert!(spec.tasks[0].items.is_some());
    assert_eq!(spec.tasks[1].instances, 5);
    assert!(spec.tasks[1].items.is_none());
    assert!(spec.tasks[1].on_out_of_memory.is_some());
}
