//! Remote storage mappings of task instances: inputs made available at local paths before an
//! attempt starts, outputs (and stdout/stderr) uploaded after it ends.
//!
//! Locations are URLs ([`Location`]): `s3://BUCKET/KEY` (AWS S3 or any S3-compatible server,
//! path-style with a custom endpoint), `cos://BUCKET-APPID.cos.REGION.myqcloud.com/KEY`
//! (Tencent COS through its S3-compatible endpoint, virtual-hosted) and `file:///PATH` (a
//! shared filesystem every node mounts). [`Storage`] moves data with bounded memory and
//! parallel transfers, over the `object_store` crate. Credentials come from
//! [`StorageConfig`] and never appear in a message: errors carry only URLs and paths.

mod config;
mod error;
mod location;
mod storage;
#[cfg(feature = "test-server")]
pub mod testing;

pub use config::StorageConfig;
pub use error::StorageError;
pub use location::{Location, LocationError};
pub use storage::{Storage, Transfer};
