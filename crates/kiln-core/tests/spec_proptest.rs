//! Property tests: parsing never panics; random acyclic DAGs parse and come out ordered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use kiln_core::model::DepKind;
use kiln_core::spec::{Templates, parse_job};
use proptest::prelude::*;

/// Fragments that make random text look like a spec, so it gets past the YAML parser more often.
fn spec_like() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "name",
        "tasks",
        "dag",
        "command",
        "instances",
        "image",
        "env",
        "inputs",
        "outputs",
        "stdout",
        "timeout",
        "resources",
        "cpus",
        "memory",
        "depends_on",
        "template",
        "JobName",
        "Tasks",
        "TaskName",
        "Application",
        "Command",
        "Job",
        "RedirectInfo",
        "Dependences",
    ]);
    let value = prop::sample::select(vec![
        "a",
        "b",
        "1",
        "-1",
        "0.5",
        "\"3\"",
        "[a, b]",
        "{}",
        "[]",
        "~",
        "1GiB",
        "10m",
        "a -> b",
        "a => b",
        "s3://bucket/x/",
        "${BATCH_JOB_ID}",
        "true",
        "host",
        "\"\"",
    ]);
    prop::collection::vec((0usize..4, key, value), 0..24).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(indent, k, v)| format!("{}{k}: {v}\n", "  ".repeat(indent)))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_job(&bytes, &Templates::new());
    }

    #[test]
    fn arbitrary_strings_never_panic(text in ".{0,400}") {
        let _ = parse_job(text.as_bytes(), &Templates::new());
    }

    #[test]
    fn json_like_strings_never_panic(text in "\\{[\"a-zA-Z:{}\\[\\],0-9 .\\-]{0,200}") {
        let _ = parse_job(text.as_bytes(), &Templates::new());
    }

    #[test]
    fn spec_like_text_never_panics(text in spec_like()) {
        let _ = parse_job(text.as_bytes(), &Templates::new());
    }

    /// Tasks t0..tN in a shuffled file order; edges only go from lower to higher t-number,
    /// so the DAG is acyclic. Every edge must survive as a dependency on an earlier task.
    #[test]
    fn random_acyclic_dags_parse_in_order(
        n in 1usize..10,
        raw_edges in prop::collection::vec((0usize..10, 0usize..10, any::<bool>()), 0..30),
        file_order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..10).collect();
            for i in (1..v.len()).rev() {
                let j = (rng.next_u32() as usize) % (i + 1);
                v.swap(i, j);
            }
            v
        }),
        as_depends_on in any::<bool>(),
    ) {
        let edges: Vec<(usize, usize, bool)> = raw_edges
            .into_iter()
            .filter(|(a, b, _)| a < b && *b < n)
            .collect();
        let mut text = String::from("name: random\n");
        if !as_depends_on {
            text.push_str("dag: |\n  # generated\n");
            for (a, b, per_instance) in &edges {
                let arrow = if *per_instance { "=>" } else { "->" };
                text.push_str(&format!("  t{a} {arrow} t{b}\n"));
            }
        }
        text.push_str("tasks:\n");
        for &i in file_order.iter().filter(|&&i| i < n) {
            let deps: Vec<String> = edges.iter().filter(|e| e.1 == i).map(|e| format!("t{}", e.0)).collect();
            let depends = if as_depends_on { format!(", depends_on: [{}]", deps.join(", ")) } else { String::new() };
            text.push_str(&format!("  t{i}: {{command: x, instances: 2{depends}}}\n"));
        }
        let parsed = parse_job(text.as_bytes(), &Templates::new());
        let p = match parsed {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{text}"))),
        };
        prop_assert_eq!(p.spec.tasks.len(), n);
        let mut got = BTreeSet::new();
        for (j, t) in p.spec.tasks.iter().enumerate() {
            let mut prev = None;
            for d in &t.deps {
                prop_assert!(d.task < j, "dep {} of {} not earlier", d.task, j);
                prop_assert!(prev < Some(d.task), "deps not sorted/deduplicated");
                prev = Some(d.task);
                got.insert((p.spec.tasks[d.task].name.clone(), t.name.clone(), d.kind == DepKind::Task));
            }
        }
        // Expected: each pair once; a whole-task edge wins over a per-instance one.
        let mut want = BTreeSet::new();
        for (a, b, per_instance) in &edges {
            let task_edge = as_depends_on || edges.iter().any(|e| e.0 == *a && e.1 == *b && !e.2);
            want.insert((format!("t{a}"), format!("t{b}"), task_edge || !per_instance));
        }
        let kinds = |s: &BTreeSet<(String, String, bool)>| s.iter().map(|(a, b, whole)| format!("{a}{}{b}", if *whole { "->" } else { "=>" })).collect::<Vec<_>>();
        prop_assert_eq!(kinds(&got), kinds(&want));
        // Stability: with no edges at all, file order is kept.
        if edges.is_empty() {
            let names: Vec<String> = p.spec.tasks.iter().map(|t| t.name.clone()).collect();
            let file: Vec<String> = file_order.iter().filter(|&&i| i < n).map(|i| format!("t{i}")).collect();
            prop_assert_eq!(names, file);
        }
    }
}
