//! Items end to end through `kiln run`: `each` (strings and objects), `each_line` from a file
//! beside the spec, the item placeholder in an argv command and a mapping, and `=>` over the
//! same items.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{Sandbox, counts};

#[test]
fn each_objects_set_batch_item_variables() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "objects.yaml",
        r#"
name: objects
tasks:
  t:
    each:
      - {sample: s1, reads: 10}
      - {sample: "s 2", reads: 20, tags: [x, y]}
      - plain text
    env: {OUT: "@DIR@/seen"}
    command: |
      printf '%s|%s|%s|%s|%s\n' "$BATCH_TASK_INSTANCE_INDEX" "$BATCH_TASK_INSTANCE_NUM" \
        "$BATCH_TASK_INSTANCE_ITEM" "${BATCH_ITEM_SAMPLE-unset}" "${BATCH_ITEM_TAGS-unset}" >> "$OUT"
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.counts("t"), counts(&[("SUCCEED", 3)]));
    let mut seen = sb.lines("seen");
    seen.sort();
    assert_eq!(
        seen,
        [
            r#"0|3|{"sample":"s1","reads":10}|s1|unset"#,
            r#"1|3|{"sample":"s 2","reads":20,"tags":["x","y"]}|s 2|["x","y"]"#,
            "2|3|plain text|unset|unset",
        ]
    );
}

#[test]
fn each_line_from_a_file_fills_the_placeholder_and_pipelines_over_the_same_items() {
    let sb = Sandbox::new();
    // Blank lines are skipped; the file sits beside the spec and is named relative to it.
    std::fs::write(sb.path("samples.txt"), "alpha\n\nbeta gamma\ndelta\n").unwrap();
    let spec = sb.spec(
        "pipeline.yaml",
        r#"
name: items-pipeline
dag: prepare => report
tasks:
  prepare:
    each_line: samples.txt
    env: {OUT: "@DIR@/events"}
    command: ["/bin/sh", "-c", "mkdir -p \"$1\" && echo \"$BATCH_TASK_INSTANCE_ITEM\" > \"$1/item\" && echo prepared $BATCH_TASK_INSTANCE_INDEX >> \"$OUT\"", "sh", "work/${BATCH_TASK_INSTANCE_ITEM}"]
    outputs: [{source: "work/${BATCH_TASK_INSTANCE_ITEM}/", target: "file://@DIR@/shared/${BATCH_TASK_INSTANCE_ITEM}/"}]
  report:
    each_line: samples.txt
    env: {OUT: "@DIR@/events"}
    inputs: [{source: "file://@DIR@/shared/${BATCH_TASK_INSTANCE_ITEM}/", target: "in/"}]
    command: test "$(cat in/item)" = "$BATCH_TASK_INSTANCE_ITEM" && echo reported $BATCH_TASK_INSTANCE_INDEX >> "$OUT"
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.counts("prepare"), counts(&[("SUCCEED", 3)]));
    assert_eq!(out.counts("report"), counts(&[("SUCCEED", 3)]));
    let events = sb.records("events");
    let at = |word: &str, i: &str| {
        events
            .iter()
            .position(|e| e[0] == word && e[1] == i)
            .unwrap_or_else(|| panic!("no {word} {i}: {events:?}"))
    };
    for i in ["0", "1", "2"] {
        assert!(at("prepared", i) < at("reported", i), "{events:?}");
    }
    let shared: BTreeMap<String, String> = ["alpha", "beta gamma", "delta"]
        .iter()
        .map(|item| {
            let text = std::fs::read_to_string(sb.path(&format!("shared/{item}/item"))).unwrap();
            (item.to_string(), text.trim().to_string())
        })
        .collect();
    assert!(shared.iter().all(|(k, v)| k == v), "{shared:?}");
}

#[test]
fn a_bad_items_file_is_refused_before_anything_is_stored() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("bad.json"), r#"["ok", null]"#).unwrap();
    let spec = sb.spec(
        "bad.yaml",
        "name: bad\ntasks:\n  a: {command: 'true', each_line: missing.txt}\n  b: {command: 'true', each_json: bad.json}\n",
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 2, "{out}");
    let errors = out.summary["errors"].as_array().unwrap();
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["tasks.a.each_line"], "{out}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read `missing.txt`"),
        "{out}"
    );
    assert!(
        !sb.state_dir().exists(),
        "nothing may be stored for a refused spec"
    );

    std::fs::write(sb.path("missing.txt"), "x\n").unwrap();
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 2, "{out}");
    let message = out.summary["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("bad.json: item 1: an item must not be null"),
        "{out}"
    );
    assert!(!sb.state_dir().exists());
}
