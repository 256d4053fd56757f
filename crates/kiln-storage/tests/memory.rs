#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A 64 MiB file goes up multipart and comes back down without the process holding it in
//! memory. Its own test binary, so that no other test moves the peak.

use std::io::{Read, Write};
use std::path::Path;

use kiln_storage::testing::TestServer;
use kiln_storage::{Location, Storage, Transfer};

const MIB: usize = 1024 * 1024;

/// Peak resident set size of this process so far, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Deterministic, incompressible-looking content, written 1 MiB at a time.
fn write_big(path: &Path, mib: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; MIB];
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut ba, mut bb) = (vec![0u8; MIB], vec![0u8; MIB]);
    loop {
        let na = fa.read(&mut ba).unwrap();
        let mut nb = 0;
        while nb < na {
            let r = fb.read(&mut bb[nb..na]).unwrap();
            if r == 0 {
                return false;
            }
            nb += r;
        }
        if na == 0 {
            return fb.read(&mut bb).unwrap() == 0;
        }
        if ba[..na] != bb[..na] {
            return false;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_file_round_trip_in_bounded_memory() {
    let server = TestServer::start().await.unwrap();
    server.create_bucket("big").unwrap();
    let cfg = server.config();
    assert_eq!(cfg.part_size, 8 * MIB);
    let storage = Storage::new(cfg);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    write_big(&src, 64);

    // Warm up the client, the server and the allocator on a small object first.
    std::fs::write(work.path().join("small"), b"x").unwrap();
    let small = Location::parse("s3://big/small").unwrap();
    storage
        .upload(&work.path().join("small"), &small)
        .await
        .unwrap();
    storage
        .download(&small, &work.path().join("small2"))
        .await
        .unwrap();

    let before = peak_rss();
    let dst = Location::parse("s3://big/data/big.bin").unwrap();
    let up = storage.upload(&src, &dst).await.unwrap();
    assert_eq!(
        up,
        Transfer {
            files: 1,
            bytes: 64 * MIB as u64
        }
    );
    let back = work.path().join("back.bin");
    let down = storage.download(&dst, &back).await.unwrap();
    assert_eq!(down, up);
    let growth = peak_rss().saturating_sub(before);

    assert!(
        same_content(&src, &back),
        "content differs after the round trip"
    );
    assert!(same_content(&src, &server.root().join("big/data/big.bin")));
    // s3s-fs records a multipart upload's ETag as `MD5-PARTS`: 64 MiB / 8 MiB = 8 parts.
    let multipart = std::fs::read_dir(server.root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".internal.json"))
        .any(|p| std::fs::read_to_string(p).unwrap().contains("-8\""));
    assert!(multipart, "the big file did not go up in 8 parts");
    assert!(
        growth < 64 * MIB as u64,
        "peak RSS grew by {} MiB for a 64 MiB round trip",
        growth / MIB as u64
    );
    eprintln!("peak RSS growth: {} MiB", growth / MIB as u64);
}
