//! Downloads (inputs) and uploads (outputs).

use std::collections::HashMap;
use std::future::Future;
use std::io::{ErrorKind, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt,
    PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{Location, StorageConfig, StorageError};

/// What a transfer moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Files (objects) written; a `file://` input mapped by a symlink counts as one.
    pub files: u64,
    /// Bytes copied (0 for a symlink).
    pub bytes: u64,
}

impl Transfer {
    fn one(bytes: u64) -> Transfer {
        Transfer { files: 1, bytes }
    }
    fn add(self, other: Transfer) -> Transfer {
        Transfer {
            files: self.files + other.files,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// Size of the read buffer of each file being uploaded, and of each copy.
const READ_BUF: usize = 256 * 1024;
/// Size of the write buffer of each object (or range) being downloaded: response bodies
/// arrive in chunks of a few KiB, and each write of a `tokio::fs::File` is a trip to the
/// blocking pool.
const WRITE_BUF: usize = 1024 * 1024;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Ranges of one large object being downloaded at once.
const RANGES_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StoreKey {
    scheme: &'static str,
    bucket: String,
    region: String,
}

struct Inner {
    cfg: StorageConfig,
    stores: Mutex<HashMap<StoreKey, Arc<dyn ObjectStore>>>,
}

/// Moves task inputs in and outputs out. Cheap to clone; keeps one client (and its
/// connection pool) per (scheme, bucket, region).
///
/// Memory: a download holds at most `concurrency` objects, each at most four response
/// streams (an object larger than `part_size` comes as ranges, four at once) with a 1 MiB
/// write buffer each, never a whole object; an upload holds at most `concurrency` files,
/// each at most `part_size` × 3 bytes (one part being filled, two in flight).
///
/// `file://` inputs are mapped by a symlink when the target does not exist yet (or is an
/// empty directory), else copied. The task then sees the shared files themselves: they are
/// to be treated as read-only, and Kiln does not copy back or protect them — a runtime that
/// must enforce read-only access bind-mounts the source read-only instead.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl Storage {
    pub fn new(cfg: StorageConfig) -> Storage {
        Storage {
            inner: Arc::new(Inner {
                cfg,
                stores: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &StorageConfig {
        &self.inner.cfg
    }

    /// Prefix → every object under it, written below `target` (a directory) keeping relative
    /// paths; single object → the file `target` (or `target/NAME` if `target` ends with `/`
    /// or is an existing directory). `file://` locations are symlinked when possible, else
    /// copied. Objects stream to disk (a temporary sibling, renamed when complete), up to
    /// `concurrency` at once; one larger than `part_size` comes in ranges, four at once. No
    /// object at all under a prefix, or a missing object → [`StorageError::NotFound`].
    pub async fn download(&self, src: &Location, target: &Path) -> Result<Transfer, StorageError> {
        let result = match src {
            Location::File { path } => self.download_file(src, path, target).await,
            _ if src.is_prefix() => self.download_prefix(src, target).await,
            _ => self.download_object(src, target).await,
        };
        match &result {
            Ok(t) => tracing::debug!(url = %src, files = t.files, bytes = t.bytes, "downloaded"),
            Err(e) => tracing::debug!(url = %src, error = %e, "download failed"),
        }
        result
    }

    /// A directory → every regular file below it (recursively; symlinks to files are
    /// followed, symlinked directories are not) uploaded under the prefix `dst` keeping
    /// relative paths; a file → the object `dst` (or `dst` + file name if `dst` is a prefix).
    /// Files larger than `part_size` go multipart. A missing source uploads nothing.
    pub async fn upload(&self, src: &Path, dst: &Location) -> Result<Transfer, StorageError> {
        let meta = match tokio::fs::metadata(src).await {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Transfer::default()),
            Err(e) => return Err(StorageError::io(src, &e)),
        };
        let jobs: Vec<(PathBuf, Location)> = if meta.is_dir() {
            let files = walk_off_thread(src).await?;
            files
                .into_iter()
                .map(|(path, rel)| {
                    let loc = dst.join(&rel);
                    (path, loc)
                })
                .collect()
        } else {
            let loc = if dst.is_prefix() {
                let name = file_name(src)?;
                dst.join(&name)
            } else {
                dst.clone()
            };
            vec![(src.to_path_buf(), loc)]
        };
        let result = self
            .run_all(jobs, |(path, loc)| self.put_file(path, loc))
            .await;
        match &result {
            Ok(t) => tracing::debug!(url = %dst, files = t.files, bytes = t.bytes, "uploaded"),
            Err(e) => tracing::debug!(url = %dst, error = %e, "upload failed"),
        }
        result
    }

    /// One object (or shared-filesystem file) into memory, refusing one larger than `limit`
    /// bytes. A prefix is not an object: [`StorageError::Config`].
    pub async fn read(&self, src: &Location, limit: u64) -> Result<Vec<u8>, StorageError> {
        let url = src.url();
        let too_large = |size: u64| StorageError::Remote {
            url: url.clone(),
            message: format!("the object has {size} bytes; at most {limit} are read"),
            transient: false,
        };
        if let Location::File { path } = src {
            let meta = tokio::fs::metadata(path)
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::NotFound => StorageError::NotFound { url: url.clone() },
                    _ => StorageError::io(path, &e),
                })?;
            if meta.is_dir() {
                return Err(StorageError::Config(format!(
                    "`{url}` is a directory, not a file"
                )));
            }
            if meta.len() > limit {
                return Err(too_large(meta.len()));
            }
            return tokio::fs::read(path)
                .await
                .map_err(|e| StorageError::io(path, &e));
        }
        if src.is_prefix() {
            return Err(StorageError::Config(format!(
                "`{url}` is a prefix, not an object"
            )));
        }
        let (store, key) = self.store(src)?;
        let path = obj_path(&url, &key)?;
        self.retry(|| async {
            let meta = store.head(&path).await.map_err(|e| self.remote(&url, e))?;
            if meta.size > limit {
                return Err(too_large(meta.size));
            }
            let got = store.get(&path).await.map_err(|e| self.remote(&url, e))?;
            let bytes = got.bytes().await.map_err(|e| self.remote(&url, e))?;
            Ok(bytes.to_vec())
        })
        .await
    }

    // ---- remote ----

    async fn download_prefix(
        &self,
        src: &Location,
        target: &Path,
    ) -> Result<Transfer, StorageError> {
        let (store, key) = self.store(src)?;
        let url = src.url();
        let prefix = if key.is_empty() {
            None
        } else {
            Some(obj_path(&url, key.trim_end_matches('/'))?)
        };
        let objects = self
            .retry(|| {
                let store = Arc::clone(&store);
                let prefix = prefix.clone();
                let url = url.clone();
                async move {
                    store
                        .list(prefix.as_ref())
                        .try_collect::<Vec<_>>()
                        .await
                        .map_err(|e| self.remote(&url, e))
                }
            })
            .await?;
        let mut jobs = Vec::with_capacity(objects.len());
        for meta in objects {
            let full = meta.location.as_ref().to_string();
            let Some(rel) = full.strip_prefix(key.as_str()) else {
                continue;
            };
            if rel.is_empty() || rel.ends_with('/') {
                continue; // a "directory marker" object
            }
            let rel_path = safe_relative(rel).ok_or_else(|| StorageError::Remote {
                url: src.join(rel).url(),
                message: "the object key would escape the target directory".into(),
                transient: false,
            })?;
            let url = src.join(rel).url();
            jobs.push((meta.location, url, target.join(rel_path), Some(meta.size)));
        }
        if jobs.is_empty() {
            return Err(StorageError::NotFound { url });
        }
        tokio::fs::create_dir_all(target)
            .await
            .map_err(|e| StorageError::io(target, &e))?;
        self.run_all(jobs, |(path, url, dest, size)| {
            let store = Arc::clone(&store);
            async move { self.fetch(store, path, url, dest, size).await }
        })
        .await
    }

    async fn download_object(
        &self,
        src: &Location,
        target: &Path,
    ) -> Result<Transfer, StorageError> {
        let (store, key) = self.store(src)?;
        let url = src.url();
        let path = obj_path(&url, &key)?;
        let name = key.rsplit('/').next().unwrap_or(key.as_str());
        let dest = single_target(target, name);
        self.fetch(store, path, url, dest, None).await
    }

    /// One object to one file, retried as a whole. `size`: the object's size if a listing
    /// told it (a hint only: the object may have changed since).
    async fn fetch(
        &self,
        store: Arc<dyn ObjectStore>,
        path: ObjPath,
        url: String,
        dest: PathBuf,
        size: Option<u64>,
    ) -> Result<Transfer, StorageError> {
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| StorageError::io(parent, &e))?;
        }
        let tmp = temp_sibling(&dest);
        let result = self
            .retry(|| self.fetch_once(store.as_ref(), &path, &url, &tmp, size))
            .await;
        match result {
            Ok(bytes) => {
                tokio::fs::rename(&tmp, &dest)
                    .await
                    .map_err(|e| StorageError::io(&dest, &e))?;
                Ok(Transfer::one(bytes))
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// An object of at most `part_size` bytes in one request; a larger one (size and ETag
    /// from a fresh `HEAD`) in ranges of `part_size`, [`RANGES_IN_FLIGHT`] at once, each
    /// written at its offset. Ranges are conditional on the ETag: an object replaced
    /// meanwhile fails the attempt (which is retried) instead of mixing two versions.
    async fn fetch_once(
        &self,
        store: &dyn ObjectStore,
        path: &ObjPath,
        url: &str,
        tmp: &Path,
        size: Option<u64>,
    ) -> Result<u64, StorageError> {
        let part = self.part_size() as u64;
        if size.is_some_and(|s| s <= part) {
            return self.fetch_whole(store, path, url, tmp).await;
        }
        let meta = store.head(path).await.map_err(|e| self.remote(url, e))?;
        if meta.size <= part {
            return self.fetch_whole(store, path, url, tmp).await;
        }
        let file = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| StorageError::io(tmp, &e))?;
        file.set_len(meta.size)
            .await
            .map_err(|e| StorageError::io(tmp, &e))?;
        drop(file);
        let etag = meta.e_tag.as_deref();
        let ranges = (0..meta.size)
            .step_by(self.part_size())
            .map(|start| start..(start + part).min(meta.size));
        stream::iter(ranges)
            .map(|range| self.fetch_range(store, path, url, tmp, range, etag))
            .buffer_unordered(RANGES_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        Ok(meta.size)
    }

    /// The whole object, streamed to `tmp`.
    async fn fetch_whole(
        &self,
        store: &dyn ObjectStore,
        path: &ObjPath,
        url: &str,
        tmp: &Path,
    ) -> Result<u64, StorageError> {
        let got = store.get(path).await.map_err(|e| self.remote(url, e))?;
        let file = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| StorageError::io(tmp, &e))?;
        self.write_body(got, url, file, tmp).await
    }

    /// One range of the object, written at its offset of `tmp` (which exists).
    async fn fetch_range(
        &self,
        store: &dyn ObjectStore,
        path: &ObjPath,
        url: &str,
        tmp: &Path,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<(), StorageError> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            if_match: etag.map(str::to_string),
            ..GetOptions::default()
        };
        let got = store.get_opts(path, options).await.map_err(|e| match e {
            object_store::Error::Precondition { .. } => StorageError::Remote {
                url: url.to_string(),
                message: "the object changed during the download".into(),
                transient: true,
            },
            e => self.remote(url, e),
        })?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(tmp)
            .await
            .map_err(|e| StorageError::io(tmp, &e))?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| StorageError::io(tmp, &e))?;
        let n = self.write_body(got, url, file, tmp).await?;
        if n != range.end - range.start {
            return Err(StorageError::Remote {
                url: url.to_string(),
                message: format!(
                    "asked for bytes {}..{}, received {n}",
                    range.start, range.end
                ),
                transient: true,
            });
        }
        Ok(())
    }

    /// Streams a response body into `file` through a [`WRITE_BUF`] buffer; the bytes written.
    async fn write_body(
        &self,
        got: GetResult,
        url: &str,
        file: tokio::fs::File,
        tmp: &Path,
    ) -> Result<u64, StorageError> {
        let mut body = got.into_stream();
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUF, file);
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.remote(url, e))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| StorageError::io(tmp, &e))?;
            n += chunk.len() as u64;
        }
        file.flush().await.map_err(|e| StorageError::io(tmp, &e))?;
        Ok(n)
    }

    /// The multipart part size (at least S3's smallest part), also the download range size.
    fn part_size(&self) -> usize {
        self.inner.cfg.part_size.max(5 * 1024 * 1024)
    }

    /// One local file to its destination (object or shared-filesystem file).
    async fn put_file(&self, file: PathBuf, dst: Location) -> Result<Transfer, StorageError> {
        if let Location::File { path } = &dst {
            return copy_file(&file, path).await;
        }
        let (store, key) = self.store(&dst)?;
        let url = dst.url();
        let path = obj_path(&url, &key)?;
        let bytes = self
            .retry(|| self.put_once(store.as_ref(), &path, &url, &file))
            .await?;
        Ok(Transfer::one(bytes))
    }

    async fn put_once(
        &self,
        store: &dyn ObjectStore,
        path: &ObjPath,
        url: &str,
        file: &Path,
    ) -> Result<u64, StorageError> {
        let part_size = self.part_size();
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| StorageError::io(file, &e))?;
        let size = f
            .metadata()
            .await
            .map_err(|e| StorageError::io(file, &e))?
            .len();
        if size <= part_size as u64 {
            let mut data = Vec::with_capacity(size as usize);
            f.read_to_end(&mut data)
                .await
                .map_err(|e| StorageError::io(file, &e))?;
            let n = data.len() as u64;
            store
                .put(path, PutPayload::from(Bytes::from(data)))
                .await
                .map_err(|e| self.remote(url, e))?;
            return Ok(n);
        }
        let upload = store
            .put_multipart(path)
            .await
            .map_err(|e| self.remote(url, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let mut buf = vec![0u8; READ_BUF];
        let mut n = 0u64;
        loop {
            let read = match f.read(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::io(file, &e));
                }
            };
            if read == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(self.remote(url, e));
            }
            writer.write(&buf[..read]);
            n += read as u64;
        }
        writer.finish().await.map_err(|e| self.remote(url, e))?;
        Ok(n)
    }

    // ---- file:// ----

    async fn download_file(
        &self,
        src: &Location,
        path: &Path,
        target: &Path,
    ) -> Result<Transfer, StorageError> {
        let meta = match tokio::fs::metadata(path).await {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Err(StorageError::NotFound { url: src.url() });
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return Err(StorageError::Denied {
                    url: src.url(),
                    message: e.to_string(),
                });
            }
            Err(e) => return Err(StorageError::io(path, &e)),
        };
        let (dest, is_dir) = if meta.is_dir() {
            (target.to_path_buf(), true)
        } else {
            let name = file_name(path)?;
            (single_target(target, &name), false)
        };
        if try_symlink(path, &dest, is_dir).await? {
            return Ok(Transfer::one(0));
        }
        if !is_dir {
            return copy_file(path, &dest).await;
        }
        let files = walk_off_thread(path).await?;
        let jobs: Vec<(PathBuf, PathBuf)> = files
            .into_iter()
            .map(|(file, rel)| (file, dest.join(rel)))
            .collect();
        tokio::fs::create_dir_all(&dest)
            .await
            .map_err(|e| StorageError::io(&dest, &e))?;
        self.run_all(
            jobs,
            |(from, to)| async move { copy_file(&from, &to).await },
        )
        .await
    }

    // ---- plumbing ----

    /// Runs `f` over `jobs`, `concurrency` at once; stops at the first error.
    async fn run_all<J, F, Fut>(&self, jobs: Vec<J>, f: F) -> Result<Transfer, StorageError>
    where
        F: FnMut(J) -> Fut,
        Fut: Future<Output = Result<Transfer, StorageError>>,
    {
        stream::iter(jobs)
            .map(f)
            .buffer_unordered(self.inner.cfg.concurrency.max(1))
            .try_fold(Transfer::default(), |acc, t| async move { Ok(acc.add(t)) })
            .await
    }

    /// Retries transient failures `retries` times, 100 ms, 200 ms, 400 ms … apart.
    async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.inner.cfg.retries => {
                    let delay = Duration::from_millis(100u64 << attempt.min(6));
                    tracing::debug!(error = %e, attempt = attempt + 1, ?delay, "transient storage error, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn remote(&self, url: &str, err: object_store::Error) -> StorageError {
        StorageError::remote(&self.inner.cfg, url, err)
    }

    /// The client for a remote location, and the location's key.
    fn store(&self, loc: &Location) -> Result<(Arc<dyn ObjectStore>, String), StorageError> {
        let cfg = &self.inner.cfg;
        let (key, id) = match loc {
            Location::S3 { bucket, key } => (
                key,
                StoreKey {
                    scheme: "s3",
                    bucket: bucket.clone(),
                    region: cfg.region_or_default().to_string(),
                },
            ),
            Location::Cos {
                bucket,
                region,
                key,
            } => (
                key,
                StoreKey {
                    scheme: "cos",
                    bucket: bucket.clone(),
                    region: region.clone(),
                },
            ),
            Location::File { .. } => {
                return Err(StorageError::Config(format!(
                    "`{loc}` is not an object store location"
                )));
            }
        };
        let mut stores = self
            .inner
            .stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = stores.get(&id) {
            return Ok((Arc::clone(s), key.clone()));
        }
        let store: Arc<dyn ObjectStore> = Arc::new(build_store(cfg, &id)?);
        stores.insert(id, Arc::clone(&store));
        Ok((store, key.clone()))
    }
}

