//! Hostile inputs (issue 7, part 1): each case once crashed ncood or gave a wrong answer silently;
//! each must now be a clear error (exit status 1, the file or value named, no panic, nothing
//! half-made) or the correct result.
mod common;
use common::ncood;
use ncood::npy;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `cmd`, which must fail with status 1 and a message containing every one of `needles`.
fn fails(cmd: &mut Command, needles: &[&str]) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    err
}

/// A .npy file with a hand-written header and raw data bytes.
fn raw_npy(path: &Path, header: &str, data: &[u8]) {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

fn f64_npy(path: &Path, rows: usize, cols: usize, f: impl Fn(usize, usize) -> f64) {
    let v: Vec<f64> = (0..rows * cols).map(|k| f(k / cols, k % cols)).collect();
    std::fs::write(path, npy::encode(&[rows, cols], &v)).unwrap();
}

fn i64_npy(path: &Path, v: &[i64]) {
    std::fs::write(path, npy::encode(&[v.len()], v)).unwrap();
}

/// Two well-separated classes in 3-D: training features, labels, ID and OoD features, logits.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let feat = |i: usize, j: usize| (i % 2) as f64 * 5.0 + ((i * 7 + j * 3) % 11) as f64 / 10.0;
        f64_npy(&p("train.npy"), 40, 3, feat);
        i64_npy(
            &p("labels.npy"),
            &(0..40).map(|i| (i % 2) as i64).collect::<Vec<_>>(),
        );
        f64_npy(&p("id.npy"), 10, 3, feat);
        f64_npy(&p("far.npy"), 8, 3, |i, j| 50.0 + (i + j) as f64);
        f64_npy(&p("idl.npy"), 10, 2, |i, j| ((i + j) % 2) as f64);
        f64_npy(&p("farl.npy"), 8, 2, |i, _| i as f64 / 8.0);
        Files { dir }
    }
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
    /// `ncood collapse` of `features` with `labels` and the classifier in `w.npy`.
    fn collapse(&self, features: &str, labels: &str) -> Command {
        let mut c = ncood();
        c.arg("collapse")
            .arg("--features")
            .arg(self.p(features))
            .arg("--labels")
            .arg(self.p(labels))
            .arg("--weights")
            .arg(self.p("w.npy"))
            .arg("--out")
            .arg(self.p("nc.json"));
        c
    }
    /// `ncood score` over the standard files with `replace` swapping one file for another.
    fn score(&self, replace: &[(&str, &str)], extra: &[&str]) -> Command {
        let pick = |n: &str| {
            let n = replace.iter().find(|r| r.0 == n).map_or(n, |r| r.1);
            self.p(n)
        };
        let mut c = ncood();
        c.arg("score")
            .arg("--train-features")
            .arg(pick("train.npy"))
            .arg("--train-labels")
            .arg(pick("labels.npy"))
            .arg("--id-features")
            .arg(pick("id.npy"))
            .arg("--ood-features")
            .arg(pick("far.npy"))
            .arg("--out")
            .arg(self.p("r.json"));
        for e in extra {
            match e.strip_prefix('@') {
                Some(n) => c.arg(pick(n)),
                None => c.arg(e),
            };
        }
        c
    }
}

