//! ncood: out-of-distribution detection and Neural Collapse research on DDU ResNets.
//!
//! Data flows one way: `data` (readers, registry, batches) -> `model` (ResNet + spectral norm +
//! L2 head) -> `train` (loop, schedule, checkpoints, resume, log, tracking) -> `features` (one
//! eval pass) -> `stats` (per-class f64 statistics) -> `ood` scores, `collapse` measures and
//! `metrics` -> `evaluate` (results as JSON and markdown).
pub mod checkpoint;
pub mod collapse;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod metrics;
pub mod model;
pub mod ood;
pub mod stats;
pub mod train;

pub use error::{Error, Result};
