//! ncood: out-of-distribution detection and Neural Collapse research on DDU ResNets.
//!
//! Data flows one way: `data` (readers, registry, OoD sets, batches) -> `model` (ResNet + spectral
//! norm + L2 head) -> `train` (loop, SGD, tracking, intervention) writing a `run` directory ->
//! `features` (one eval pass) -> `stats` (per-class f64 statistics) -> `ood` scores, `collapse`
//! measures and `metrics` -> `evaluate` (results as JSON and markdown). `config` is the run
//! configuration, `device` where commands compute, `atomic`, `npy` and `checkpoint` the file
//! formats ncood writes, `rng` the seeded random streams.

/// Serialises a type by its `Display` name and deserialises it with `FromStr`, so configs and
/// results spell names exactly as the command line does.
#[macro_export]
macro_rules! serde_by_name {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod atomic;
pub mod checkpoint;
pub mod collapse;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod ood;
#[cfg(feature = "cli")]
pub mod report;
pub mod rng;
pub mod run;
pub mod shim;
pub mod stats;
pub mod study;
pub mod train;

pub use error::{Error, Result};

/// This library's version (the Python package reports it as `ncood.__version__`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