/// The S3 client of one bucket: bounded timeouts (a dead server fails within seconds), one
/// quick retry inside `object_store` (stale pooled connections), the rest in [`Storage`].
fn build_store(
    cfg: &StorageConfig,
    id: &StoreKey,
) -> Result<object_store::aws::AmazonS3, StorageError> {
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: usize::from(cfg.retries > 0),
        retry_timeout: Duration::from_secs(10),
    };
    let options = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        // No overall limit: a large object takes as long as it takes; a stalled one
        // trips the read timeout. That must outlast a server assembling a large multipart
        // upload before it answers (the s3s-fs test server takes over 30 s for 1 GiB).
        .with_timeout_disabled()
        .with_read_timeout(Duration::from_secs(300))
        .with_pool_idle_timeout(Duration::from_secs(20))
        .with_allow_http(cfg.allow_http && (id.scheme == "s3" || cfg.cos_endpoint.is_some()));
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&id.bucket)
        .with_region(&id.region)
        .with_retry(retry)
        .with_client_options(options);
    match (&cfg.access_key_id, &cfg.secret_access_key) {
        (Some(ak), Some(sk)) => {
            b = b.with_access_key_id(ak).with_secret_access_key(sk);
            if let Some(t) = &cfg.session_token {
                b = b.with_token(t);
            }
        }
        // Anonymous access (public buckets); never the instance-metadata service.
        _ => b = b.with_skip_signature(true),
    }
    if id.scheme == "cos" {
        b = match &cfg.cos_endpoint {
            Some(endpoint) => b
                .with_endpoint(endpoint.trim_end_matches('/'))
                .with_virtual_hosted_style_request(false),
            None => b
                .with_endpoint(cos_endpoint(&id.bucket, &id.region))
                .with_virtual_hosted_style_request(true),
        };
    } else if let Some(endpoint) = &cfg.endpoint {
        b = b
            .with_endpoint(endpoint.trim_end_matches('/'))
            .with_virtual_hosted_style_request(false);
    } else {
        b = b.with_virtual_hosted_style_request(true);
    }
    b.build()
        .map_err(|e| StorageError::Config(cfg.redact(&e.to_string())))
}

