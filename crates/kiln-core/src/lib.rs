//! The pure core of Kiln: the job model, spec parsing and validation, the DAG, state machines and
//! the scheduler's decisions. No IO, no clock, no async runtime, no randomness: time and IDs come
//! in as arguments, effects leave as data.

pub mod dag;
pub mod engine;
pub mod items;
pub mod journal;
pub mod model;
pub mod scaling;
pub mod spec;
pub mod state;
