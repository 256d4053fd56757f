//! States, reasons, outcomes and the task-instance state machine.
//!
//! Jobs, tasks and task instances share Tencent BatchCompute's state names. Every state but
//! `RUNNING`/`SUCCEED` carries a machine-readable [`Reason`] so a user can always ask why.
//! The instance state machine has exactly one transition function, [`Instance::transition`];
//! everything that changes an instance goes through it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of a job, a task or a task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Accepted and stored, not yet looked at by the engine.
    Submitted,
    /// Waiting on dependencies.
    Pending,
    /// Ready, waiting for capacity.
    Runnable,
    /// Instance being created, inputs being staged.
    Starting,
    Running,
    Succeed,
    Failed,
    FailedInterrupted,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 8] = [
        State::Submitted,
        State::Pending,
        State::Runnable,
        State::Starting,
        State::Running,
        State::Succeed,
        State::Failed,
        State::FailedInterrupted,
    ];

    /// The terminal set, defined once: nothing leaves these states except a user's retry.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Succeed | State::Failed | State::FailedInterrupted
        )
    }

    /// Starting or running: holds capacity on a node.
    pub fn is_active(self) -> bool {
        matches!(self, State::Starting | State::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Submitted => "SUBMITTED",
            State::Pending => "PENDING",
            State::Runnable => "RUNNABLE",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Succeed => "SUCCEED",
            State::Failed => "FAILED",
            State::FailedInterrupted => "FAILED_INTERRUPTED",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`State::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// Why something is in the state it is in. Rendered as `CODE` or `CODE detail`
/// (e.g. `WAITING_ON_DEPENDENCY split`, `EXIT_CODE 3`); [`FromStr`] parses the same text back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Waiting for an upstream task (or an upstream instance, `render[3]`).
    WaitingOnDependency(String),
    /// The task's `max_concurrency` is reached.
    ConcurrencyLimit,
    /// No node (of the named pool) has room.
    NoCapacity(String),
    /// An upstream task (or instance) ended so that this can never start.
    UpstreamFailed(String),
    /// The attempt ran longer than the task's `timeout`.
    TimedOut,
    /// The node running the attempt was lost.
    NodeLost,
    /// The runner stopped (Ctrl-C, crash) while the attempt ran; it is run again.
    Interrupted,
    /// A user terminated the job or instance.
    TerminatedByUser,
    /// The command exited with this non-zero code.
    ExitCode(i32),
    /// The command was killed by this signal.
    Signal(i32),
    /// The instance could not be started (e.g. the program does not exist).
    StartFailed(String),
    /// Stopped because another instance of the task failed for good (`on_failure: terminate`).
    SiblingFailed(u32),
    /// A task's reason: this instance failed for good.
    InstanceFailed(u32),
    /// A job's reason: this task failed.
    TaskFailed(String),
    /// Remote storage could not be made available before the command ran (`URL: cause`).
    InputMappingFailed(String),
    /// Outputs or logs could not be uploaded after the command ended (`URL: cause`).
    OutputMappingFailed(String),
    /// The instance used more memory than its instance type (or `resources.memory`) allows.
    OutOfMemory,
    /// The task's Docker image is not on the node and could not be pulled.
    ImageNotFound(String),
    /// The registry refused to give the task's Docker image (`REF: cause`, e.g. `unauthorized`
    /// when its credentials are missing or wrong).
    ImagePullFailed(String),
    /// The job's `timeout` expired before this finished.
    JobTimedOut,
}

impl Reason {
    /// The machine-readable code, without detail.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::WaitingOnDependency(_) => "WAITING_ON_DEPENDENCY",
            Reason::ConcurrencyLimit => "CONCURRENCY_LIMIT",
            Reason::NoCapacity(_) => "NO_CAPACITY",
            Reason::UpstreamFailed(_) => "UPSTREAM_FAILED",
            Reason::TimedOut => "TIMED_OUT",
            Reason::NodeLost => "NODE_LOST",
            Reason::Interrupted => "INTERRUPTED",
            Reason::TerminatedByUser => "TERMINATED_BY_USER",
            Reason::ExitCode(_) => "EXIT_CODE",
            Reason::Signal(_) => "KILLED_BY_SIGNAL",
            Reason::StartFailed(_) => "START_FAILED",
            Reason::SiblingFailed(_) => "SIBLING_FAILED",
            Reason::InstanceFailed(_) => "INSTANCE_FAILED",
            Reason::TaskFailed(_) => "TASK_FAILED",
            Reason::InputMappingFailed(_) => "INPUT_MAPPING_FAILED",
            Reason::OutputMappingFailed(_) => "OUTPUT_MAPPING_FAILED",
            Reason::OutOfMemory => "OUT_OF_MEMORY",
            Reason::ImageNotFound(_) => "IMAGE_NOT_FOUND",
            Reason::ImagePullFailed(_) => "IMAGE_PULL_FAILED",
            Reason::JobTimedOut => "JOB_TIMED_OUT",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            Reason::WaitingOnDependency(s)
            | Reason::NoCapacity(s)
            | Reason::UpstreamFailed(s)
            | Reason::StartFailed(s)
            | Reason::TaskFailed(s)
            | Reason::InputMappingFailed(s)
            | Reason::OutputMappingFailed(s)
            | Reason::ImageNotFound(s)
            | Reason::ImagePullFailed(s) => write!(f, "{code} {s}"),
            Reason::ExitCode(n) | Reason::Signal(n) => write!(f, "{code} {n}"),
            Reason::SiblingFailed(n) | Reason::InstanceFailed(n) => write!(f, "{code} {n}"),
            Reason::ConcurrencyLimit
            | Reason::TimedOut
            | Reason::NodeLost
            | Reason::Interrupted
            | Reason::OutOfMemory
            | Reason::JobTimedOut
            | Reason::TerminatedByUser => f.write_str(code),
        }
    }
}

/// Text that is not a reason [`Reason`]'s `Display` could have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason `{0}`")]
pub struct UnknownReason(pub String);

impl FromStr for Reason {
    type Err = UnknownReason;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownReason(s.to_string());
        let (code, detail) = match s.split_once(' ') {
            Some((c, d)) => (c, Some(d)),
            None => (s, None),
        };
        let text = || detail.map(str::to_string).ok_or_else(bad);
        let int = || detail.and_then(|d| d.parse::<i32>().ok()).ok_or_else(bad);
        let uint = || detail.and_then(|d| d.parse::<u32>().ok()).ok_or_else(bad);
        let bare = |r: Reason| if detail.is_none() { Ok(r) } else { Err(bad()) };
        match code {
            "WAITING_ON_DEPENDENCY" => text().map(Reason::WaitingOnDependency),
            "CONCURRENCY_LIMIT" => bare(Reason::ConcurrencyLimit),
            "NO_CAPACITY" => text().map(Reason::NoCapacity),
            "UPSTREAM_FAILED" => text().map(Reason::UpstreamFailed),
            "TIMED_OUT" => bare(Reason::TimedOut),
            "NODE_LOST" => bare(Reason::NodeLost),
            "INTERRUPTED" => bare(Reason::Interrupted),
            "TERMINATED_BY_USER" => bare(Reason::TerminatedByUser),
            "EXIT_CODE" => int().map(Reason::ExitCode),
            "KILLED_BY_SIGNAL" => int().map(Reason::Signal),
            "START_FAILED" => text().map(Reason::StartFailed),
            "SIBLING_FAILED" => uint().map(Reason::SiblingFailed),
            "INSTANCE_FAILED" => uint().map(Reason::InstanceFailed),
            "TASK_FAILED" => text().map(Reason::TaskFailed),
            "INPUT_MAPPING_FAILED" => text().map(Reason::InputMappingFailed),
            "OUTPUT_MAPPING_FAILED" => text().map(Reason::OutputMappingFailed),
            "OUT_OF_MEMORY" => bare(Reason::OutOfMemory),
            "IMAGE_NOT_FOUND" => text().map(Reason::ImageNotFound),
            "IMAGE_PULL_FAILED" => text().map(Reason::ImagePullFailed),
            "JOB_TIMED_OUT" => bare(Reason::JobTimedOut),
            _ => Err(bad()),
        }
    }
}

/// How an attempt ended, as observed by a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this code (0 = success).
    Exited(i32),
    /// The process was killed by this signal (not by Kiln).
    Signaled(i32),
    /// Kiln killed it because it ran past its timeout.
    TimedOut,
    /// Kiln killed it because it was asked to stop (terminate, sibling failure).
    Stopped,
    /// It could not be started. `resource` is true when the fault lies with the node or
    /// instance creation (retried under `resource_retries`), false when it lies with the task
    /// (e.g. the program does not exist; retried under `retries`).
    StartFailed { message: String, resource: bool },
    /// The node (or the runner) went away while the attempt ran.
    Lost(LossCause),
    /// An input could not be made available; the command never ran (`URL: cause`).
    InputFailed(String),
    /// The command ended (with this exit code, if it exited) but its outputs or logs could not
    /// be uploaded (`URL: cause`).
    OutputFailed {
        exit_code: Option<i32>,
        message: String,
    },
    /// The container was killed for using more memory than its limit (exit code kept, usually
    /// 137).
    OutOfMemory { exit_code: i32 },
    /// The Docker image (this reference) is not on the node and could not be pulled.
    ImageNotFound(String),
    /// The registry refused the pull of the Docker image (`REF: cause`, e.g. `REF:
    /// unauthorized`).
    ImagePullFailed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// The node stopped answering.
    NodeLost,
    /// The local runner was stopped (Ctrl-C, kill) and later resumed: not the task's fault,
    /// and not counted against any retry budget.
    Interrupted,
}

/// The retry budgets an instance is judged by (from its task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub resource_retries: u32,
    /// More memory after running out of it (`on_out_of_memory`).
    pub oom: Option<OomGrowth>,
}

