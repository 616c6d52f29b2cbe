//! The library's one error type: each variant names the thing (file, field, tensor) and the problem.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
    #[error("data set {name}: none of the expected files found; looked for {looked_for}")]
    MissingData { name: String, looked_for: String },
    #[error("unknown data set '{0}' (known: fashion-mnist, mnist, cifar10, cifar100, svhn)")]
    UnknownDataset(String),
    #[error("invalid config: {field}: {reason}")]
    InvalidConfig { field: String, reason: String },
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        what: String,
        expected: String,
        got: String,
    },
    #[error("training diverged: {what} is not finite at epoch {epoch}, step {step}")]
    NonFinite {
        what: &'static str,
        epoch: usize,
        step: usize,
    },
    #[error(
        "GDA: the covariance of class(es) {classes:?} is not positive definite even with jitter {last_jitter} added (classes with (near-)constant or duplicated features, or NaN features)"
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
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
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
}
