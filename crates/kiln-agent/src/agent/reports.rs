//! The report buffer: events wait here until the server accepts them.
//!
//! Events are sent in batches: a batch goes out once its oldest event has waited
//! [`REPORT_LINGER`] or [`REPORT_BATCH`] events are queued, whichever comes first. A batch that
//! fails to send goes back to the front of the queue (order kept) and is retried after a capped
//! exponential backoff; nothing is dropped by the queue itself.

use std::collections::VecDeque;
use std::time::Duration;

use kiln_api::{AttemptEvent, AttemptEventKind};
use kiln_core::state::Outcome;
use tokio::time::Instant;

use super::backoff::Backoff;

/// At most this many events per `report` request.
pub const REPORT_BATCH: usize = 256;
/// How long the first event of a batch waits for company. Zero: a report goes out at once, and
/// events that happen while a `report` request is in flight make up the next batch — that
/// batching costs no latency, and an ended attempt frees its slot on the server sooner.
pub const REPORT_LINGER: Duration = Duration::ZERO;

/// Events not yet accepted by the server, in the order they happened.
#[derive(Debug)]
pub struct ReportQueue {
    /// Each event with the time it was queued.
    events: VecDeque<(AttemptEvent, Instant)>,
    max_batch: usize,
    linger: Duration,
    backoff: Backoff,
    /// No batch goes out before this (set after a failed send).
    retry_at: Option<Instant>,
}

impl Default for ReportQueue {
    fn default() -> Self {
        ReportQueue::new(REPORT_BATCH, REPORT_LINGER, Backoff::default())
    }
}

impl ReportQueue {
    pub fn new(max_batch: usize, linger: Duration, backoff: Backoff) -> Self {
        ReportQueue {
            events: VecDeque::new(),
            max_batch: max_batch.max(1),
            linger,
            backoff,
            retry_at: None,
        }
    }

    pub fn push(&mut self, event: AttemptEvent, now: Instant) {
        self.events.push_back((event, now));
    }

    /// Events waiting (not counting a batch taken and not yet settled).
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// When the next batch should go out (it may be in the past); `None` when nothing waits.
    pub fn due_at(&self) -> Option<Instant> {
        let (_, first) = self.events.front()?;
        let ready = if self.events.len() >= self.max_batch {
            *first
        } else {
            *first + self.linger
        };
        Some(match self.retry_at {
            Some(retry) => ready.max(retry),
            None => ready,
        })
    }

    /// Whether a batch should go out at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.due_at().is_some_and(|due| due <= now)
    }

    /// Takes the next batch (the oldest events, at most `max_batch`). Settle it with
    /// [`ReportQueue::accepted`] or [`ReportQueue::failed`].
    pub fn take_batch(&mut self) -> Vec<AttemptEvent> {
        let n = self.events.len().min(self.max_batch);
        self.events.drain(..n).map(|(event, _)| event).collect()
    }

    /// The server took the batch: the next failure starts the backoff over.
    pub fn accepted(&mut self) {
        self.backoff.reset();
        self.retry_at = None;
    }

    /// The batch could not be sent: it goes back to the front of the queue (in its order) and
    /// nothing is sent before the returned delay has passed.
    pub fn failed(&mut self, batch: Vec<AttemptEvent>, now: Instant) -> Duration {
        for event in batch.into_iter().rev() {
            self.events.push_front((event, now));
        }
        let delay = self.backoff.next_delay();
        self.retry_at = Some(now + delay);
        delay
    }
}

/// The report of how an attempt ended.
pub fn outcome_kind(outcome: Outcome) -> AttemptEventKind {
    match outcome {
        Outcome::Exited(code) => AttemptEventKind::Exited { code },
        Outcome::Signaled(signal) => AttemptEventKind::Signaled { signal },
        Outcome::TimedOut => AttemptEventKind::TimedOut,
        Outcome::Stopped => AttemptEventKind::Stopped,
        Outcome::StartFailed { message, resource } => {
            AttemptEventKind::StartFailed { message, resource }
        }
        Outcome::InputFailed(message) => AttemptEventKind::InputMappingFailed { message },
        Outcome::OutOfMemory { exit_code } => AttemptEventKind::OutOfMemory { code: exit_code },
        Outcome::ImageNotFound(image) => AttemptEventKind::ImageNotFound { image },
        Outcome::ImagePullFailed(message) => AttemptEventKind::ImagePullFailed { message },
        Outcome::OutputFailed { exit_code, message } => AttemptEventKind::OutputMappingFailed {
            code: exit_code,
            message,
        },
        // The host runtime never answers this; the wire has no such kind.
        Outcome::Lost(cause) => AttemptEventKind::StartFailed {
            message: format!("the attempt was lost ({cause:?})"),
            resource: true,
        },
    }
}

/// Whether an event ends its attempt.
pub fn is_end(kind: &AttemptEventKind) -> bool {
    !matches!(kind, AttemptEventKind::Started { .. })
}
