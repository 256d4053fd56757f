#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Storage against a real S3-compatible server (s3s-fs, in-process, signatures checked).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_storage::testing::{ACCESS_KEY, SECRET_KEY, TestServer};
use kiln_storage::{Location, Storage, StorageConfig, StorageError, Transfer};

const WRONG_SECRET: &str = "definitely-not-the-secret-42";

/// Every error a test produces goes through here: no credential in its text, ever.
fn checked(err: StorageError) -> StorageError {
    for text in [err.to_string(), format!("{err:?}")] {
        for secret in [ACCESS_KEY, SECRET_KEY, WRONG_SECRET] {
            assert!(!text.contains(secret), "credential in error: {text}");
        }
    }
    err
}

fn loc(url: &str) -> Location {
    Location::parse(url).unwrap()
}

/// Writes `files` (relative path → content) below `dir`.
fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (rel, data) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

fn nested_files(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let rel = format!("d{}/sub{}/file-{i}.txt", i % 4, i % 3);
            (
                rel,
                format!("content of file {i}\n")
                    .repeat(i % 7 + 1)
                    .into_bytes(),
            )
        })
        .collect()
}

fn assert_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (rel, data) in files {
        let got = std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(&got, data, "{rel}");
    }
}

fn total(files: &[(String, Vec<u8>)]) -> Transfer {
    Transfer {
        files: files.len() as u64,
        bytes: files.iter().map(|(_, d)| d.len() as u64).sum(),
    }
}

async fn server_with_bucket(bucket: &str) -> TestServer {
    let server = TestServer::start().await.unwrap();
    server.create_bucket(bucket).unwrap();
    server
}

#[test]
fn parse_table() {
    let good: &[(&str, Location, bool)] = &[
        (
            "s3://bucket/in/",
            Location::S3 {
                bucket: "bucket".into(),
                key: "in/".into(),
            },
            true,
        ),
        (
            "s3://bucket",
            Location::S3 {
                bucket: "bucket".into(),
                key: "".into(),
            },
            true,
        ),
        (
            "s3://bucket/",
            Location::S3 {
                bucket: "bucket".into(),
                key: "".into(),
            },
            true,
        ),
        (
            "s3://my.bucket-1/a/b/c.txt",
            Location::S3 {
                bucket: "my.bucket-1".into(),
                key: "a/b/c.txt".into(),
            },
            false,
        ),
        (
            "cos://media-1250000000.cos.ap-guangzhou.myqcloud.com/logs/",
            Location::Cos {
                bucket: "media-1250000000".into(),
                region: "ap-guangzhou".into(),
                key: "logs/".into(),
            },
            true,
        ),
        (
            "cos://media-1250000000.cos.ap-guangzhou.myqcloud.com/x.log",
            Location::Cos {
                bucket: "media-1250000000".into(),
                region: "ap-guangzhou".into(),
                key: "x.log".into(),
            },
            false,
        ),
        (
            "file:///shared/data/",
            Location::File {
                path: "/shared/data/".into(),
            },
            true,
        ),
        (
            "file:///shared/data.csv",
            Location::File {
                path: "/shared/data.csv".into(),
            },
            false,
        ),
        (
            "file://localhost/shared/x",
            Location::File {
                path: "/shared/x".into(),
            },
            false,
        ),
    ];
    for (url, want, prefix) in good {
        let got = Location::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(&got, want, "{url}");
        assert_eq!(got.is_prefix(), *prefix, "{url}");
        assert_eq!(
            Location::parse(&got.url()).unwrap(),
            got,
            "{url} round trip"
        );
        assert_eq!(got.to_string(), got.url());
    }

    let bad: &[(&str, &str)] = &[
        ("http://bucket/x", "unknown scheme"),
        ("gs://bucket/x", "unknown scheme"),
        ("bucket/x", "expected SCHEME://"),
        ("s3:///key", "bucket name is empty"),
        ("s3://", "bucket name is empty"),
        ("s3://Bucket_Upper/x", "lowercase"),
        ("s3://bucket/a/../b", "`..`"),
        ("s3://bucket/a//b", "empty path segment"),
        ("s3://bucket/./b", "`.`"),
        ("s3://AKIDX:hunter2@bucket/x", "credentials in the URL"),
        ("cos://media.cos.ap-guangzhou.myqcloud.com/x", "-APPID"),
        (
            "cos://media-1250000000.ap-guangzhou.myqcloud.com/x",
            "malformed COS host",
        ),
        (
            "cos://media-1250000000.cos.ap-guangzhou.example.com/x",
            "malformed COS host",
        ),
        ("cos://media-1250000000.cos..myqcloud.com/x", "bad region"),
        ("cos:///x", "bucket is empty"),
        ("file://relative/path", "relative file path"),
        ("file://", "path is empty"),
        ("file:///shared/../etc/passwd", "`..`"),
    ];
    for (url, needle) in bad {
        let err = Location::parse(url).expect_err(url);
        let text = err.to_string();
        assert!(text.starts_with("invalid storage URL `"), "{text}");
        assert!(text.contains(needle), "{url}: `{text}` lacks `{needle}`");
        assert!(
            !text.contains("hunter2") && !text.contains("AKIDX"),
            "{text}"
        );
    }
}

