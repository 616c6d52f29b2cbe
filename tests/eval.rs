//! `ncood eval` on a tiny generated data root agrees with `ncood score` run on the features and
//! logits `ncood features` exports from the same checkpoint.
mod common;
use common::ncood;
use std::path::Path;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn eval_agrees_with_score_on_exported_features() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 200, 60);
    let run = tmp.path().join("run");
    common::run_ok(&mut common::train_cli(
        tmp.path(),
        &run,
        &[
            "--epochs",
            "2",
            "--seed",
            "5",
            "--set",
            "model.width=2",
            "--set",
            "model.l2=true",
        ],
    ));
    let out = common::run_ok(ncood().arg("eval").arg(&run).args([
        "--ood",
        "flip-invert,noise-gaussian",
        "--device",
        "cpu",
        "--threads",
        "1",
    ]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| flip-invert | gda_normalized |"),
        "{table}"
    );
    let e = json(&run.join("eval/epoch-0002.json"));
    assert_eq!(e["epoch"], 2);
    assert_eq!(e["ood_sizes"]["flip-invert"], 60);
    assert!(run.join("eval/epoch-0002.md").exists());

    // The same features through the file path.
    let prefix = |n: &str| tmp.path().join(n);
    for (data, split, name) in [
        ("fashion-mnist", "train", "tr"),
        ("fashion-mnist", "test", "id"),
        ("flip-invert", "test", "flip-invert"),
    ] {
        common::run_ok(
            ncood()
                .arg("features")
                .arg(&run)
                .args(["--data", data, "--split", split, "--device", "cpu", "--out"])
                .arg(prefix(name)),
        );
    }
    let f = |name: &str, kind: &str| prefix(&format!("{name}.{kind}.npy"));
    for (kind, score) in [("raw", "gda_raw"), ("normalized", "gda_normalized")] {
        let out = prefix(&format!("score-{kind}.json"));
        // The OoD file must be named by its set: its stem is the set's name.
        std::fs::copy(f("flip-invert", kind), prefix("flip-invert.npy")).unwrap();
        std::fs::copy(f("flip-invert", "logits"), prefix("flip-invert-logits.npy")).unwrap();
        common::run_ok(
            ncood()
                .arg("score")
                .arg("--train-features")
                .arg(f("tr", kind))
                .arg("--train-labels")
                .arg(f("tr", "labels"))
                .arg("--id-features")
                .arg(f("id", kind))
                .arg("--ood-features")
                .arg(prefix("flip-invert.npy"))
                .arg("--id-logits")
                .arg(f("id", "logits"))
                .arg("--ood-logits")
                .arg(prefix("flip-invert-logits.npy"))
                .arg("--id-labels")
                .arg(f("id", "labels"))
                .arg("--out")
                .arg(&out),
        );
        let s = json(&out);
        // GDA: the same numbers (float32 features in both paths, fitted in float64).
        let (ours, theirs) = (
            &e["ood"]["flip-invert"][score],
            &s["ood"]["flip-invert"]["gda"],
        );
        for m in [
            "auroc",
            "aupr_in",
            "aupr_out",
            "fpr95_ood_positive",
            "fpr95_id_positive",
        ] {
            let (a, b) = (ours[m].as_f64().unwrap(), theirs[m].as_f64().unwrap());
            assert!((a - b).abs() < 1e-12, "{score} {m}: eval {a} vs score {b}");
        }
        assert_eq!(ours["topn_false_positives"], theirs["topn_false_positives"]);
        assert_eq!(e["gda"][score]["jitter"], s["gda"]["gda"]["jitter"]);
        // The softmax family and the ID metrics from the logits.
        for m in ["msp", "max_logit", "neg_entropy", "energy"] {
            let (a, b) = (
                e["ood"]["flip-invert"][m]["auroc"].as_f64().unwrap(),
                s["ood"]["flip-invert"][m]["auroc"].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-12, "{m}: {a} vs {b}");
        }
        assert_eq!(e["id"]["accuracy"], s["id"]["accuracy"]);
        assert_eq!(e["id"]["n"], 60);
    }
}