/// COS's S3-compatible endpoint of a bucket, virtual-hosted style.
pub(crate) fn cos_endpoint(bucket: &str, region: &str) -> String {
    format!("https://{bucket}.cos.{region}.myqcloud.com")
}

fn obj_path(url: &str, key: &str) -> Result<ObjPath, StorageError> {
    ObjPath::parse(key).map_err(|e| StorageError::Remote {
        url: url.to_string(),
        message: format!("unsupported object key: {e}"),
        transient: false,
    })
}

/// `target/NAME` when `target` ends with `/` or is an existing directory, else `target`.
fn single_target(target: &Path, name: &str) -> PathBuf {
    if target.to_string_lossy().ends_with('/') || target.is_dir() {
        target.join(name)
    } else {
        target.to_path_buf()
    }
}

/// A key's path below the target, if it stays there.
fn safe_relative(rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

fn file_name(path: &Path) -> Result<String, StorageError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| StorageError::Io {
            path: path.to_path_buf(),
            message: "no file name, or a name that is not UTF-8".into(),
        })
}

fn temp_sibling(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.kiln-part"))
}

/// [`walk`] on the blocking pool.
async fn walk_off_thread(root: &Path) -> Result<Vec<(PathBuf, String)>, StorageError> {
    let owned = root.to_path_buf();
    tokio::task::spawn_blocking(move || walk(&owned))
        .await
        .map_err(|e| StorageError::Io {
            path: root.to_path_buf(),
            message: e.to_string(),
        })?
}

