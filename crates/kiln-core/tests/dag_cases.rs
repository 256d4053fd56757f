//! Data-driven tests of the DAG syntax (DESIGN §3) and of topological ordering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kiln_core::dag::{Edge, parse_dag, topo_order};
use kiln_core::model::DepKind;
use kiln_core::spec::{Templates, parse_job};

/// Edges as "from->to@line" / "from=>to@line" strings, for compact expectations.
fn show(edges: &[Edge]) -> Vec<String> {
    edges
        .iter()
        .map(|e| {
            let arrow = match e.kind {
                DepKind::Task => "->",
                DepKind::Instance => "=>",
            };
            format!("{}{arrow}{}@{}", e.from, e.to, e.line)
        })
        .collect()
}

#[test]
fn parses() {
    let cases: &[(&str, &[&str])] = &[
        ("a -> b", &["a->b@1"]),
        ("a->b->c", &["a->b@1", "b->c@1"]),
        ("a -> b, c", &["a->b@1", "a->c@1"]),
        ("a, b -> c", &["a->c@1", "b->c@1"]),
        ("a, b -> c, d", &["a->c@1", "a->d@1", "b->c@1", "b->d@1"]),
        ("a => b", &["a=>b@1"]),
        ("a => b -> c", &["a=>b@1", "b->c@1"]),
        ("a -> b => c", &["a->b@1", "b=>c@1"]),
        (
            "# comment\n\n  a -> b   # trailing\n\t\nb -> c\n",
            &["a->b@3", "b->c@5"],
        ),
        ("x-1 -> y_2.z", &["x-1->y_2.z@1"]),
        ("a-->b", &["a-->b@1"]),
        ("a -> b\na -> b", &["a->b@1", "a->b@2"]),
        ("", &[]),
        ("# only a comment", &[]),
    ];
    for (text, expected) in cases {
        let edges = parse_dag(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        assert_eq!(show(&edges), *expected, "{text:?}");
    }
}

#[test]
fn syntax_errors() {
    let cases: &[(&str, &[(usize, &str)])] = &[
        ("a ->", &[(1, "dangling arrow")]),
        ("-> a", &[(1, "nothing before it")]),
        ("a -> -> b", &[(1, "two arrows with nothing between them")]),
        ("a, -> b", &[(1, "empty task name")]),
        ("a -> b,", &[(1, "empty task name")]),
        ("a b", &[(1, "has no arrow")]),
        ("a -> b c", &[(1, "bad task name `b c`")]),
        ("a -> b!", &[(1, "'!' is not allowed")]),
        ("a > b", &[(1, "has no arrow")]),
        ("a -> a", &[(1, "self-edge: `a` cannot depend on itself")]),
        ("a, b -> b", &[(1, "self-edge: `b`")]),
        (
            "ok -> fine\na ->\n\nb => ",
            &[(2, "dangling"), (4, "dangling")],
        ),
    ];
    for (text, expected) in cases {
        let errors = parse_dag(text).expect_err(text);
        assert_eq!(errors.len(), expected.len(), "{text:?}: {errors:?}");
        for (e, (line, frag)) in errors.iter().zip(expected.iter()) {
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(frag), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")));
        }
    }
}

#[test]
fn long_name_is_an_error() {
    let text = format!("a -> {}", "b".repeat(61));
    let errors = parse_dag(&text).unwrap_err();
    assert!(errors[0].message.contains("longer than 60"));
}

#[test]
fn topo_order_is_stable() {
    // No edges: original order.
    assert_eq!(topo_order(4, &[]), Ok(vec![0, 1, 2, 3]));
    // 3 must come before 0; everything else keeps its place.
    assert_eq!(topo_order(4, &[(3, 0)]), Ok(vec![1, 2, 3, 0]));
    // Diamond, written backwards.
    assert_eq!(
        topo_order(4, &[(3, 1), (3, 2), (1, 0), (2, 0)]),
        Ok(vec![3, 1, 2, 0])
    );
    // Duplicates are fine.
    assert_eq!(topo_order(2, &[(1, 0), (1, 0)]), Ok(vec![1, 0]));
}

#[test]
fn topo_order_reports_cycles() {
    assert_eq!(
        topo_order(3, &[(0, 1), (1, 2), (2, 0)]),
        Err(vec![vec![0, 1, 2]])
    );
    // Two separate cycles plus a node downstream of one.
    assert_eq!(
        topo_order(6, &[(1, 0), (0, 1), (3, 4), (4, 3), (4, 5), (2, 3)]),
        Err(vec![vec![0, 1], vec![3, 4]])
    );
    // The shortest way back: 0 -> 2 -> 0, not 0 -> 1 -> 2 -> 0.
    assert_eq!(
        topo_order(3, &[(0, 1), (1, 2), (0, 2), (2, 0)]),
        Err(vec![vec![0, 2]])
    );
    assert_eq!(topo_order(1, &[(0, 0)]), Err(vec![vec![0]]));
}

#[test]
fn long_chain_does_not_overflow_the_stack() {
    let n = 200_000;
    let mut edges: Vec<(usize, usize)> = (1..n).map(|i| (i, i - 1)).collect();
    let order = topo_order(n, &edges).unwrap();
    assert_eq!(order.first(), Some(&(n - 1)));
    edges.push((0, n - 1));
    let cycles = topo_order(n, &edges).unwrap_err();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].len(), n);
}

