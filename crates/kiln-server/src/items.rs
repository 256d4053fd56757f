//! Task items in the shell: reading `each_line` / `each_json` when a job is submitted, and
//! handing each dispatched attempt its item.
//!
//! The items of a job are stored once, with the job, in chunks ([`kiln_store::Store::insert_job`]);
//! neither the engine nor the driver keeps them. An attempt's item is read from its chunk
//! when it is dispatched, through a small cache of recently used chunks.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use kiln_core::engine::{Dispatch, JobId};
use kiln_core::items::{Item, MAX_ITEMS_BYTES, for_item};
use kiln_core::model::{ITEM_CHUNK, JobSpec, TaskSpec};
use kiln_core::spec::{SpecError, SpecErrors, attach_items, unread_items};
use kiln_storage::{Location, Storage};

use crate::driver::Driver;

/// Reads the items of every task that names a file or an object (`each_line`, `each_json`)
/// and attaches them to the spec (see [`attach_items`]). A storage URL is read with `storage`;
/// a path is read below `base` (the directory of the spec file), and refused without one: a
/// server cannot read the files of the machine a spec was written on.
pub async fn read_items(
    spec: &mut JobSpec,
    base: Option<&Path>,
    storage: Option<&Storage>,
) -> Result<(), SpecErrors> {
    let unread = unread_items(spec);
    if unread.is_empty() {
        return Ok(());
    }
    let mut read = Vec::new();
    let mut errors = Vec::new();
    for (t, at, path) in unread {
        let fail = |message: String, hint: Option<&str>| SpecError {
            path: path.clone(),
            message,
            hint: hint.map(str::to_string),
        };
        let bytes = if at.contains("://") {
            match (Location::parse(&at), storage) {
                (Err(e), _) => Err(fail(format!("cannot read `{at}`: {e}"), None)),
                (Ok(_), None) => Err(fail(
                    format!("cannot read `{at}`: no remote storage is configured here"),
                    None,
                )),
                (Ok(loc), Some(storage)) => storage
                    .read(&loc, MAX_ITEMS_BYTES)
                    .await
                    .map_err(|e| fail(format!("cannot read the items: {e}"), None)),
            }
        } else {
            match base {
                None => Err(fail(
                    format!("`{at}` is a path on the machine the spec was written on"),
                    Some(
                        "the server reads items only from storage (s3://, cos://, or file:// on a filesystem it mounts); `kiln submit` sends a local file's items along",
                    ),
                )),
                Some(dir) => read_local(&dir.join(&at))
                    .map_err(|e| fail(format!("cannot read `{at}`: {e}"), None)),
            }
        };
        match bytes {
            Ok(b) => read.push((t, b)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    attach_items(spec, read)
}

/// [`read_items`] from this process, without a server: paths below `base`, objects with the
/// storage configured by the standard AWS variables.
pub fn read_items_here(spec: &mut JobSpec, base: &Path) -> Result<(), SpecErrors> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            SpecErrors(vec![SpecError {
                path: String::new(),
                message: format!("cannot start the async runtime: {e}"),
                hint: None,
            }])
        })?;
    let storage = Storage::new(kiln_storage::StorageConfig::from_env());
    rt.block_on(read_items(spec, Some(base), Some(&storage)))
}

/// A local file of items, refusing one larger than [`MAX_ITEMS_BYTES`].
pub fn read_local(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("it is a directory".into());
    }
    if meta.len() > MAX_ITEMS_BYTES {
        return Err(format!(
            "it has {} bytes; at most {MAX_ITEMS_BYTES} are read",
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Drops the item lists of a stored job's spec: the store keeps them, the engine never needs
/// them.
pub fn without_item_lists(mut spec: JobSpec) -> JobSpec {
    for t in &mut spec.tasks {
        if let Some(items) = &mut t.items {
            items.list = None;
        }
    }
    spec
}

/// How many chunks the cache keeps.
const CACHED_CHUNKS: usize = 8;

/// Which chunk: job, task index, chunk number.
type ChunkKey = (JobId, usize, u32);

/// Recently used chunks of items, most recent first.
#[derive(Default)]
pub(crate) struct ItemCache {
    chunks: VecDeque<(ChunkKey, Arc<Vec<String>>)>,
}

impl ItemCache {
    fn get(&mut self, key: &ChunkKey) -> Option<Arc<Vec<String>>> {
        let pos = self.chunks.iter().position(|(k, _)| k == key)?;
        let entry = self.chunks.remove(pos)?;
        let chunk = Arc::clone(&entry.1);
        self.chunks.push_front(entry);
        Some(chunk)
    }

    fn put(&mut self, key: ChunkKey, chunk: Arc<Vec<String>>) {
        self.chunks.push_front((key, chunk));
        self.chunks.truncate(CACHED_CHUNKS);
    }

    /// Forgets a job's chunks (it was deleted).
    pub(crate) fn forget(&mut self, job: &str) {
        self.chunks.retain(|((j, _, _), _)| &**j != job);
    }
}

impl Driver {
    /// The task as the dispatched attempt runs it: over its item, if the task has items, and
    /// with the memory the engine gave the attempt (more than the task's after running out of
    /// it). An error says why the attempt cannot start.
    pub(crate) fn attempt_task(&mut self, d: &Dispatch) -> Result<TaskSpec, String> {
        let run = self
            .engine()
            .job(&d.job)
            .ok_or_else(|| format!("job {} is not loaded", d.job))?;
        let mut task = run
            .spec
            .tasks
            .get(d.task)
            .cloned()
            .ok_or_else(|| format!("job {} has no task {}", d.job, d.task))?;
        if let Some(att) = run.active_attempt(d.task, d.index)
            && att.memory > 0
        {
            task.resources.memory = att.memory;
        }
        if task.items.is_none() {
            return Ok(task);
        }
        let key = (d.job.clone(), d.task, d.index / ITEM_CHUNK);
        let chunk = match self.items.get(&key) {
            Some(c) => c,
            None => {
                let text = self
                    .store()
                    .item_chunk(&d.job, d.task, key.2)
                    .map_err(|e| format!("cannot read the items of {}: {e}", task.name))?
                    .ok_or_else(|| {
                        format!("the items of {} are missing from the store", task.name)
                    })?;
                let chunk = Arc::new(text.lines().map(str::to_string).collect::<Vec<_>>());
                self.items.put(key, Arc::clone(&chunk));
                chunk
            }
        };
        let line = chunk
            .get((d.index % ITEM_CHUNK) as usize)
            .ok_or_else(|| format!("{} has no item {}", task.name, d.index))?;
        let item = Item::parse(line)?;
        Ok(for_item(&task, &item))
    }
}
