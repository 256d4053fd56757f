//! The control plane: the driver that owns the engine and the store, and (in the cluster) the
//! API and the node gateway. `kiln run` uses the same driver in-process.

pub mod api;
pub mod cluster;
pub mod commands;
pub mod driver;
pub mod envs;
pub mod items;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod server;
pub mod tencent;
pub mod tls;
pub mod views;
pub mod wire;

pub use driver::{ClusterConfig, Driver, DriverGone, Handle, LocalConfig, RunEnd, StopRequest};
pub use leader::LeaderConfig;
