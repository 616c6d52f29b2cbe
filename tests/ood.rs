//! GDA against a direct formula, singular covariances (jitter applied and recorded), bad inputs,
//! and the `ncood score` command on .npy files.
mod common;
use ncood::Error;
use ncood::features::Labels;
use ncood::ood::gda::{Gda, jitter_ladder};

fn labels(v: &[i64], c: usize) -> ncood::Result<Labels> {
    Labels::new(v.to_vec(), Some(c), "test labels")
}
use std::process::Command;
use tch::{Kind, Tensor};

fn t(rows: &[[f64; 2]]) -> Tensor {
    Tensor::from_slice(&rows.concat()).view([rows.len() as i64, 2])
}

/// log N(x; mu, S) for D = 2 by the textbook formula with the explicit 2x2 inverse.
fn log_normal_2d(x: [f64; 2], mu: [f64; 2], s: [[f64; 2]; 2]) -> f64 {
    let det = s[0][0] * s[1][1] - s[0][1] * s[1][0];
    let inv = [
        [s[1][1] / det, -s[0][1] / det],
        [-s[1][0] / det, s[0][0] / det],
    ];
    let d = [x[0] - mu[0], x[1] - mu[1]];
    let q =
        d[0] * (inv[0][0] * d[0] + inv[0][1] * d[1]) + d[1] * (inv[1][0] * d[0] + inv[1][1] * d[1]);
    -0.5 * (2.0 * (2.0 * std::f64::consts::PI).ln() + det.ln() + q)
}

fn mean_cov(pts: &[[f64; 2]]) -> ([f64; 2], [[f64; 2]; 2]) {
    let n = pts.len() as f64;
    let mu = [
        pts.iter().map(|p| p[0]).sum::<f64>() / n,
        pts.iter().map(|p| p[1]).sum::<f64>() / n,
    ];
    let mut s = [[0.0; 2]; 2];
    for p in pts {
        for i in 0..2 {
            for j in 0..2 {
                s[i][j] += (p[i] - mu[i]) * (p[j] - mu[j]) / (n - 1.0);
            }
        }
    }
    (mu, s)
}

#[test]
fn log_density_matches_direct_formula() {
    let a = [[0.0, 0.1], [1.0, 0.9], [2.0, 2.3], [0.5, -0.2]];
    let b = [[5.0, 1.0], [6.0, 3.0], [5.5, 1.5]];
    let feats = t(&[a[0], b[0], a[1], a[2], b[1], a[3], b[2]]);
    let g = Gda::fit(&feats, &labels(&[0, 1, 0, 0, 1, 0, 1], 2).unwrap()).unwrap();
    assert_eq!(g.info.jitter, 0.0);
    assert_eq!(g.info.class_counts, vec![4, 3]);
    let (ma, sa) = mean_cov(&a);
    let (mb, sb) = mean_cov(&b);
    let xs = [[0.3, 0.2], [5.2, 2.0], [-3.0, 7.0]];
    let ld = g.log_densities(&t(&xs)).unwrap();
    let scores = g.score(&t(&xs)).unwrap();
    for (i, x) in xs.iter().enumerate() {
        let (la, lb) = (log_normal_2d(*x, ma, sa), log_normal_2d(*x, mb, sb));
        let got_a = ld.double_value(&[i as i64, 0]);
        let got_b = ld.double_value(&[i as i64, 1]);
        assert!(
            (got_a - la).abs() < 1e-10 * la.abs().max(1.0),
            "{got_a} vs {la}"
        );
        assert!(
            (got_b - lb).abs() < 1e-10 * lb.abs().max(1.0),
            "{got_b} vs {lb}"
        );
        let lse = la.max(lb) + ((la - la.max(lb)).exp() + (lb - la.max(lb)).exp()).ln();
        assert!((scores[i] - lse).abs() < 1e-10 * lse.abs().max(1.0));
    }
    // Condition number of class 0 = ratio of the eigenvalues of its 2x2 covariance.
    let (tr, det) = (
        sa[0][0] + sa[1][1],
        sa[0][0] * sa[1][1] - sa[0][1] * sa[0][1],
    );
    let disc = (tr * tr / 4.0 - det).sqrt();
    let cond = (tr / 2.0 + disc) / (tr / 2.0 - disc);
    assert!((g.info.condition_numbers[0].unwrap() - cond).abs() < 1e-8 * cond);
}