#[test]
fn join_and_url() {
    let p = loc("s3://bucket/out/");
    assert_eq!(p.join("a/b.txt").url(), "s3://bucket/out/a/b.txt");
    assert_eq!(loc("s3://bucket").join("x").url(), "s3://bucket/x");
    assert_eq!(loc("s3://bucket/out").join("x").url(), "s3://bucket/out/x");
    assert_eq!(loc("file:///mnt/o/").join("x/y").url(), "file:///mnt/o/x/y");
    assert_eq!(
        loc("cos://a-1.cos.ap-beijing.myqcloud.com/l/")
            .join("s.log")
            .url(),
        "cos://a-1.cos.ap-beijing.myqcloud.com/l/s.log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_prefix_with_nested_keys_and_single_objects() {
    let server = server_with_bucket("inputs").await;
    let files = nested_files(60);
    write_tree(&server.root().join("inputs/data"), &files);
    // A sibling that shares the prefix text but not the "directory".
    write_tree(
        &server.root().join("inputs"),
        &[("data-other/x".into(), b"no".to_vec())],
    );
    let storage = Storage::new(server.config());
    let work = tempfile::tempdir().unwrap();

    let target = work.path().join("in");
    let t = storage
        .download(&loc("s3://inputs/data/"), &target)
        .await
        .unwrap();
    assert_eq!(t, total(&files));
    assert_tree(&target, &files);
    assert!(!target.join("x").exists());
    let leftovers: Vec<_> = walk_names(&target)
        .into_iter()
        .filter(|n| n.contains("kiln-part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Bucket root.
    let all = work.path().join("all");
    let t = storage.download(&loc("s3://inputs"), &all).await.unwrap();
    assert_eq!(t.files, 61);

    // Single object: to a file path, and into a directory.
    let (rel, data) = &files[7];
    let one = loc(&format!("s3://inputs/data/{rel}"));
    let file = work.path().join("single.txt");
    assert_eq!(
        storage.download(&one, &file).await.unwrap(),
        Transfer {
            files: 1,
            bytes: data.len() as u64
        }
    );
    assert_eq!(&std::fs::read(&file).unwrap(), data);
    let dir = work.path().join("dir/");
    std::fs::create_dir_all(&dir).unwrap();
    storage.download(&one, &dir).await.unwrap();
    let name = rel.rsplit('/').next().unwrap();
    assert_eq!(&std::fs::read(dir.join(name)).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_larger_than_a_part_download_in_ranges() {
    const MIB: usize = 1024 * 1024;
    let server = server_with_bucket("inputs").await;
    // One part exactly (one request), one byte more (a second range of one byte), and
    // three ranges of which the last is short.
    let sizes = [5 * MIB, 5 * MIB + 1, 12 * MIB + 7];
    let files: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let data = (0..n).map(|j| (j * 31 + j / 4099 + i) as u8).collect();
            (format!("big/{i}.bin"), data)
        })
        .collect();
    write_tree(&server.root().join("inputs"), &files);
    let cfg = StorageConfig {
        part_size: 5 * MIB,
        ..server.config()
    };
    let storage = Storage::new(cfg);
    let work = tempfile::tempdir().unwrap();

    // Through a listing (sizes known), and one object at a time (sizes from HEAD).
    let target = work.path().join("all");
    let t = storage
        .download(&loc("s3://inputs"), &target)
        .await
        .unwrap();
    assert_eq!(t, total(&files));
    assert_tree(&target, &files);
    for (rel, data) in &files {
        let file = work.path().join("one.bin");
        let t = storage
            .download(&loc(&format!("s3://inputs/{rel}")), &file)
            .await
            .unwrap();
        assert_eq!(t.bytes, data.len() as u64, "{rel}");
        assert!(
            std::fs::read(&file).unwrap() == *data,
            "{rel}: content differs"
        );
    }
    let names = walk_names(work.path());
    assert!(!names.iter().any(|n| n.contains("kiln-part")), "{names:?}");
}

fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_names(&e.path()));
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_nested_directory_and_single_file() {
    let server = server_with_bucket("outputs").await;
    let storage = Storage::new(server.config());
    let work = tempfile::tempdir().unwrap();
    let files = nested_files(55);
    let out = work.path().join("out");
    write_tree(&out, &files);

    let t = storage
        .upload(&out, &loc("s3://outputs/job-1/out/"))
        .await
        .unwrap();
    assert_eq!(t, total(&files));
    // Read back through the server's data directory…
    assert_tree(&server.root().join("outputs/job-1/out"), &files);
    // …and through the API.
    let back = work.path().join("back");
    assert_eq!(
        storage
            .download(&loc("s3://outputs/job-1/out/"), &back)
            .await
            .unwrap(),
        t
    );
    assert_tree(&back, &files);

    // A single file: to an object, and under a prefix.
    let single = out.join(&files[0].0);
    storage
        .upload(&single, &loc("s3://outputs/logs/stdout.log"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(server.root().join("outputs/logs/stdout.log")).unwrap(),
        files[0].1
    );
    storage
        .upload(&single, &loc("s3://outputs/logs/"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(server.root().join("outputs/logs/file-0.txt")).unwrap(),
        files[0].1
    );

    // A missing source directory uploads nothing.
    let none = storage
        .upload(&work.path().join("absent"), &loc("s3://outputs/x/"))
        .await
        .unwrap();
    assert_eq!(none, Transfer::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_prefix_and_object_are_not_found() {
    let server = server_with_bucket("inputs").await;
    write_tree(
        &server.root().join("inputs"),
        &[("present/a".into(), b"a".to_vec())],
    );
    let storage = Storage::new(server.config());
    let work = tempfile::tempdir().unwrap();
    for url in [
        "s3://inputs/absent/",
        "s3://inputs/absent.txt",
        "s3://nobucket/x/",
    ] {
        let err = checked(
            storage
                .download(&loc(url), &work.path().join("t"))
                .await
                .unwrap_err(),
        );
        assert!(
            matches!(&err, StorageError::NotFound { url: u } if u == url),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains(url), "{err}");
        assert!(!err.is_transient());
    }
    assert!(!work.path().join("t").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_fails_fast_and_transient() {
    let mut server = server_with_bucket("inputs").await;
    write_tree(
        &server.root().join("inputs"),
        &[("p/a".into(), b"a".to_vec())],
    );
    let storage = Storage::new(server.config());
    let work = tempfile::tempdir().unwrap();
    // Warm the connection pool, then stop the server under it.
    storage
        .download(&loc("s3://inputs/p/"), &work.path().join("a"))
        .await
        .unwrap();
    server.stop().await;

    let started = Instant::now();
    let err = checked(
        storage
            .download(&loc("s3://inputs/p/"), &work.path().join("b"))
            .await
            .unwrap_err(),
    );
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("s3://inputs/p/"), "{err}");
    let upload = checked(
        storage
            .upload(&work.path().join("a"), &loc("s3://inputs/q/"))
            .await
            .unwrap_err(),
    );
    assert!(upload.is_transient(), "{upload:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_denied_without_leaking_it() {
    let server = server_with_bucket("inputs").await;
    write_tree(
        &server.root().join("inputs"),
        &[("p/a".into(), b"a".to_vec())],
    );
    let cfg = StorageConfig {
        secret_access_key: Some(WRONG_SECRET.into()),
        ..server.config()
    };
    let storage = Storage::new(cfg);
    let work = tempfile::tempdir().unwrap();
    for url in ["s3://inputs/p/", "s3://inputs/p/a"] {
        let err = checked(
            storage
                .download(&loc(url), &work.path().join("x"))
                .await
                .unwrap_err(),
        );
        assert!(matches!(err, StorageError::Denied { .. }), "{err:?}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
    std::fs::write(work.path().join("f"), b"f").unwrap();
    let err = checked(
        storage
            .upload(&work.path().join("f"), &loc("s3://inputs/up/"))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, StorageError::Denied { .. }), "{err:?}");
    // Nor does the configuration's Debug show them.
    let dbg = format!("{:?}", storage);
    assert!(
        !dbg.contains(WRONG_SECRET) && !dbg.contains(ACCESS_KEY),
        "{dbg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_scheme_links_inputs_and_copies_outputs() {
    let shared = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = nested_files(5);
    write_tree(&shared.path().join("in"), &files);
    let storage = Storage::new(StorageConfig::default());

    // A directory input becomes a symlink to the shared directory.
    let src = loc(&format!("file://{}/in/", shared.path().display()));
    let target = work.path().join("in");
    let t = storage.download(&src, &target).await.unwrap();
    assert_eq!(t, Transfer { files: 1, bytes: 0 });
    assert!(
        std::fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_tree(&target, &files);

    // A single file input into an existing, non-empty directory: a link beside the others.
    let one = loc(&format!(
        "file://{}/in/{}",
        shared.path().display(),
        files[0].0
    ));
    let dir = work.path().join("w");
    write_tree(&dir, &[("keep".into(), b"k".to_vec())]);
    storage.download(&one, &dir).await.unwrap();
    let name = files[0].0.rsplit('/').next().unwrap();
    assert!(
        std::fs::symlink_metadata(dir.join(name))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // A directory input into a non-empty directory is copied into it.
    let t = storage.download(&src, &dir).await.unwrap();
    assert_eq!(t, total(&files));
    assert_tree(&dir, &files);

    // Missing input.
    let missing = format!("file://{}/nope/", shared.path().display());
    let err = checked(
        storage
            .download(&loc(&missing), &work.path().join("m"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, StorageError::NotFound { url } if *url == missing),
        "{err:?}"
    );

    // Outputs are copied (real files, not links).
    let out = work.path().join("out");
    write_tree(&out, &files);
    let dst = loc(&format!("file://{}/results/", shared.path().display()));
    assert_eq!(storage.upload(&out, &dst).await.unwrap(), total(&files));
    let results: PathBuf = shared.path().join("results");
    assert_tree(&results, &files);
    assert!(
        std::fs::symlink_metadata(results.join(&files[0].0))
            .unwrap()
            .file_type()
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_is_retried_until_the_server_is_back() {
    let mut server = server_with_bucket("inputs").await;
    write_tree(
        &server.root().join("inputs"),
        &[("p/a".into(), b"abc".to_vec())],
    );
    let (root, addr) = (server.root().to_path_buf(), server.addr());
    let cfg = StorageConfig {
        retries: 6,
        ..server.config()
    };
    let storage = Storage::new(cfg);
    server.stop().await;
    // The server comes back while the download is retrying (backoff 100, 200, 400 … ms).
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        TestServer::start_on(&root, addr).await.unwrap()
    });
    let work = tempfile::tempdir().unwrap();
    let t = storage
        .download(&loc("s3://inputs/p/a"), &work.path().join("a"))
        .await
        .unwrap();
    assert_eq!(t, Transfer { files: 1, bytes: 3 });
    drop(restart.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_brings_one_object_into_memory_within_a_limit() {
    let server = server_with_bucket("items").await;
    write_tree(
        &server.root().join("items"),
        &[("list.txt".into(), b"a\nb\nc\n".to_vec())],
    );
    let storage = Storage::new(server.config());
    let got = storage
        .read(&loc("s3://items/list.txt"), 1024)
        .await
        .unwrap();
    assert_eq!(got, b"a\nb\nc\n");
    let err = checked(
        storage
            .read(&loc("s3://items/list.txt"), 3)
            .await
            .unwrap_err(),
    );
    assert!(err.to_string().contains("at most 3"), "{err}");
    let err = checked(
        storage
            .read(&loc("s3://items/none.txt"), 1024)
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
    let err = checked(storage.read(&loc("s3://items/"), 1024).await.unwrap_err());
    assert!(err.to_string().contains("prefix"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("list.txt");
    std::fs::write(&file, b"x\n").unwrap();
    let url = format!("file://{}", file.display());
    assert_eq!(storage.read(&loc(&url), 10).await.unwrap(), b"x\n");
    assert!(storage.read(&loc(&url), 1).await.is_err());
}

/// `cos://BUCKET-APPID.cos.REGION.myqcloud.com/KEY`, parsed as for COS itself, goes to the
/// `cos_endpoint` when one is set: the bucket is `BUCKET-APPID`, path-style, signed for
/// `REGION`. Without it the same URL would go to COS (`endpoint` alone does not divert it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cos_urls_go_to_the_cos_endpoint_when_one_is_given() {
    let bucket = "media-1250000000";
    let server = server_with_bucket(bucket).await;
    let files = vec![("in/a.txt".to_string(), b"alpha".to_vec())];
    write_tree(&server.root().join(bucket), &files);
    let cfg = StorageConfig {
        cos_endpoint: Some(server.endpoint()),
        ..server.config()
    };
    let storage = Storage::new(cfg);
    let base = format!("cos://{bucket}.cos.ap-guangzhou.myqcloud.com");
    let work = tempfile::tempdir().unwrap();
    let t = storage
        .download(&loc(&format!("{base}/in/")), &work.path().join("in"))
        .await
        .unwrap();
    assert_eq!(t.files, 1);
    assert_eq!(
        std::fs::read(work.path().join("in/a.txt")).unwrap(),
        b"alpha"
    );
    std::fs::write(work.path().join("b.txt"), "beta").unwrap();
    storage
        .upload(&work.path().join("b.txt"), &loc(&format!("{base}/out/")))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(server.root().join(bucket).join("out/b.txt")).unwrap(),
        "beta"
    );
}
