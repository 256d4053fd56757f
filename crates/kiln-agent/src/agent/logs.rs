//! Shipping captured output: the capture files of running and just-ended attempts are tailed
//! and their new bytes sent as [`LogChunk`]s with byte offsets.
//!
//! [`LogTails`] knows, per attempt and stream, how far the server has acknowledged. A round is
//! [`LogTails::collect`] (read what is new, up to a byte budget, without moving the offsets),
//! one `append_logs` request, then [`LogTails::commit`] once the server took it. A failed request
//! is simply collected again later from the same offsets: re-sending a chunk is harmless.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use kiln_api::{AttemptKey, LogChunk, STDERR, STDOUT};

/// At most this many bytes of output per chunk.
pub const LOG_CHUNK: usize = 256 * 1024;
/// At most this many bytes of output per `append_logs` request (base64 makes the body about a
/// third bigger; this keeps it under the 2 MB a default axum body limit allows).
pub const LOG_REQUEST_BYTES: usize = 1024 * 1024;

/// Cuts `data`, which starts at byte `offset` of its stream, into chunks of at most `max_chunk`
/// bytes, each with its own offset.
pub fn chunks(
    key: &AttemptKey,
    stream: &str,
    offset: u64,
    data: &[u8],
    max_chunk: usize,
) -> Vec<LogChunk> {
    let mut at = offset;
    data.chunks(max_chunk.max(1))
        .map(|piece| {
            let chunk = LogChunk::new(key.clone(), stream, at, piece);
            at += piece.len() as u64;
            chunk
        })
        .collect()
}

#[derive(Debug)]
struct StreamTail {
    name: &'static str,
    path: PathBuf,
    /// Open once the file exists (capture files are created lazily).
    file: Option<File>,
    /// Bytes the server has acknowledged.
    offset: u64,
    /// Reading failed: the stream is given up.
    broken: bool,
}

impl StreamTail {
    fn new(name: &'static str, path: PathBuf) -> Self {
        StreamTail {
            name,
            path,
            file: None,
            offset: 0,
            broken: false,
        }
    }

    /// Up to `max` bytes from the acknowledged offset, and whether they reach the current end
    /// of the file.
    fn read(&mut self, max: usize) -> io::Result<(Vec<u8>, bool)> {
        if self.broken {
            return Ok((Vec::new(), true));
        }
        let file = match &self.file {
            Some(f) => f,
            None => match File::open(&self.path) {
                Ok(f) => self.file.insert(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), true)),
                Err(e) => return Err(e),
            },
        };
        let len = file.metadata()?.len();
        let available = len.saturating_sub(self.offset);
        if available == 0 {
            return Ok((Vec::new(), true));
        }
        let want = usize::try_from(available).unwrap_or(usize::MAX).min(max);
        let mut buf = vec![0u8; want];
        let mut n = 0;
        while n < want {
            match file.read_at(&mut buf[n..], self.offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(n);
        Ok((buf, n as u64 >= available))
    }
}

#[derive(Debug)]
struct Tail {
    streams: [StreamTail; 2],
    /// The attempt has ended: its files no longer grow.
    ended: bool,
}

/// What one round read: the chunks to send, and what to record once they are accepted.
#[derive(Debug, Default)]
pub struct LogBatch {
    pub chunks: Vec<LogChunk>,
    /// (attempt, stream number, new acknowledged offset).
    advances: Vec<(AttemptKey, usize, u64)>,
    /// Ended attempts whose output is complete once this batch is accepted.
    done: Vec<AttemptKey>,
    /// Output was left for a next round (the byte budget ran out).
    pub more: bool,
}

impl LogBatch {
    /// Nothing to send and nothing to settle.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.done.is_empty()
    }

    /// Takes the chunks out to send them; commit the batch afterwards.
    pub fn take_chunks(&mut self) -> Vec<LogChunk> {
        std::mem::take(&mut self.chunks)
    }
}

/// An ended attempt whose output has all been shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedTail {
    pub key: AttemptKey,
    /// Its capture files that exist.
    pub files: Vec<PathBuf>,
}

/// The output streams being shipped, per attempt.
#[derive(Debug, Default)]
pub struct LogTails {
    tails: BTreeMap<AttemptKey, Tail>,
    /// Running attempts are visited starting after this one, so that a chatty attempt does not
    /// keep the others waiting.
    cursor: Option<AttemptKey>,
}

impl LogTails {
    pub fn new() -> Self {
        LogTails::default()
    }

