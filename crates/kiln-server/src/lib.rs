//! The control plane: the driver that owns the engine and the store, and (in the cluster) the
//! API and the node gateway. `kiln run` uses the same driver in-process.

pub mod driver;

pub use driver::{Driver, DriverGone, Handle, LocalConfig, RunEnd, StopRequest};