/// Every regular file below `root` (following symlinks to files, not to directories), with
/// its `/`-separated path relative to `root`, sorted.
fn walk(root: &Path) -> Result<Vec<(PathBuf, String)>, StorageError> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| StorageError::io(&dir, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&dir, &e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                return Err(StorageError::Io {
                    path,
                    message: "the file name is not UTF-8".into(),
                });
            };
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry.file_type().map_err(|e| StorageError::io(&path, &e))?;
            if ft.is_dir() {
                dirs.push((path, child));
            } else if ft.is_file()
                || (ft.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
            {
                out.push((path, child));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Links `dest` to `src` if `dest` is free (or an empty directory, for a directory source).
/// `Ok(false)`: not possible, copy instead.
async fn try_symlink(src: &Path, dest: &Path, is_dir: bool) -> Result<bool, StorageError> {
    match tokio::fs::symlink_metadata(dest).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io(dest, &e)),
        Ok(m) if is_dir && m.is_dir() => {
            // An empty directory made ready for us is replaced; a non-empty one is merged into.
            if tokio::fs::remove_dir(dest).await.is_err() {
                return Ok(false);
            }
        }
        Ok(m) if !is_dir && (m.is_file() || m.is_symlink()) => {
            tokio::fs::remove_file(dest)
                .await
                .map_err(|e| StorageError::io(dest, &e))?;
        }
        Ok(_) => return Ok(false),
    }
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StorageError::io(parent, &e))?;
    }
    Ok(tokio::fs::symlink(src, dest).await.is_ok())
}

/// Copies one file (through a temporary sibling, renamed when complete).
async fn copy_file(from: &Path, to: &Path) -> Result<Transfer, StorageError> {
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StorageError::io(parent, &e))?;
    }
    let tmp = temp_sibling(to);
    let bytes = match tokio::fs::copy(from, &tmp).await {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StorageError::io(from, &e));
        }
    };
    tokio::fs::rename(&tmp, to)
        .await
        .map_err(|e| StorageError::io(to, &e))?;
    Ok(Transfer::one(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cos_endpoint_is_virtual_hosted() {
        assert_eq!(
            cos_endpoint("media-1250000000", "ap-guangzhou"),
            "https://media-1250000000.cos.ap-guangzhou.myqcloud.com"
        );
    }

    #[test]
    fn relative_keys_stay_below_target() {
        assert!(safe_relative("a/b.txt").is_some());
        assert!(safe_relative("a/../b").is_none());
        assert!(safe_relative("a//b").is_none());
        assert!(safe_relative("..").is_none());
    }
}