    /// Starts tailing an attempt's capture files (they need not exist yet).
    pub fn track(&mut self, key: AttemptKey, stdout: PathBuf, stderr: PathBuf) {
        self.tails.insert(
            key,
            Tail {
                streams: [
                    StreamTail::new(STDOUT, stdout),
                    StreamTail::new(STDERR, stderr),
                ],
                ended: false,
            },
        );
    }

    /// The attempt has ended: what is left of its output is shipped first, and it is done once
    /// all of it is. Returns whether the attempt is tracked.
    pub fn finish(&mut self, key: &AttemptKey) -> bool {
        match self.tails.get_mut(key) {
            Some(tail) => {
                tail.ended = true;
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.tails.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tails.is_empty()
    }

    /// Whether an ended attempt still waits for its output to ship.
    pub fn has_ended(&self) -> bool {
        self.tails.values().any(|t| t.ended)
    }

    /// The acknowledged offsets (stdout, stderr) of an attempt.
    pub fn offsets(&self, key: &AttemptKey) -> Option<[u64; 2]> {
        self.tails
            .get(key)
            .map(|t| [t.streams[0].offset, t.streams[1].offset])
    }

    /// Reads new output, at most `budget` bytes: ended attempts first, then (with
    /// `running_too`) running ones in turn. Offsets move only on [`LogTails::commit`].
    pub fn collect(&mut self, budget: usize, running_too: bool) -> LogBatch {
        let mut batch = LogBatch::default();
        let mut budget = budget;
        for (key, tail) in self.tails.iter_mut().filter(|(_, t)| t.ended) {
            if budget == 0 {
                batch.more = true;
                break;
            }
            visit(key, tail, &mut budget, &mut batch);
        }
        if !running_too {
            return batch;
        }
        let cursor = self.cursor.take();
        let (after, upto) = match &cursor {
            Some(c) => (
                self.tails.range_mut((Bound::Excluded(c), Bound::Unbounded)),
                Some(c),
            ),
            None => (self.tails.range_mut::<AttemptKey, _>(..), None),
        };
        let mut last = None;
        for (key, tail) in after.filter(|(_, t)| !t.ended) {
            if budget == 0 {
                batch.more = true;
                break;
            }
            visit(key, tail, &mut budget, &mut batch);
            last = Some(key.clone());
        }
        if let Some(c) = upto
            && budget > 0
        {
            for (key, tail) in self
                .tails
                .range_mut::<AttemptKey, _>(..=c)
                .filter(|(_, t)| !t.ended)
            {
                if budget == 0 {
                    batch.more = true;
                    break;
                }
                visit(key, tail, &mut budget, &mut batch);
                last = Some(key.clone());
            }
        }
        if batch.more {
            self.cursor = last;
        }
        batch
    }

    /// Records that the server has `batch` (or refused it for good): offsets move past it, and
    /// the ended attempts it completes are dropped and returned.
    pub fn commit(&mut self, batch: LogBatch) -> Vec<ShippedTail> {
        for (key, stream, offset) in batch.advances {
            if let Some(tail) = self.tails.get_mut(&key) {
                let s = &mut tail.streams[stream];
                s.offset = s.offset.max(offset);
            }
        }
        batch
            .done
            .into_iter()
            .filter_map(|key| {
                let tail = self.tails.remove(&key)?;
                let files = tail
                    .streams
                    .into_iter()
                    .filter(|s| s.file.is_some())
                    .map(|s| s.path)
                    .collect();
                Some(ShippedTail { key, files })
            })
            .collect()
    }
}

fn visit(key: &AttemptKey, tail: &mut Tail, budget: &mut usize, batch: &mut LogBatch) {
    let mut complete = true;
    for (i, stream) in tail.streams.iter_mut().enumerate() {
        if *budget == 0 {
            complete = false;
            batch.more = true;
            break;
        }
        match stream.read(*budget) {
            Ok((data, at_end)) => {
                if !at_end {
                    complete = false;
                    batch.more = true;
                }
                if !data.is_empty() {
                    *budget = budget.saturating_sub(data.len());
                    batch
                        .chunks
                        .extend(chunks(key, stream.name, stream.offset, &data, LOG_CHUNK));
                    batch
                        .advances
                        .push((key.clone(), i, stream.offset + data.len() as u64));
                }
            }
            Err(e) => {
                tracing::warn!(
                    "cannot read {} of {key} ({}): {e}; its output is not shipped",
                    stream.name,
                    stream.path.display()
                );
                stream.broken = true;
            }
        }
    }
    if tail.ended && complete {
        batch.done.push(key.clone());
    }
}