/// How an instance's memory grows after it ran out, without spending `retries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomGrowth {
    /// Attempts that may get more memory.
    pub retries: u32,
    /// In thousandths (2000 = twice).
    pub factor_milli: u32,
    /// The task's own memory, what the first attempt gets.
    pub base: u64,
    /// The most an attempt may get: `max`, and what the largest node offers.
    pub cap: u64,
}

impl OomGrowth {
    /// The memory after `current` ran out, if it can grow.
    pub fn grow(&self, current: u64) -> Option<u64> {
        let grown = u128::from(current) * u128::from(self.factor_milli) / 1000;
        let grown = u64::try_from(grown).unwrap_or(u64::MAX).min(self.cap);
        (grown > current).then_some(grown)
    }
}

/// The persisted record of one task instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub state: State,
    pub reason: Option<Reason>,
    /// The current (or last) attempt, 1-based; 0 before the first dispatch.
    pub attempt: u32,
    /// Application-failure retries used so far.
    pub retries_used: u32,
    /// Resource retries used so far.
    pub resource_retries_used: u32,
    /// Exit code of the last attempt that exited.
    pub exit_code: Option<i32>,
    /// Why it is being stopped, if Kiln asked it to stop (desired state apart from observed).
    pub stop: Option<Reason>,
    /// The memory its next attempt gets after running out (`on_out_of_memory`); 0: the
    /// task's.
    pub memory: u64,
    /// Attempts that got more memory so far.
    pub oom_retries_used: u32,
}

