//! The library's one error type: each variant names the thing (file, field, tensor) and the
//! problem, in terms of values and files (never of the binary's flags).
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is part of the message (not a `source`, which would print it twice).
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file exists but its content is not what its format requires (truncated, corrupt, wrong kind).
    #[error("{}: {problem}", path.display())]
    BadFile { path: PathBuf, problem: String },
    #[error(
        "{}: sha256 {got} matches no published digest of this file ({expected}); the file is corrupt or not the published one (set data.verify = false to use it anyway)",
        path.display()
    )]
    Digest {
        path: PathBuf,
        expected: String,
        got: String,
    },
    #[error(
        "data set {name}: not found; looked for {looked_for} (the data root comes from data.root, else $NCOOD_DATA, else the data/ folder of the ncood checkout)"
    )]
    MissingData { name: String, looked_for: String },
    #[error("unknown data set '{name}' (known: {known})")]
    UnknownDataset { name: String, known: String },
    /// A configuration value (a run config field, a study field, a command option's value).
    #[error("invalid config: {field}: {reason}")]
    InvalidConfig { field: String, reason: String },
    /// Arrays whose shapes do not fit together.
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        what: String,
        expected: String,
        got: String,
    },
    /// Input values that are out of range or otherwise unusable (labels, empty sets, ...).
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },
    /// NaN or infinity where a finite number is required.
    #[error("{what} is not finite at {location}")]
    NonFinite { what: String, location: String },
    #[error(
        "GDA: the covariance of class(es) {classes:?} is not positive definite even with jitter {last_jitter} added (classes with (near-)constant or duplicated features)"
    )]
    NotPositiveDefinite {
        classes: Vec<usize>,
        last_jitter: f64,
    },
    #[error("run directory {}: {problem}", path.display())]
    RunDir { path: PathBuf, problem: String },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
    pub fn bad_file(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            problem: problem.into(),
        }
    }
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }
    pub fn invalid(what: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            problem: problem.into(),
        }
    }
    pub fn run_dir(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::RunDir {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// The first line of a caught panic's message (its `String` or `&str` payload; empty for any
/// other): what a caught libtorch failure or a bug is reported with, instead of a backtrace.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    text.lines().next().unwrap_or_default().to_string()
}
