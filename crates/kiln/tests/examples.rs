//! The files in `examples/`: every one validates, and every one runs with `kiln run` to the
//! exit code it documents.

// Tests may unwrap (clippy.toml allows it in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use common::{Sandbox, kiln};
use serde_json::Value;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 9, "examples: {files:?}");
    files
}

fn name(p: &std::path::Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap()
}

#[test]
fn every_example_validates() {
    for file in examples() {
        let out = kiln().arg("validate").arg(&file).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = kiln()
            .arg("validate")
            .arg(&file)
            .args(["-o", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", file.display());
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        assert_eq!(v["valid"], true, "{}", file.display());
        assert!(
            v["name"].is_string() && v["instances"].as_u64() > Some(0),
            "{v}"
        );
    }
}

#[test]
fn every_example_runs_to_its_documented_end() {
    // The container example's image cannot be pulled here (no registry): the locally built
    // test image stands in for it under its name, unless the real one is present.
    let busybox = "busybox:1.36";
    let present = |image: &str| {
        std::process::Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !present(busybox) {
        let image = support::test_image();
        let tagged = std::process::Command::new("docker")
            .args(["tag", image, busybox])
            .status()
            .expect("docker tag");
        assert!(tagged.success());
    }
    for file in examples() {
        let sb = Sandbox::new();
        // The machine's own CPU count, as a user would run it.
        let out = kiln()
            .arg("run")
            .arg(&file)
            .arg("--state-dir")
            .arg(sb.state_dir())
            .args(["-o", "json"])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let code = out.status.code();
        match name(&file) {
            // Its Docker image lives in a registry this machine cannot reach: every attempt
            // fails fast with IMAGE_NOT_FOUND, before any COS input is downloaded.
            "tencent-cos-job.json" => {
                assert_eq!(code, Some(1), "{stderr}\n{summary}");
                let failed = summary["failed_instances"].as_array().expect("failed");
                let image = "IMAGE_NOT_FOUND ccr.ccs.tencentyun.com/demo/render:1.0";
                // The first instance out of retries stops its siblings (FailedAction TERMINATE).
                let first = failed.iter().find(|f| f["reason"] == image);
                assert_eq!(
                    first.expect(image)["attempt"],
                    3,
                    "MaxRetryCount 2: {summary}"
                );
                assert!(
                    failed.iter().all(|f| f["reason"] == image
                        || f["reason"].as_str().unwrap().starts_with("SIBLING_FAILED")),
                    "{summary}"
                );
            }
            "failing.yaml" => {
                assert_eq!(code, Some(1), "{stderr}\n{summary}");
                assert!(
                    summary["state"].as_str().unwrap().starts_with("FAILED"),
                    "{summary}"
                );
                let failed = summary["failed_instances"].as_array().unwrap();
                assert_eq!(failed.len(), 1, "{summary}");
                assert_eq!(failed[0]["task"], "check");
                assert_eq!(failed[0]["index"], 1);
                assert_eq!(failed[0]["attempt"], 2);
                assert_eq!(failed[0]["reason"], "EXIT_CODE 3");
                let report = &summary["tasks"][1];
                assert_eq!(report["state"], "FAILED", "{summary}");
                assert_eq!(report["reason"], "UPSTREAM_FAILED check", "{summary}");
            }
            other => {
                assert_eq!(code, Some(0), "{other}: {stderr}\n{summary}");
                assert_eq!(summary["state"], "SUCCEED", "{other}: {summary}");
                assert!(summary["failed_instances"].as_array().unwrap().is_empty());
            }
        }
    }
}