impl Instance {
    /// A ready instance that has never run.
    pub fn fresh() -> Self {
        Instance {
            state: State::Runnable,
            reason: None,
            attempt: 0,
            retries_used: 0,
            resource_retries_used: 0,
            exit_code: None,
            stop: None,
            memory: 0,
            oom_retries_used: 0,
        }
    }
}

/// What may happen to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceEvent {
    /// The scheduler placed it: a new attempt begins.
    Dispatch,
    /// The runtime reports the process started.
    Started,
    /// The runtime reports the attempt ended.
    Ended(Outcome),
    /// Kiln wants it to stop, for this reason (terminate, sibling or upstream failure).
    Stop(Reason),
    /// A user retries the failed job: a failed instance is queued again with fresh budgets.
    Retry,
}

/// An event that does not apply to the instance's current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition: {event:?} in state {state}")]
pub struct IllegalTransition {
    pub state: State,
    pub event: InstanceEvent,
}

impl Instance {
    /// The one transition function of the instance state machine.
    ///
    /// Returns the next record. A stop asked of an active instance only records the wish
    /// (`stop`); the instance stays active until its runtime reports the end.
    pub fn transition(
        &self,
        event: &InstanceEvent,
        policy: RetryPolicy,
    ) -> Result<Instance, IllegalTransition> {
        let illegal = || IllegalTransition {
            state: self.state,
            event: event.clone(),
        };
        let mut next = self.clone();
        match (self.state, event) {
            (State::Runnable, InstanceEvent::Dispatch) => {
                next.state = State::Starting;
                next.reason = None;
                next.attempt += 1;
            }
            (State::Starting, InstanceEvent::Started) => next.state = State::Running,
            (State::Starting | State::Running, InstanceEvent::Ended(outcome)) => {
                next.exit_code = match outcome {
                    Outcome::Exited(code) => Some(*code),
                    Outcome::OutputFailed { exit_code, .. } => *exit_code,
                    Outcome::OutOfMemory { exit_code } => Some(*exit_code),
                    _ => None,
                };
                self.end(&mut next, outcome, policy);
            }
            (State::Pending | State::Runnable, InstanceEvent::Stop(reason)) => {
                next.state = State::Failed;
                next.reason = Some(reason.clone());
                next.stop = Some(reason.clone());
            }
            (State::Starting | State::Running, InstanceEvent::Stop(reason)) => {
                if next.stop.is_none() {
                    next.stop = Some(reason.clone());
                }
            }
            (State::Failed | State::FailedInterrupted, InstanceEvent::Retry) => {
                next.state = State::Runnable;
                next.retries_used = 0;
                next.resource_retries_used = 0;
                next.oom_retries_used = 0;
                next.stop = None;
            }
            (
                State::Submitted
                | State::Pending
                | State::Runnable
                | State::Starting
                | State::Running
                | State::Succeed
                | State::Failed
                | State::FailedInterrupted,
                InstanceEvent::Dispatch
                | InstanceEvent::Started
                | InstanceEvent::Ended(_)
                | InstanceEvent::Stop(_)
                | InstanceEvent::Retry,
            ) => return Err(illegal()),
        }
        Ok(next)
    }