#[test]
fn npy_headers_that_lie_are_errors() {
    let f = Files::new();
    // Declares 10^11 float64 values, holds 16 bytes: once a heap over-read (SIGSEGV).
    raw_npy(
        &f.p("huge.npy"),
        "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000, 1000), }",
        &[0; 16],
    );
    fails(
        &mut f.score(&[("id.npy", "huge.npy")], &[]),
        &["huge.npy", "truncated"],
    );
    // A few bytes short, and trailing bytes.
    let good = std::fs::read(f.p("id.npy")).unwrap();
    std::fs::write(f.p("short.npy"), &good[..good.len() - 3]).unwrap();
    fails(
        &mut f.score(&[("id.npy", "short.npy")], &[]),
        &["short.npy", "truncated"],
    );
    std::fs::write(f.p("long.npy"), [&good[..], &[0u8; 5]].concat()).unwrap();
    fails(
        &mut f.score(&[("id.npy", "long.npy")], &[]),
        &["long.npy", "trailing"],
    );
    // Zero columns and 10^14 rows: zero bytes of data, once an allocation abort.
    raw_npy(
        &f.p("zero.npy"),
        "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999, 0), }",
        &[],
    );
    fails(
        &mut f.score(&[("train.npy", "zero.npy")], &[]),
        &["zero.npy", "one column"],
    );
    // The same files through collapse.
    f64_npy(&f.p("w.npy"), 2, 3, |i, j| (i + j) as f64);
    fails(
        &mut f.collapse("huge.npy", "labels.npy"),
        &["huge.npy", "truncated"],
    );
}

#[test]
fn labels_are_bounded_before_anything_is_sized() {
    let f = Files::new();
    let mut big: Vec<i64> = (0..40).map(|i| (i % 2) as i64).collect();
    big[3] = 1 << 40; // once an allocation abort (class count = max + 1)
    i64_npy(&f.p("big.npy"), &big);
    fails(
        &mut f.score(&[("labels.npy", "big.npy")], &[]),
        &["big.npy", "1099511627776"],
    );
    big[3] = -1;
    i64_npy(&f.p("neg.npy"), &big);
    fails(
        &mut f.score(&[("labels.npy", "neg.npy")], &[]),
        &["neg.npy", "sample 3 is -1"],
    );
    // With a classifier, labels must be below its class count.
    big[3] = 2;
    i64_npy(&f.p("three.npy"), &big);
    f64_npy(&f.p("w.npy"), 2, 3, |i, j| (i + j) as f64);
    fails(
        &mut f.collapse("train.npy", "three.npy"),
        &["three.npy", "expected 0..1"],
    );
}

#[test]
fn empty_inputs_are_errors() {
    let f = Files::new();
    std::fs::write(f.p("empty.npy"), npy::encode::<f32>(&[0, 3], &[])).unwrap();
    fails(
        &mut f.score(&[("far.npy", "empty.npy")], &[]),
        &["empty.npy", "one row"],
    );
    std::fs::write(f.p("nolabels.npy"), npy::encode::<i64>(&[0], &[])).unwrap();
    fails(
        &mut f.score(&[("labels.npy", "nolabels.npy")], &[]),
        &["nolabels.npy", "no labels"],
    );
    // An ID test split of 0 images: an error before the run directory exists.
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 60, 0);
    let run = tmp.path().join("run");
    fails(
        ncood()
            .args([
                "train",
                "--device",
                "cpu",
                "--set",
                "model.width=1",
                "--set",
                "data.verify=false",
            ])
            .arg("--data-root")
            .arg(tmp.path())
            .arg("--out")
            .arg(&run),
        &["test split has 0 image"],
    );
    assert!(
        !run.exists(),
        "nothing is created for a run that cannot start"
    );
}

