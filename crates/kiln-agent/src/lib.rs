//! The node side of Kiln: runtimes that run one attempt of a task instance and report how it
//! ended, and the agent (`kiln agent`) that runs them for a server. Only IO lives here; every
//! decision about what to run and what an outcome means is made by `kiln_core` (locally) or the
//! server.

pub mod agent;
pub mod docker;
pub mod host;

pub use agent::{AgentConfig, AgentError, run_agent};
pub use docker::DockerRuntime;
pub use host::{
    AttemptSpec, HostRuntime, KillSwitch, LeftoverAttempt, attempt_storage, storage_config,
};