    fn end(&self, next: &mut Instance, outcome: &Outcome, policy: RetryPolicy) {
        enum Fault {
            App(Reason),
            Resource(Reason),
            Free(Reason),
            /// Out of memory: more memory if the task allows, else an application failure.
            Oom,
        }
        let fault = match outcome {
            Outcome::Exited(0) => {
                next.state = State::Succeed;
                next.reason = None;
                return;
            }
            Outcome::Exited(code) => Fault::App(Reason::ExitCode(*code)),
            Outcome::Signaled(sig) => Fault::App(Reason::Signal(*sig)),
            Outcome::TimedOut => Fault::App(Reason::TimedOut),
            Outcome::Stopped => Fault::App(self.stop.clone().unwrap_or(Reason::Signal(SIGKILL))),
            Outcome::StartFailed { message, resource } => {
                let reason = Reason::StartFailed(message.clone());
                if *resource {
                    Fault::Resource(reason)
                } else {
                    Fault::App(reason)
                }
            }
            Outcome::InputFailed(m) => Fault::App(Reason::InputMappingFailed(m.clone())),
            Outcome::OutputFailed { message, .. } => {
                Fault::App(Reason::OutputMappingFailed(message.clone()))
            }
            Outcome::OutOfMemory { .. } => Fault::Oom,
            Outcome::ImageNotFound(image) => Fault::App(Reason::ImageNotFound(image.clone())),
            Outcome::ImagePullFailed(why) => Fault::App(Reason::ImagePullFailed(why.clone())),
            Outcome::Lost(LossCause::NodeLost) => Fault::Resource(Reason::NodeLost),
            Outcome::Lost(LossCause::Interrupted) => Fault::Free(Reason::Interrupted),
        };
        // A stop that was asked for wins over any retry: the instance ends for the stop's reason.
        if let Some(stop) = &self.stop {
            next.state = State::Failed;
            next.reason = Some(stop.clone());
            return;
        }
        let fault = match fault {
            Fault::Oom => {
                let grown = policy.oom.and_then(|g| {
                    let current = if self.memory > 0 { self.memory } else { g.base };
                    g.grow(current)
                        .filter(|_| self.oom_retries_used < g.retries)
                });
                if let Some(memory) = grown {
                    next.memory = memory;
                    next.oom_retries_used += 1;
                    next.state = State::Runnable;
                    next.reason = Some(Reason::OutOfMemory);
                    return;
                }
                Fault::App(Reason::OutOfMemory)
            }
            other => other,
        };
        let (retry, reason) = match fault {
            Fault::Oom => (false, Reason::OutOfMemory),
            Fault::App(r) => {
                let retry = self.retries_used < policy.retries;
                if retry {
                    next.retries_used += 1;
                }
                (retry, r)
            }
            Fault::Resource(r) => {
                let retry = self.resource_retries_used < policy.resource_retries;
                if retry {
                    next.resource_retries_used += 1;
                }
                (retry, r)
            }
            Fault::Free(r) => (true, r),
        };
        next.state = if retry {
            State::Runnable
        } else {
            State::Failed
        };
        next.reason = Some(reason);
    }
}