#[test]
fn score_inputs_must_agree_in_shape() {
    let f = Files::new();
    let logits = ["--id-logits", "@idl.npy", "--ood-logits", "@farl.npy"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { [&logits[..], extra].concat() };
    // The well-formed call works, with every score.
    common::run_ok(&mut f.score(&[], &with(&[])));
    i64_npy(&f.p("idy.npy"), &[0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
    common::run_ok(&mut f.score(&[], &with(&["--id-labels", "@idy.npy"])));
    // ID labels shorter than the ID logits (once a panic).
    i64_npy(&f.p("idy_short.npy"), &[0, 1, 0]);
    fails(
        &mut f.score(&[], &with(&["--id-labels", "@idy_short.npy"])),
        &["ID labels", "10 labels"],
    );
    // ID logits with fewer rows than the ID features; OoD logits with fewer rows than OoD
    // features; OoD logits with another class count (all once scored misaligned).
    f64_npy(&f.p("idl_short.npy"), 7, 2, |_, _| 0.5);
    fails(
        &mut f.score(&[("idl.npy", "idl_short.npy")], &with(&[])),
        &["ID logits", "10 rows"],
    );
    f64_npy(&f.p("farl_short.npy"), 5, 2, |_, _| 0.5);
    fails(
        &mut f.score(&[("farl.npy", "farl_short.npy")], &with(&[])),
        &["far logits", "8 rows"],
    );
    f64_npy(&f.p("farl_wide.npy"), 8, 3, |_, _| 0.5);
    fails(
        &mut f.score(&[("farl.npy", "farl_wide.npy")], &with(&[])),
        &["far logits", "N x 2"],
    );
    // Logits with another class count than the training labels, or a single column.
    f64_npy(&f.p("idl3.npy"), 10, 3, |_, _| 0.5);
    f64_npy(&f.p("farl3.npy"), 8, 3, |_, _| 0.5);
    let mut three_labels: Vec<i64> = (0..40).map(|i| (i % 2) as i64).collect();
    three_labels[0] = 2;
    i64_npy(&f.p("labels3.npy"), &three_labels);
    fails(
        &mut f.score(
            &[("idl.npy", "idl3.npy"), ("farl.npy", "farl3.npy")],
            &with(&[]),
        ),
        &["class 2 has no samples"],
    );
    fails(
        &mut f.score(&[("labels.npy", "labels3.npy")], &with(&[])),
        &["labels3.npy", "expected 0..1"],
    );
    // Two OoD files with one name.
    std::fs::create_dir_all(f.p("other")).unwrap();
    std::fs::copy(f.p("far.npy"), f.p("other/far.npy")).unwrap();
    let mut c = f.score(&[], &[]);
    c.arg("--ood-features").arg(format!(
        "{},{}",
        f.p("far.npy").display(),
        f.p("other/far.npy").display()
    ));
    fails(&mut c, &["two files are named far"]);
    // A feature dimension whose class statistics would not fit in memory (2 x 20000^2 x 8 x 5).
    f64_npy(&f.p("wide.npy"), 6, 20000, |i, j| (i * j % 7) as f64);
    i64_npy(&f.p("labels6.npy"), &[0, 1, 0, 1, 0, 1]);
    fails(
        &mut f.score(
            &[
                ("train.npy", "wide.npy"),
                ("labels.npy", "labels6.npy"),
                ("id.npy", "wide.npy"),
                ("far.npy", "wide.npy"),
            ],
            &[],
        ),
        &["GiB", "limit of 16 GiB"],
    );
    // OoD features of another dimension.
    f64_npy(&f.p("far4.npy"), 8, 4, |_, _| 0.5);
    fails(
        &mut f.score(&[("far.npy", "far4.npy")], &[]),
        &["far4 features", "N x 3"],
    );
}

#[test]
fn classifier_bias_is_checked() {
    let f = Files::new();
    f64_npy(&f.p("w.npy"), 2, 3, |i, j| (i + j) as f64);
    let collapse = |bias: &str| {
        let mut c = f.collapse("train.npy", "labels.npy");
        c.arg("--bias").arg(f.p(bias));
        c
    };
    std::fs::write(f.p("b3.npy"), npy::encode(&[3], &[0.0f64, 1.0, 2.0])).unwrap();
    fails(
        &mut collapse("b3.npy"),
        &["bias", "2 floats (one per class)"],
    );
    std::fs::write(f.p("bnan.npy"), npy::encode(&[2], &[0.0f64, f64::NAN])).unwrap();
    fails(
        &mut collapse("bnan.npy"),
        &["bnan.npy", "not finite", "row 1"],
    );
    std::fs::write(f.p("b2.npy"), npy::encode(&[2], &[0.0f64, 1.0])).unwrap();
    common::run_ok(&mut collapse("b2.npy"));
    // A checkpoint whose fc.bias disagrees with fc.weight.
    let w = tch::Tensor::ones([2, 3], (tch::Kind::Float, tch::Device::Cpu));
    let b = tch::Tensor::ones([5], (tch::Kind::Float, tch::Device::Cpu));
    let ck = f.p("bad.safetensors");
    ncood::checkpoint::write(
        &ck,
        &[("fc.weight".into(), w), ("fc.bias".into(), b)],
        &Default::default(),
    )
    .unwrap();
    fails(
        ncood()
            .arg("collapse")
            .arg("--features")
            .arg(f.p("train.npy"))
            .arg("--labels")
            .arg(f.p("labels.npy"))
            .arg("--checkpoint")
            .arg(&ck)
            .arg("--out")
            .arg(f.p("nc.json")),
        &["bias", "[5]"],
    );
}

#[test]
fn nc1_is_undefined_below_c_minus_1_dimensions() {
    // 4 classes in 2-D: the centred means span at most 2 < C - 1 = 3 dimensions.
    let f = Files::new();
    f64_npy(&f.p("h.npy"), 40, 2, |i, j| {
        ((i % 4) * (j + 1)) as f64 + (i as f64) * 1e-3
    });
    i64_npy(
        &f.p("y.npy"),
        &(0..40).map(|i| (i % 4) as i64).collect::<Vec<_>>(),
    );
    f64_npy(&f.p("w.npy"), 4, 2, |i, j| (i * 2 + j) as f64);
    let out = common::run_ok(&mut f.collapse("h.npy", "y.npy"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("NC1 undefined") && stdout.contains("fewer than C - 1 = 3"),
        "{stdout}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.p("nc.json")).unwrap()).unwrap();
    assert!(r["nc1"].is_null());
    assert!(r["nc1_undefined"].as_str().unwrap().contains("span"));
    assert!(r["nc3"].as_f64().unwrap().is_finite());
}

#[test]
fn sizes_and_thread_counts_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    fails(
        ncood()
            .args(["train", "--set", "model.width=100000000", "--out"])
            .arg(&out),
        &["model.width", "parameters"],
    );
    fails(
        ncood()
            .args(["train", "--threads", "99999999999", "--out"])
            .arg(&out),
        &["threads", "1024"],
    );
    let f = Files::new();
    fails(&mut f.score(&[], &["--threads", "5000"]), &["threads"]);
    assert!(!out.exists());
}

/// A finished 2-epoch run of a tiny model on a fake Fashion-MNIST, and its data root.
fn tiny_run() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 120, 40);
    let run = tmp.path().join("run");
    common::run_ok(&mut common::train_cli(
        tmp.path(),
        &run,
        &["--epochs", "2", "--set", "model.width=1"],
    ));
    (tmp, run)
}

#[test]
fn runs_are_portable_and_validated_before_they_exist() {
    let (tmp, run) = tiny_run();
    // The data root is recorded as an absolute path.
    let cfg = ncood::run::RunDir::new(&run).config().unwrap();
    assert_eq!(cfg.data.root.as_deref(), Some(tmp.path()));
    // Fewer epochs than done: an error that changes nothing.
    let before = std::fs::read(run.join("config.toml")).unwrap();
    fails(
        ncood()
            .args(["train", "--resume"])
            .arg(&run)
            .args(["--epochs", "1"]),
        &["optim.epochs", "fewer than the 2 epochs"],
    );
    assert_eq!(std::fs::read(run.join("config.toml")).unwrap(), before);
    // A run recorded with device = "cuda" is evaluated on the CPU with --device cpu.
    let text = String::from_utf8(before)
        .unwrap()
        .replace("device = \"cpu\"", "device = \"cuda\"");
    std::fs::write(run.join("config.toml"), text).unwrap();
    let logits = tmp.path().join("l.npy");
    common::run_ok(
        ncood()
            .arg("predict")
            .arg(&run)
            .args([
                "--data",
                "noise-uniform",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--out",
            ])
            .arg(&logits),
    );
    assert_eq!(
        ncood::features::read_matrix(&logits).unwrap().size(),
        [40, 10]
    );
    // A typo in track.ood fails before a run directory exists.
    let bad = tmp.path().join("typo");
    fails(
        ncood()
            .args([
                "train",
                "--set",
                "track.ood=mnsit",
                "--set",
                "track.every=1",
                "--out",
            ])
            .arg(&bad),
        &["mnsit", "noise-uniform"],
    );
    assert!(!bad.exists());
    // From another working directory: the data root comes from $NCOOD_DATA, and a relative
    // init_from is read from there and recorded absolute (a recorded relative one would be read
    // relative to the run directory).
    let elsewhere = tempfile::tempdir().unwrap();
    let start = elsewhere.path().join("start.safetensors");
    std::fs::copy(run.join("checkpoints/epoch-0002.state.safetensors"), &start).unwrap();
    let out = common::run_ok(
        ncood()
            .current_dir(elsewhere.path())
            .env("NCOOD_DATA", tmp.path())
            .args([
                "train",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--epochs",
                "1",
            ])
            .args([
                "--set",
                "model.width=1",
                "--set",
                "data.verify=false",
                "--set",
                "init_from=\"start.safetensors\"",
                "--out",
                "r",
            ]),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("results: r"));
    let recorded = ncood::run::RunDir::new(elsewhere.path().join("r"))
        .config()
        .unwrap();
    assert_eq!(recorded.init_from, Some(start));
    assert!(
        elsewhere
            .path()
            .join("r/checkpoints/epoch-0001.safetensors")
            .exists()
    );
    // A missing data set says where it looked and how to point elsewhere; nothing is created.
    fails(
        ncood()
            .current_dir(elsewhere.path())
            .env("NCOOD_DATA", elsewhere.path())
            .args(["train", "--out", "nodata"]),
        &["fashion-mnist", "looked for", "NCOOD_DATA"],
    );
    assert!(!elsewhere.path().join("nodata").exists());
    // A second process cannot write a run another holds (the lock is taken first).
    let lock = std::fs::File::open(run.join("run.lock")).unwrap();
    lock.try_lock().unwrap();
    fails(
        ncood()
            .args(["train", "--device", "cpu", "--resume"])
            .arg(&run),
        &["run.lock"],
    );
}

#[test]
fn closed_pipes_and_corrupt_mat_files_are_quiet() {
    let f = Files::new();
    // Like `ncood score ... | head -0`: the reader is gone before ncood prints.
    let mut child = f
        .score(&[], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out: Output = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A corrupt SVHN .mat: one error line on stderr, nothing on stdout.
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 60, 20);
    std::fs::create_dir_all(tmp.path().join("svhn")).unwrap();
    let mut mat = common::svhn_mat(&vec![7u8; 2 * 3072], &[1.0, 10.0], true);
    let k = mat.len() / 2;
    mat[k] ^= 0xff;
    mat.truncate(mat.len() - 9);
    std::fs::write(tmp.path().join("svhn/train_32x32.mat"), mat).unwrap();
    let out = ncood()
        .args([
            "train",
            "--set",
            "data.name=svhn",
            "--set",
            "data.verify=false",
            "--data-root",
        ])
        .arg(tmp.path())
        .arg("--out")
        .arg(tmp.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("train_32x32.mat"), "{err}");
}

#[test]
fn every_computing_command_takes_device_and_threads_and_usage_errors_exit_2() {
    for cmd in [
        "train",
        "predict",
        "features",
        "eval",
        "intervene",
        "score",
        "collapse",
    ] {
        let out = ncood().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--device") && help.contains("--threads"),
            "{cmd}: {help}"
        );
    }
    let help =
        String::from_utf8_lossy(&ncood().arg("--help").output().unwrap().stdout).into_owned();
    assert!(help.contains("0 success, 1 error, 2 usage error"), "{help}");
    let out = ncood().args(["score", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ncood()
        .args(["eval", "x", "--device", "gpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
