//! Issue-4 plumbing on a tiny model: NC/AUROC tracking in the log, the NC-loss intervention,
//! over-training by resuming with more epochs, and `ncood collapse` on exported files.
mod common;
use ncood::config::{Loss, RunConfig};
use ncood::features::FeatureKind;
use ncood::run::{EpochLog, RunDir};
use ncood::train::{self, Start};
use std::path::Path;
use std::process::Command;

fn log(dir: &Path) -> Vec<EpochLog> {
    RunDir::new(dir).log().unwrap()
}

fn config(root: &Path) -> RunConfig {
    let text = format!(
        "seed = 1\nthreads = 1\ndevice = \"cpu\"\n[model]\nwidth = 2\nl2 = true\n[data]\nroot = {root:?}\nverify = false\n[optim]\nepochs = 2\nbatch_size = 40\n[track]\nevery = 2\nsubset = 100\nood = \"noise-uniform\"\n"
    );
    RunConfig::from_toml(&text, &[]).unwrap()
}

#[test]
fn tracking_intervention_and_overtraining() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 300, 60);
    let dir = tmp.path().join("run");
    train::run(
        &dir,
        Start::New(Box::new(config(tmp.path()))),
        0,
        &mut |_| {},
    )
    .unwrap();
    let l = log(&dir);
    assert!(l[0].track.is_none(), "epoch 1 is not on the cadence");
    let t = l[1].track.as_ref().expect("epoch 2 is tracked");
    assert_eq!(t.subset, 100);
    assert_eq!(t.ood, "noise-uniform");
    assert_eq!(
        t.nc.features,
        Some(FeatureKind::Normalized),
        "auto = the head's input under L2"
    );
    let nc1 = t.nc.nc1.unwrap();
    assert!(nc1.is_finite() && nc1 > 0.0);
    assert!((0.0..=1.0).contains(&t.gda_auroc));
    assert!(t.seconds > 0.0);

    // Over-training: resuming the finished run with more epochs continues it and keeps tracking.
    let resume = |epochs| Start::Resume {
        epochs,
        compute: Default::default(),
    };
    train::run(&dir, resume(Some(4)), 0, &mut |_| {}).unwrap();
    // Fewer epochs than done is an error that leaves the run as it was.
    let config_before = std::fs::read(RunDir::new(&dir).config_path()).unwrap();
    let e = train::run(&dir, resume(Some(1)), 0, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("optim.epochs") && e.contains("fewer"), "{e}");
    assert_eq!(
        std::fs::read(RunDir::new(&dir).config_path()).unwrap(),
        config_before
    );
    let l = log(&dir);
    assert_eq!(l.len(), 4);
    assert!(l[3].track.is_some());
    assert_eq!(
        l[3].lr, l[1].lr,
        "the recorded schedule stays: no new milestones"
    );

    // The intervention from epoch 2: control (cross-entropy) and NC loss, tracked every epoch.
    let plan = train::Intervention {
        from_epoch: 2,
        epochs: 2,
        drop_after: 1,
        groups: vec![train::Group::Control, train::Group::Nc],
    };
    let [control, nc]: [std::path::PathBuf; 2] =
        train::intervene(&dir, &plan, Default::default(), &mut |_, _| {})
            .unwrap()
            .try_into()
            .unwrap();
    for d in [&control, &nc] {
        let l = log(d);
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|e| e.track.is_some()));
        assert!(
            (l[0].lr - l[1].lr * 10.0).abs() < 1e-12,
            "lr steps down after drop_after epochs"
        );
    }
    let src_lr = log(&dir)[2].lr; // the schedule's value at epoch index 2
    assert!((log(&control)[0].lr - src_lr / 10.0).abs() < 1e-12);
    let cfg = RunDir::new(&nc).config().unwrap();
    assert_eq!(cfg.optim.loss, Loss::Nc);
    assert!(
        cfg.init_from
            .unwrap()
            .ends_with("epoch-0002.state.safetensors")
    );
    assert!(log(&nc).iter().all(|e| e.train_loss.is_finite()));

    // ncood collapse on exported features with the checkpoint's classifier.
    let bin = env!("CARGO_BIN_EXE_ncood");
    let prefix = tmp.path().join("f");
    common::run_ok(
        Command::new(bin)
            .arg("features")
            .arg(&dir)
            .args([
                "--data",
                "fashion-mnist",
                "--split",
                "train",
                "--device",
                "cpu",
                "--out",
            ])
            .arg(&prefix),
    );
    let out = tmp.path().join("nc.json");
    common::run_ok(
        Command::new(bin)
            .arg("collapse")
            .arg("--features")
            .arg(format!("{}.normalized.npy", prefix.display()))
            .arg("--labels")
            .arg(format!("{}.labels.npy", prefix.display()))
            .arg("--checkpoint")
            .arg(RunDir::new(&dir).checkpoint_path(4, false))
            .args(["--kind", "normalized", "--out"])
            .arg(&out),
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for k in ["nc1", "nc3", "nc4"] {
        assert!(r[k].as_f64().unwrap().is_finite(), "{k}");
    }
    assert!(r["nc2"]["equiangularity_weights"].as_f64().is_some());
    assert_eq!(r["n"].as_u64().unwrap(), 270);
}
