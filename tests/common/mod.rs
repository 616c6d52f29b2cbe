//! Helpers shared by the integration tests: small data files in the real formats.
#![allow(dead_code)]
pub mod formats;
pub use formats::*;
use ncood::data::idx::encode_idx;
use std::path::Path;
use std::process::{Command, Output};

/// The `ncood` binary of this build, as a command.
pub fn ncood() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ncood"))
}

/// Runs a command to completion, failing the test with its stderr unless it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ncood train` of a tiny model on the fake data under `root` into `out`: CPU, one thread,
/// unverified data, batches of 32, plus `extra` arguments.
pub fn train_cli(root: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = ncood();
    c.args(["train", "--device", "cpu", "--threads", "1"])
        .args(["--set", "data.verify=false", "--set", "optim.batch_size=32"])
        .args(extra)
        .arg("--data-root")
        .arg(root)
        .arg("--out")
        .arg(out);
    c
}

/// A data root with a small fake Fashion-MNIST (gzip IDX files in the real layout).
pub fn fake_fashion_mnist(root: &Path, n_train: usize, n_test: usize) {
    let dir = root.join("fashion-mnist");
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n, salt) in [("train", n_train, 1), ("t10k", n_test, 2)] {
        let (px, lb) = digit_like(n, salt);
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            gzip(&encode_idx(&[n, 28, 28], &px)),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            gzip(&encode_idx(&[n], &lb)),
        )
        .unwrap();
    }
}

/// The `[base]` of the tests' tiny studies on the fake data under `root`: CPU, one thread, width 2,
/// 2 epochs, tracking every epoch against uniform noise.
pub fn tiny_study_base(root: &Path) -> String {
    format!(
        r#"[base]
device = "cpu"
threads = 1
[base.model]
width = 2
[base.data]
root = {root:?}
verify = false
[base.optim]
epochs = 2
batch_size = 32
[base.track]
every = 1
subset = 100
ood = "noise-uniform""#
    )
}
