//! The storage benchmark's helper (`bench/storage.sh`).
//!
//! ```text
//! storage-bench serve ROOT ENV_FILE    # the test server on a free loopback port, until killed;
//!                                      # when ready, writes the AWS variables that reach it
//!                                      # (endpoint, key pair, region) to ENV_FILE for `.`
//! storage-bench download URL DIR       # Storage::download, credentials from the AWS variables
//! storage-bench upload PATH URL        # Storage::upload, likewise
//! ```
//!
//! `download` and `upload` print `FILES BYTES SECONDS` of the transfer. `KILN_STORAGE_CONCURRENCY`
//! and `KILN_STORAGE_PART_MIB` override the configuration's defaults (for experiments only).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use kiln_storage::testing::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};
use kiln_storage::{Location, Storage, StorageConfig};

fn usage() -> ExitCode {
    eprintln!("usage: storage-bench serve ROOT ENV_FILE | download URL DIR | upload PATH URL");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", root, env_file] => serve(Path::new(root), Path::new(env_file)).await,
        ["download", url, dir] => transfer(true, url, dir).await,
        ["upload", path, url] => transfer(false, url, path).await,
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(root: &Path, env_file: &Path) -> Result<(), String> {
    let server = TestServer::start_in(root)
        .await
        .map_err(|e| format!("cannot start the server on {}: {e}", root.display()))?;
    let env = format!(
        "export AWS_ENDPOINT_URL={}\nexport AWS_ACCESS_KEY_ID={ACCESS_KEY}\n\
         export AWS_SECRET_ACCESS_KEY={SECRET_KEY}\nexport AWS_REGION={REGION}\n",
        server.endpoint()
    );
    // Written whole, then renamed: a reader never sees half of it.
    let tmp = PathBuf::from(format!("{}.tmp", env_file.display()));
    std::fs::write(&tmp, env)
        .and_then(|()| std::fs::rename(&tmp, env_file))
        .map_err(|e| format!("cannot write {}: {e}", env_file.display()))?;
    std::future::pending::<()>().await;
    drop(server);
    Ok(())
}

async fn transfer(download: bool, url: &str, path: &str) -> Result<(), String> {
    let mut cfg = StorageConfig::from_env();
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(n) = var("KILN_STORAGE_CONCURRENCY") {
        cfg.concurrency = n;
    }
    if let Some(mib) = var("KILN_STORAGE_PART_MIB") {
        cfg.part_size = mib * 1024 * 1024;
    }
    let storage = Storage::new(cfg);
    let location = Location::parse(url).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let moved = if download {
        storage.download(&location, Path::new(path)).await
    } else {
        storage.upload(Path::new(path), &location).await
    }
    .map_err(|e| e.to_string())?;
    println!(
        "{} {} {:.3}",
        moved.files,
        moved.bytes,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
