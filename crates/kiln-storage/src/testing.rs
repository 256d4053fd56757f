//! An S3-compatible server for tests (feature `test-server`): `s3s-fs` serving a temporary
//! directory on `127.0.0.1:0`, in-process, with `TCP_NODELAY` on accepted sockets and
//! signature checking against a static key pair.
//!
//! ```ignore
//! // [dev-dependencies] kiln-storage = { workspace = true, features = ["test-server"] }
//! let server = kiln_storage::testing::TestServer::start().await?;
//! server.create_bucket("inputs")?;
//! let storage = kiln_storage::Storage::new(server.config());
//! ```
//! It needs a running tokio runtime (any flavour). Stopping (or dropping) the server closes
//! the listener and every open connection.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::StorageConfig;

/// The access key id every test server accepts.
pub const ACCESS_KEY: &str = "KILNTESTACCESSKEY";
/// The secret every test server accepts.
pub const SECRET_KEY: &str = "kiln-test-secret-0123456789abcdef";
/// The region tests sign with.
pub const REGION: &str = "us-east-1";

/// A running `s3s-fs` server; buckets are directories of [`TestServer::root`].
pub struct TestServer {
    addr: SocketAddr,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves a fresh temporary directory (removed when the server is dropped).
    pub async fn start() -> io::Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_path_buf();
        let mut server = Self::start_in(&root).await?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// Serves `root` (which must exist) on a fresh loopback port.
    pub async fn start_in(root: &Path) -> io::Result<TestServer> {
        Self::start_on(root, "127.0.0.1:0".parse().map_err(io::Error::other)?).await
    }

    /// Serves `root` on `addr` (e.g. the address of a stopped server, to restart it).
    pub async fn start_on(root: &Path, addr: SocketAddr) -> io::Result<TestServer> {
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            // Dropped with this task: aborts every connection when the server stops.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        let _ = socket.set_nodelay(true);
                        let conn = http
                            .serve_connection(TokioIo::new(socket), service.clone())
                            .into_owned();
                        conns.spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(TestServer {
            addr,
            root: root.to_path_buf(),
            _dir: None,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The served directory: one subdirectory per bucket, one file per object.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a bucket (a directory of the root).
    pub fn create_bucket(&self, name: &str) -> io::Result<PathBuf> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// A configuration that reaches this server with the right credentials.
    pub fn config(&self) -> StorageConfig {
        StorageConfig {
            endpoint: Some(self.endpoint()),
            region: Some(REGION.to_string()),
            access_key_id: Some(ACCESS_KEY.to_string()),
            secret_access_key: Some(SECRET_KEY.to_string()),
            session_token: None,
            allow_http: true,
            ..StorageConfig::default()
        }
    }

    /// Stops listening and closes every connection; the data stays in [`TestServer::root`].
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
