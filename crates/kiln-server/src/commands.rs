//! Writes that need the scheduler (terminate, retry, delete), taken by any server.
//!
//! The leader runs a [`Command`] on its driver thread at once. A standby stores it in the
//! store's command inbox ([`kiln_store::Store::push_command`]); the leader drains the inbox in
//! its tick ([`Driver::drain_commands`]), acts on each command as if it had been sent to it,
//! commits the effect with the tick's fenced write, and then records its answer, which the
//! standby waits for and answers with. A command whose answer was not recorded (the leader
//! died, or lost its lease, between acting and answering) is run again by the next leader: the
//! operations are safe to repeat (a second terminate or delete answers 409 / 404; a retry
//! names the finish it retries, so it runs once).

use std::time::{Duration, Instant};

use kiln_store::{CommandAnswer, CommandRecord};
use serde::{Deserialize, Serialize};

use crate::driver::{Driver, DriverError, now_ms};
use crate::jobs::JobOpError;

/// At most this many commands per tick, so a burst cannot stall scheduling.
pub(crate) const COMMANDS_PER_TICK: u32 = 64;

/// Answered commands are kept this long (for standbys still waiting), then purged.
const KEEP_ANSWERED: Duration = Duration::from_secs(600);

/// How often the leader purges answered commands.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// A write acted on by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    TerminateJob {
        job: String,
    },
    TerminateInstance {
        job: String,
        task: String,
        index: u32,
    },
    RetryJob {
        job: String,
        /// The job's `updated_at` when the retry was asked for (it finished then): a job
        /// changed since has been retried already, by a leader that acted on this command and
        /// stopped before it answered, so the command is answered without a second retry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finished_at: Option<u64>,
    },
    DeleteJob {
        job: String,
    },
    DeleteEnv {
        env: String,
    },
    /// `kiln nodes revoke`: safe to repeat (a second one answers 404).
    RevokeNode {
        node: String,
    },
}

impl Command {
    /// Acts on the command on `d`, which must lead ([`DriverError::NotLeader`] otherwise).
    pub fn run(&self, d: &mut Driver) -> Result<(), JobOpError> {
        match self {
            Command::TerminateJob { job } => d.terminate_job(job),
            Command::TerminateInstance { job, task, index } => {
                d.terminate_instance(job, task, *index)
            }
            Command::RetryJob { job, finished_at } => d.retry_job(job, *finished_at),
            Command::DeleteJob { job } => d.delete_job(job),
            Command::DeleteEnv { env } => d.delete_env(env),
            Command::RevokeNode { node } => d.revoke_node(node),
        }
    }
}

/// The answer recorded for the outcome of a command; `None` if it is not the command's to
/// answer (this server stopped leading, or the store failed): the next leader runs it again.
pub(crate) fn answer_of(result: Result<(), JobOpError>) -> Result<(u16, String), DriverError> {
    match result {
        Ok(()) => Ok((200, String::new())),
        Err(JobOpError::NotFound(m)) => Ok((404, m)),
        Err(JobOpError::Conflict(m)) => Ok((409, m)),
        Err(JobOpError::Invalid { field, message }) => Ok((400, format!("{field}: {message}"))),
        Err(JobOpError::Driver(e)) => Err(e),
    }
}

impl Driver {
    /// The leader's part: acts on the commands standbys stored (`pending`, oldest first, as
    /// `Store::inbox` read them), and records each answer after the effect is committed.
    pub(crate) fn drain_commands(
        &mut self,
        pending: Vec<CommandRecord>,
    ) -> Result<(), DriverError> {
        for c in pending {
            let result = match serde_json::from_str::<Command>(&c.command) {
                Ok(cmd) => {
                    tracing::info!("acting on command {} from a standby: {cmd:?}", c.id);
                    cmd.run(self)
                }
                Err(e) => Err(JobOpError::Invalid {
                    field: "command".into(),
                    message: format!("unreadable stored command: {e}"),
                }),
            };
            let (status, message) = answer_of(result)?;
            let answer = CommandAnswer {
                status,
                message,
                at: now_ms(),
            };
            self.store().answer_command(c.id, &answer)?;
        }
        if self.last_command_purge.elapsed() >= PURGE_EVERY {
            self.last_command_purge = Instant::now();
            let before = now_ms().saturating_sub(KEEP_ANSWERED.as_millis() as u64);
            self.store().purge_commands(before)?;
        }
        Ok(())
    }
}
