//! Training: determinism, NaN detection, kill-and-resume equality, predict, bad configs.
mod common;
use ncood::checkpoint;
use ncood::train::{self, Progress, RunConfig, Start};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tch::Tensor;

fn config_text(root: &Path, epochs: usize) -> String {
    format!(
        "seed = 3\nthreads = 1\ndevice = \"cpu\"\n[model]\nwidth = 2\nl2 = true\n[data]\nroot = {root:?}\nverify = false\n[optim]\nepochs = {epochs}\nbatch_size = 32\n"
    )
}

fn setup(epochs: usize) -> (tempfile::TempDir, RunConfig) {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 330, 100);
    let text = config_text(tmp.path(), epochs);
    std::fs::write(tmp.path().join("cfg.toml"), &text).unwrap();
    let cfg = RunConfig::from_toml(&text, &[]).unwrap();
    (tmp, cfg)
}

fn ncood() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ncood"))
}

fn final_state(dir: &Path, epochs: usize) -> Vec<(String, Tensor)> {
    let (t, _) = checkpoint::read(&train::checkpoint_path(dir, epochs, true)).unwrap();
    let mut v: Vec<(String, Tensor)> = t.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn assert_same_state(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "tensor {na} differs");
    }
}

fn losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join(train::LOG_FILE))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<train::EpochLog>(l)
                .unwrap()
                .train_loss
        })
        .collect()
}

#[test]
fn same_seed_same_losses_and_weights() {
    let (tmp, cfg) = setup(2);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let s = train::run(&a, Start::New(Box::new(cfg.clone())), &mut |_| {}).unwrap();
    train::run(&b, Start::New(Box::new(cfg.clone())), &mut |_| {}).unwrap();
    assert_eq!(losses(&a), losses(&b));
    assert_same_state(&final_state(&a, 2), &final_state(&b, 2));
    assert_eq!(s.train_size, 297); // 330 minus the 10% validation hold-out
    assert_eq!(s.val_size, 33);
    // Another seed gives other numbers.
    let mut other = cfg.clone();
    other.seed = 4;
    let c = tmp.path().join("c");
    train::run(&c, Start::New(Box::new(other)), &mut |_| {}).unwrap();
    assert_ne!(losses(&a), losses(&c));
    // A finished run directory is not overwritten by a new run.
    let e = train::run(&a, Start::New(Box::new(cfg)), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("already holds a run"), "{e}");
}

#[test]
fn non_finite_loss_is_an_error() {
    let (tmp, mut cfg) = setup(1);
    cfg.model.l2 = false;
    cfg.model.spectral_norm = false;
    cfg.optim.lr = 1e30;
    let mut steps = 0;
    let e = train::run(
        &tmp.path().join("nan"),
        Start::New(Box::new(cfg)),
        &mut |p| {
            if let Progress::Step { .. } = p {
                steps += 1
            }
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
}

#[test]
fn killed_at_any_moment_and_resumed_equals_uninterrupted() {
    let epochs = 12; // about 0.2 s each: the kills below land in epochs and in checkpoint writes
    let (tmp, _) = setup(epochs);
    let cfg = tmp.path().join("cfg.toml");
    let (a, b): (PathBuf, PathBuf) = (tmp.path().join("a"), tmp.path().join("b"));
    let st = common::run_ok(
        ncood()
            .args(["train", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&a),
    );
    assert!(String::from_utf8_lossy(&st.stdout).contains("results:"));
    // Start, then kill -9 at several moments (during epochs and checkpoint writes), resume each time.
    let mut child = ncood()
        .args(["train", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&b)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    for delay in [400, 650, 900, 1150, 1400] {
        let mut child = ncood().args(["train", "--resume"]).arg(&b).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();
    }
    common::run_ok(ncood().args(["train", "--resume"]).arg(&b));
    assert_same_state(&final_state(&a, epochs), &final_state(&b, epochs));
    assert_eq!(losses(&a), losses(&b));
    // The PyTorch-layout weights agree too, and no temporary file is left behind.
    let (wa, _) = checkpoint::read(&train::checkpoint_path(&a, epochs, false)).unwrap();
    let (wb, _) = checkpoint::read(&train::checkpoint_path(&b, epochs, false)).unwrap();
    for (k, v) in &wa {
        if !k.ends_with("num_batches_tracked") {
            assert!(v.equal(&wb[k]), "{k}");
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(b.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty() || leftovers.iter().all(|n| n.starts_with('.')),
        "{leftovers:?}"
    );

    // predict writes N x C logits in data-set order, equal to the loaded model's.
    let out = tmp.path().join("logits.npy");
    common::run_ok(
        ncood()
            .args(["predict"])
            .arg(&a)
            .args([
                "--data",
                "fashion-mnist",
                "--split",
                "test",
                "--device",
                "cpu",
                "--out",
            ])
            .arg(&out),
    );
    let logits = Tensor::read_npy(&out).unwrap();
    assert_eq!(logits.size(), vec![100, 10]);
    assert_eq!(logits.kind(), tch::Kind::Float);
    let (cfg, net, e) = train::Net::load(&a, 0, tch::Device::Cpu).unwrap();
    assert_eq!(e, epochs);
    let data = train::RunData::load(&cfg).unwrap();
    let norm = ncood::data::loader::Normalizer::new(&data.normalization, tch::Device::Cpu);
    let direct = ncood::features::FeatureSet::extract(&net.model, &data.test, &norm, 7).logits;
    assert!(direct.allclose(&logits, 1e-5, 1e-6, false));
}

#[test]
fn cli_reports_bad_configs_and_missing_runs() {
    let (tmp, _) = setup(1);
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[model]\nwidht = 4\n").unwrap();
    let st = ncood()
        .args(["train", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!st.status.success());
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(err.contains("widht") && err.contains("bad.toml"), "{err}");
    let st = ncood()
        .args(["train", "--set", "optim.lr=-1", "--out"])
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("optim.lr"));
    let st = ncood()
        .args(["train", "--resume"])
        .arg(tmp.path().join("nothing"))
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("nothing"));
    // A missing data set names the files it looked for.
    let st = ncood()
        .args(["train", "--set", "data.name=cifar10", "--set"])
        .arg(format!("data.root={:?}", tmp.path()))
        .arg("--out")
        .arg(tmp.path().join("y"))
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("cifar-10-binary.tar.gz"));
}
