//! Run-directory integrity on resume and evaluation: what a killed, edited or mismatched run
//! directory does (found by review of issue 7's change; each was accepted silently before).
mod common;
use common::ncood;
use common::{run_ok, train_cli};
use ncood::run::RunDir;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

fn fails(cmd: &mut Command, needle: &str) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

fn digest(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

/// A data root and a finished 2-epoch run in it.
fn base() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 120, 40);
    let run = tmp.path().join("base");
    run_ok(&mut train_cli(
        tmp.path(),
        &run,
        &[
            "--epochs",
            "2",
            "--set",
            "model.width=1",
            "--set",
            "track.ood=\"noise-uniform\"",
        ],
    ));
    (tmp, run)
}

#[test]
fn a_run_started_from_a_checkpoint_resumes_from_it() {
    let (tmp, base) = base();
    let init = format!(
        "init_from={:?}",
        RunDir::new(&base)
            .checkpoint_path(2, true)
            .display()
            .to_string()
    );
    let args = [
        "--epochs",
        "1",
        "--set",
        "model.width=1",
        "--set",
        init.as_str(),
    ];
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run_ok(&mut train_cli(tmp.path(), &a, &args));
    // Killed at its second step, before its first checkpoint: the resume must start from
    // init_from again, not from random weights.
    let out = train_cli(tmp.path(), &b, &args)
        .env("NCOOD_FAULT", "step:2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    run_ok(ncood().args(["train", "--resume"]).arg(&b));
    for state in [false, true] {
        let (pa, pb) = (
            RunDir::new(&a).checkpoint_path(1, state),
            RunDir::new(&b).checkpoint_path(1, state),
        );
        assert_eq!(digest(&pa), digest(&pb), "{}", pa.display());
    }
    // A missing init_from is an error before the run directory exists.
    let c = tmp.path().join("c");
    fails(
        &mut train_cli(
            tmp.path(),
            &c,
            &["--set", "init_from=\"/no/such.safetensors\""],
        ),
        "/no/such.safetensors",
    );
    assert!(!c.exists());
}

#[test]
fn edited_configs_and_logs_are_caught() {
    let (tmp, run) = base();
    let dir = RunDir::new(&run);
    // config.toml edited after training: resume and eval refuse it, naming the fields.
    let text = std::fs::read_to_string(dir.config_path()).unwrap();
    let edited = tmp.path().join("edited");
    std::fs::create_dir_all(edited.join("checkpoints")).unwrap();
    for f in ["log.jsonl", "checkpoints/epoch-0002.state.safetensors"] {
        std::fs::copy(run.join(f), edited.join(f)).unwrap();
    }
    std::fs::write(
        edited.join("config.toml"),
        text.replace("seed = 0", "seed = 7")
            .replace("lr = 0.1", "lr = 5.0"),
    )
    .unwrap();
    fails(
        ncood()
            .args(["train", "--resume"])
            .arg(&edited)
            .args(["--epochs", "3"]),
        "optim.lr, seed",
    );
    fails(
        ncood()
            .arg("eval")
            .arg(&edited)
            .args(["--ood", "noise-uniform"]),
        "config.toml differs",
    );
    // A log whose lines are not epochs 1, 2, ... in order.
    let log = std::fs::read_to_string(dir.log_path()).unwrap();
    let first = log.lines().next().unwrap();
    std::fs::write(dir.log_path(), format!("{first}\n{first}\n")).unwrap();
    fails(
        ncood()
            .args(["train", "--resume"])
            .arg(&run)
            .args(["--epochs", "3"]),
        "line 2 is epoch 1, expected 2",
    );
    std::fs::write(dir.log_path(), &log).unwrap();
    // Resumed to no more epochs than are checkpointed, a log with a later line (an epoch killed
    // before its checkpoint) is cut back to the checkpoint.
    let extra = log
        .lines()
        .last()
        .unwrap()
        .replace("\"epoch\":2", "\"epoch\":3");
    std::fs::write(dir.log_path(), format!("{log}{extra}\n")).unwrap();
    run_ok(ncood().args(["train", "--resume"]).arg(&run));
    assert_eq!(dir.log().unwrap().len(), 2);
    // A new run cannot start in a directory holding files of another.
    let stale = tmp.path().join("stale");
    std::fs::create_dir_all(stale.join("checkpoints")).unwrap();
    std::fs::write(stale.join("checkpoints/epoch-0009.state.safetensors"), b"x").unwrap();
    fails(
        &mut train_cli(tmp.path(), &stale, &[]),
        "already holds a run",
    );
}

#[test]
fn runs_that_cannot_train_fail_before_their_directory_exists() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 120, 40);
    let cases: [(&[&str], &str); 2] = [
        (
            &["--set", "track.every=1", "--set", "track.subset=10"],
            "track.subset",
        ),
        (
            &[
                "--set",
                "optim.loss=\"nc\"",
                "--set",
                "optim.batch_size=1000",
            ],
            "optim.batch_size",
        ),
    ];
    for (i, (args, needle)) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("r{i}"));
        fails(&mut train_cli(tmp.path(), &out, args), needle);
        assert!(!out.exists(), "{needle}");
    }
}

#[test]
fn an_intervention_group_is_continued_only_with_its_own_settings() {
    let (_tmp, run) = base();
    let intervene = |epochs: &str, drop: &str| {
        let mut c = ncood();
        c.arg("intervene")
            .arg(&run)
            .args([
                "--from-epoch",
                "1",
                "--epochs",
                epochs,
                "--drop-after",
                drop,
            ])
            .args(["--groups", "control", "--device", "cpu", "--threads", "1"]);
        c
    };
    run_ok(&mut intervene("1", "1"));
    fails(&mut intervene("3", "1"), "optim.epochs");
    run_ok(&mut intervene("1", "1")); // the same settings: nothing left to do
}

#[test]
fn eval_fails_fast_on_a_run_another_process_writes() {
    let (_tmp, run) = base();
    let lock = std::fs::File::open(run.join("run.lock")).unwrap();
    lock.try_lock().unwrap();
    fails(
        ncood().arg("eval").arg(&run).args(["--device", "cpu"]),
        "run.lock",
    );
    fails(ncood().arg("eval").arg(run.join("nothing")), "holds no run");
}