/// DAG errors as they surface through `parse_job`: path "dag", line number in the message.
#[test]
fn dag_errors_in_specs() {
    let spec = |dag: &str| {
        format!(
            "name: j\ndag: |\n{}\ntasks:\n  a: {{command: x, instances: 2}}\n  b: {{command: x, instances: 2}}\n  c: {{command: x}}\n",
            dag.lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    let cases: &[(&str, &[&str])] = &[
        ("a -> b\nb -> x", &["line 2: unknown task `x`"]),
        ("a -> bb", &["line 1: unknown task `bb`"]),
        ("a ->", &["line 1: dangling arrow"]),
        ("a -> a", &["line 1: self-edge"]),
        (
            "a => c",
            &[
                "line 1: `a => c` needs the same instance count on both sides, but `a` has 2 and `c` has 1",
            ],
        ),
        (
            "a -> b\nb -> c\nc -> a",
            &["cycle: a -> b -> c -> a (dag lines 1, 2, 3)"],
        ),
        ("a -> b -> a", &["cycle: a -> b -> a (dag line 1)"]),
        (
            "b -> a\na -> b\n# x\nzz -> a\nq ->",
            &["line 5: dangling arrow"],
        ),
    ];
    for (dag, expected) in cases {
        let e = parse_job(spec(dag).as_bytes(), &Templates::new()).unwrap_err();
        assert_eq!(e.0.len(), expected.len(), "{dag:?}: {e}");
        for (err, frag) in e.0.iter().zip(expected.iter()) {
            assert_eq!(err.path, "dag", "{dag:?}: {e}");
            assert!(err.message.contains(frag), "{dag:?}: {e}");
        }
    }
    // Unknown name suggestions.
    let e = parse_job(spec("a -> bb").as_bytes(), &Templates::new()).unwrap_err();
    assert_eq!(e.0[0].hint.as_deref(), Some("did you mean `b`?"));
}

#[test]
fn mixed_chain_through_spec() {
    let p = parse_job(
        b"name: j\ndag: a => b -> c\ntasks:\n  c: {command: x}\n  b: {command: x, instances: 3}\n  a: {command: x, instances: 3}\n",
        &Templates::new(),
    )
    .unwrap();
    let names: Vec<&str> = p.spec.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(p.spec.tasks[1].deps[0].kind, DepKind::Instance);
    assert_eq!(p.spec.tasks[2].deps[0].kind, DepKind::Task);
}
