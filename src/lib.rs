//! ncood: out-of-distribution detection and Neural Collapse research on DDU ResNets.
//!
//! Data flows one way: `data` (readers, registry, batches) -> `model` (ResNet + spectral norm +
//! L2 head) -> `train` (loop, schedule, checkpoints, resume, log) -> predictions and features.
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod model;
pub mod train;

pub use error::{Error, Result};
