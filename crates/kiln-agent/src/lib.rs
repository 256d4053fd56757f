//! The node side of Kiln: runtimes that run one attempt of a task instance and report how it
//! ended. Only IO lives here; every decision about what to run and what an outcome means is
//! made by `kiln_core`.

pub mod host;

pub use host::{AttemptSpec, HostRuntime, KillSwitch, LeftoverAttempt};