/// SIGKILL's number on every platform Kiln runs on.
const SIGKILL: i32 = 9;

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        retries: 1,
        resource_retries: 1,
        oom: None,
    };

    fn run(events: &[InstanceEvent]) -> Result<Instance, IllegalTransition> {
        events
            .iter()
            .try_fold(Instance::fresh(), |i, e| i.transition(e, POLICY))
    }

    use InstanceEvent::*;

    #[test]
    fn success_path() {
        let i = run(&[Dispatch, Started, Ended(Outcome::Exited(0))]).unwrap();
        assert_eq!((i.state, i.attempt, i.reason), (State::Succeed, 1, None));
    }

    #[test]
    fn app_failure_retries_then_fails() {
        let fail = Ended(Outcome::Exited(3));
        let i = run(&[Dispatch, Started, fail.clone()]).unwrap();
        assert_eq!(i.state, State::Runnable);
        assert_eq!(i.reason, Some(Reason::ExitCode(3)));
        let i = run(&[Dispatch, Started, fail.clone(), Dispatch, Started, fail]).unwrap();
        assert_eq!((i.state, i.attempt), (State::Failed, 2));
        assert_eq!(i.exit_code, Some(3));
    }

    #[test]
    fn node_loss_uses_resource_retries_only() {
        let lost = Ended(Outcome::Lost(LossCause::NodeLost));
        let i = run(&[Dispatch, lost.clone(), Dispatch, Started]).unwrap();
        assert_eq!((i.retries_used, i.resource_retries_used), (0, 1));
        let i = i.transition(&lost, POLICY).unwrap();
        assert_eq!((i.state, i.reason), (State::Failed, Some(Reason::NodeLost)));
    }

    #[test]
    fn interruption_is_free() {
        let int = Ended(Outcome::Lost(LossCause::Interrupted));
        let i = run(&[Dispatch, int.clone(), Dispatch, int.clone(), Dispatch, int]).unwrap();
        assert_eq!((i.state, i.attempt), (State::Runnable, 3));
        assert_eq!((i.retries_used, i.resource_retries_used), (0, 0));
    }

    #[test]
    fn stop_of_active_instance_waits_for_the_end_and_skips_retries() {
        let i = run(&[Dispatch, Started, Stop(Reason::TerminatedByUser)]).unwrap();
        assert_eq!(i.state, State::Running);
        let i = i.transition(&Ended(Outcome::Stopped), POLICY).unwrap();
        assert_eq!(
            (i.state, i.reason),
            (State::Failed, Some(Reason::TerminatedByUser))
        );
    }

    #[test]
    fn stopped_instance_that_succeeded_anyway_is_succeed() {
        let i = run(&[
            Dispatch,
            Stop(Reason::SiblingFailed(2)),
            Ended(Outcome::Exited(0)),
        ])
        .unwrap();
        assert_eq!(i.state, State::Succeed);
    }

    #[test]
    fn retry_requeues_a_failed_instance_with_fresh_budgets() {
        let fail = Ended(Outcome::Exited(3));
        let i = run(&[Dispatch, fail.clone(), Dispatch, fail, Retry]).unwrap();
        assert_eq!(
            (i.state, i.attempt, i.retries_used),
            (State::Runnable, 2, 0)
        );
        assert_eq!(i.reason, Some(Reason::ExitCode(3)));
        assert_eq!(i.transition(&Dispatch, POLICY).unwrap().attempt, 3);
        assert!(run(&[Dispatch, Retry]).is_err());
        assert!(run(&[Dispatch, Ended(Outcome::Exited(0)), Retry]).is_err());
    }

    #[test]
    fn out_of_memory_keeps_the_exit_code_and_spends_a_retry() {
        let oom = Ended(Outcome::OutOfMemory { exit_code: 137 });
        let i = run(&[Dispatch, Started, oom.clone()]).unwrap();
        assert_eq!(i.state, State::Runnable);
        assert_eq!(i.retries_used, 1);
        let i = run(&[Dispatch, Started, oom.clone(), Dispatch, Started, oom]).unwrap();
        assert_eq!((i.state, i.exit_code), (State::Failed, Some(137)));
        assert_eq!(i.reason, Some(Reason::OutOfMemory));
    }

    #[test]
    fn out_of_memory_grows_memory_without_spending_retries() {
        let policy = RetryPolicy {
            oom: Some(OomGrowth {
                retries: 2,
                factor_milli: 2000,
                base: 64 << 20,
                cap: 200 << 20,
            }),
            ..POLICY
        };
        let oom = Ended(Outcome::OutOfMemory { exit_code: 137 });
        let step = |i: Instance, e: &InstanceEvent| i.transition(e, policy).unwrap();
        let i = [Dispatch, Started, oom.clone()]
            .iter()
            .fold(Instance::fresh(), step);
        assert_eq!(
            (i.state, i.memory, i.retries_used),
            (State::Runnable, 128 << 20, 0)
        );
        assert_eq!(i.reason, Some(Reason::OutOfMemory));
        // The cap stops the growth: 256MiB would pass 200MiB, so the next gets 200MiB.
        let i = [Dispatch, oom.clone()].iter().fold(i, step);
        assert_eq!(
            (i.memory, i.oom_retries_used, i.retries_used),
            (200 << 20, 2, 0)
        );
        // The growth budget is spent: an ordinary failure, under `retries`.
        let i = [Dispatch, oom.clone()].iter().fold(i, step);
        assert_eq!(
            (i.state, i.retries_used, i.memory),
            (State::Runnable, 1, 200 << 20)
        );
        let i = [Dispatch, oom.clone()].iter().fold(i, step);
        assert_eq!(
            (i.state, i.reason),
            (State::Failed, Some(Reason::OutOfMemory))
        );
        // At the cap already, memory cannot grow: an ordinary failure too.
        let capped = RetryPolicy {
            oom: policy.oom.map(|g| OomGrowth { cap: 64 << 20, ..g }),
            ..policy
        };
        let i = [Dispatch, oom.clone()]
            .iter()
            .try_fold(Instance::fresh(), |i, e| i.transition(e, capped))
            .unwrap();
        assert_eq!((i.retries_used, i.memory), (1, 0));
        // A stop asked for wins over growth.
        let i = [Dispatch, Stop(Reason::JobTimedOut), oom]
            .iter()
            .fold(Instance::fresh(), step);
        assert_eq!(
            (i.state, i.reason),
            (State::Failed, Some(Reason::JobTimedOut))
        );
    }

    #[test]
    fn illegal_transitions_are_errors() {
        assert!(run(&[Started]).is_err());
        assert!(run(&[Dispatch, Dispatch]).is_err());
        assert!(
            run(&[
                Dispatch,
                Ended(Outcome::Exited(0)),
                Ended(Outcome::Exited(0))
            ])
            .is_err()
        );
        assert!(run(&[Stop(Reason::TerminatedByUser), Dispatch]).is_err());
    }

    #[test]
    fn reasons_round_trip_through_text() {
        let all = [
            Reason::WaitingOnDependency("split".into()),
            Reason::ConcurrencyLimit,
            Reason::NoCapacity("pool a".into()),
            Reason::UpstreamFailed("render[3]".into()),
            Reason::TimedOut,
            Reason::NodeLost,
            Reason::Interrupted,
            Reason::TerminatedByUser,
            Reason::ExitCode(-3),
            Reason::Signal(9),
            Reason::StartFailed("no such file: ./x".into()),
            Reason::SiblingFailed(4),
            Reason::InstanceFailed(0),
            Reason::TaskFailed("merge".into()),
            Reason::InputMappingFailed("s3://b/in/: not found".into()),
            Reason::OutputMappingFailed("s3://b/out/: connection refused".into()),
            Reason::OutOfMemory,
            Reason::ImageNotFound("registry.local/app:1.2".into()),
            Reason::ImagePullFailed("registry.local/app:1.2: unauthorized".into()),
            Reason::JobTimedOut,
        ];
        for r in all {
            assert_eq!(r.to_string().parse::<Reason>(), Ok(r.clone()), "{r}");
        }
        assert!("EXIT_CODE x".parse::<Reason>().is_err());
        assert!("TIMED_OUT 3".parse::<Reason>().is_err());
        assert!("NOPE".parse::<Reason>().is_err());
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
        }
    }
}