#[test]
fn rank_deficient_covariance_gets_recorded_jitter() {
    // Class 0 lies on the line y = 2x: its covariance has rank 1.
    let feats = t(&[
        [0.0, 0.0],
        [1.0, 2.0],
        [2.0, 4.0],
        [3.0, 6.0],
        [0.0, 1.0],
        [1.0, 0.0],
        [1.0, 1.0],
    ]);
    let g = Gda::fit(&feats, &labels(&[0, 0, 0, 0, 1, 1, 1], 2).unwrap()).unwrap();
    assert!(g.info.jitter > 0.0, "jitter {}", g.info.jitter);
    let ladder = jitter_ladder();
    let k = ladder
        .iter()
        .position(|&e| e == g.info.jitter)
        .expect("jitter is on the ladder");
    // The previous ladder value fails for class 0 (checked directly).
    let cov0 = Tensor::from_slice(&[5.0 / 3.0, 10.0 / 3.0, 10.0 / 3.0, 20.0 / 3.0]).view([2, 2]);
    let (_, info) = (&cov0 + Tensor::eye(2, (Kind::Double, tch::Device::Cpu)) * ladder[k - 1])
        .linalg_cholesky_ex(false, false);
    assert_ne!(i32::try_from(info).unwrap(), 0);
    assert!(g.score(&t(&[[1.0, 2.0]])).unwrap()[0].is_finite());
    assert_eq!(g.info.condition_numbers.len(), 2);
}

#[test]
fn fit_errors_name_the_problem() {
    let one_each = Gda::fit(&t(&[[0.0, 1.0], [1.0, 0.0]]), &labels(&[0, 1], 2).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        one_each.contains("class 0 has 1 training sample"),
        "{one_each}"
    );
    let bad_label = labels(&[0, 7], 2).unwrap_err().to_string();
    assert!(bad_label.contains("label of sample 1 is 7"), "{bad_label}");
    // NaN features: no jitter helps; the error lists the classes.
    let nan = t(&[[f64::NAN, 1.0], [1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]);
    let e = Gda::fit(&nan, &labels(&[0, 0, 1, 1], 2).unwrap()).unwrap_err();
    assert!(
        matches!(e, Error::NotPositiveDefinite { ref classes, .. } if classes == &vec![0]),
        "{e}"
    );
    let g = Gda::fit(
        &t(&[[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.5]]),
        &labels(&[0, 0, 1, 1], 2).unwrap(),
    )
    .unwrap();
    assert!(
        g.score(&Tensor::zeros([3, 5], (Kind::Double, tch::Device::Cpu)))
            .is_err()
    );
}

#[test]
fn score_command_on_npy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    tch::manual_seed(0);
    let train = Tensor::randn([200, 3], (Kind::Float, tch::Device::Cpu));
    let labels = Tensor::arange(200, (Kind::Int64, tch::Device::Cpu)).remainder(2);
    let train = &train + labels.unsqueeze(1).to_kind(Kind::Float) * 4.0;
    train.write_npy(p("train.npy")).unwrap();
    labels.write_npy(p("labels.npy")).unwrap();
    train.narrow(0, 0, 50).write_npy(p("id.npy")).unwrap();
    (Tensor::randn([30, 3], (Kind::Float, tch::Device::Cpu)) * 3.0 + 20.0)
        .write_npy(p("far.npy"))
        .unwrap();
    let ncood = env!("CARGO_BIN_EXE_ncood");
    let out = common::run_ok(
        Command::new(ncood)
            .args(["score", "--train-features"])
            .args([
                p("train.npy"),
                "--train-labels".into(),
                p("labels.npy"),
                "--id-features".into(),
                p("id.npy"),
            ])
            .args([
                "--ood-features".into(),
                p("far.npy"),
                "--out".into(),
                p("r.json"),
            ]),
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("r.json")).unwrap()).unwrap();
    assert_eq!(r["ood"]["far"]["gda"]["auroc"].as_f64().unwrap(), 1.0);
    assert_eq!(r["gda"]["gda"]["jitter"].as_f64().unwrap(), 0.0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("| far | gda |"));
    // NaN in a file: an error naming the file and the row.
    let bad = Tensor::zeros([4, 3], (Kind::Float, tch::Device::Cpu));
    let _ = bad.get(2).get(1).fill_(f64::NAN);
    bad.write_npy(p("bad.npy")).unwrap();
    let out = Command::new(ncood)
        .args(["score", "--train-features"])
        .args([
            p("train.npy"),
            "--train-labels".into(),
            p("labels.npy"),
            "--id-features".into(),
            p("bad.npy"),
        ])
        .args([
            "--ood-features".into(),
            p("far.npy"),
            "--out".into(),
            p("r2.json"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.npy") && err.contains("row 2"), "{err}");
}
