//! Studies: spec validation, planning (dependencies, skipping finished tasks, added seeds, no run
//! twice), the local pool end to end on a tiny generated data root, a study killed, moved and
//! continued from elsewhere ending with the same per-run files and report as an uninterrupted
//! one, and what would fail late refused before anything is written.
mod common;
use common::ncood;
use ncood::study::{Plan, StudySpec, TaskKind, TaskState};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small study on the fake data under `root`: two variants, over-training, an intervention.
fn spec_text(root: &Path, extra_seed: bool) -> String {
    let seeds = if extra_seed { "[0, 1, 2]" } else { "[0, 1]" };
    format!(
        r#"
{base}

[[variant]]
name = "l2-short"
seeds = {seeds}
set = {{ "model.l2" = true }}

[[variant]]
name = "nol2-long"
seeds = [0]
set = {{ "optim.epochs" = 3 }}

[[overtrain]]
name = "l2-over"
source = "l2-short"
epochs = 3

[[intervention]]
source = "nol2-long"
from_epoch = 1
epochs = 1
drop_after = 1

[eval]
ood = ["noise-uniform", "flip-invert"]
epochs = [1]

[[roles]]
l2_short = "l2-short"
nol2_long = "nol2-long"
"#,
        base = common::tiny_study_base(root)
    )
}

fn digests(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "safetensors") {
                let d = format!("{:x}", Sha256::digest(std::fs::read(&p).unwrap()));
                out.push((p.strip_prefix(root).unwrap().display().to_string(), d));
            }
        }
    }
    let mut out = vec![];
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Copies a study directory without any checkpoint file (what results/ commits).
fn copy_without_checkpoints(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            if p.file_name().unwrap() != "checkpoints" {
                copy_without_checkpoints(&p, &dest);
            }
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// SIGKILLs a study's pool and its task processes, as a crash or Ctrl-C would: every process whose
/// command line names the study directory, by its own (positive) pid, pool first. Never a
/// negative pid: `kill -9 -N` is read by some kill(1) builds as a signal list ending in pid -1,
/// which kills every process.
fn kill_study(dir: &Path) -> usize {
    let mut killed = 0;
    for _ in 0..2 {
        for pid in study_processes(dir) {
            let ok = Command::new("kill").args(["-9", &pid.to_string()]).status();
            killed += ok.is_ok_and(|s| s.success()) as usize;
        }
    }
    killed
}

/// The pids of the study processes (pool and tasks) whose command line names `dir`, pool first.
fn study_processes(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut pids = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if pid != std::process::id() && cmd.contains("study") && cmd.contains(&needle) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Opens a report in headless Chromium (installed by scripts/setup.sh): every figure lays out
/// with a non-zero size (the page's own script says so on `<body data-figures>`), no console or
/// JavaScript error, and a screenshot in target/ for a person to look at.
fn in_a_browser(html: &Path) {
    let figures = std::fs::read_to_string(html)
        .unwrap()
        .matches("<figure ")
        .count();
    assert!(figures > 0, "the report has no figures");
    let chromium = |args: &[&str]| {
        let out = Command::new("chromium-headless-shell")
            .args(["--no-sandbox", "--disable-gpu"])
            .args(args)
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("chromium-headless-shell (scripts/setup.sh installs it)");
        assert!(out.status.success(), "{out:?}");
        out
    };
    // At 1280 px nothing is wider than the page and no table needs to scroll; at 400 px tables
    // scroll inside their own boxes and nothing else is wider than the page.
    for (width, scroll) in [("1280", "none"), ("400", "")] {
        let out = chromium(&[&format!("--window-size={width},3000"), "--dump-dom"]);
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            dom.contains("data-overflow=\"ok\""),
            "{width} px: {}",
            dom.split("data-overflow")
                .nth(1)
                .unwrap_or("no script result")
        );
        if !scroll.is_empty() {
            assert!(
                dom.contains(&format!("data-scroll=\"{scroll}\"")),
                "{width} px: {}",
                dom.split("data-scroll")
                    .nth(1)
                    .unwrap_or("no script result")
            );
        }
    }
    let out = chromium(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(&format!("data-figures=\"ok:{figures}\"")),
        "not every figure rendered: {}",
        dom.split("data-figures")
            .nth(1)
            .unwrap_or("no script result")
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.iter().all(|l| l.contains("ncood figures ok")) && !log.contains("Uncaught"),
        "console: {console:?}"
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,4000",
    ]);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

#[test]
fn spec_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let good = spec_text(tmp.path(), false);
    assert!(StudySpec::from_toml(&good).is_ok());
    let cases = [
        (good.replace("[eval]", "[evaluation]"), "evaluation"),
        (
            good.replace("\"model.l2\" = true", "\"model.l3\" = true"),
            "l3",
        ),
        (
            good.replace("source = \"l2-short\"", "source = \"l2\""),
            "l2 is not a variant",
        ),
        (
            good.replace(
                "epochs = 3\n\n[[intervention]]",
                "epochs = 2\n\n[[intervention]]",
            ),
            "not more than the 2 epochs",
        ),
        (
            good.replace("seeds = [0, 1]", "seeds = [1, 1]"),
            "listed twice",
        ),
        (
            good.replace("from_epoch = 1", "from_epoch = 9"),
            "not an epoch of nol2-long",
        ),
        (
            good.replace("name = \"l2-over\"", "name = \"l2-short\""),
            "used twice",
        ),
        (good.replace("width = 2", "width = 1"), "feature dimension"),
        (
            good.replace("name = \"l2-over\"", "name = \"l2/over\""),
            "names are",
        ),
        (
            good.replace("[[roles]]", "[[roles]]\nl2_overtrain = \"l2-short\""),
            "not an over-training",
        ),
        (
            good.replace("[[roles]]", "[[roles]]\nl2_long = \"l2-over\""),
            "l2-over is not a variant",
        ),
        (
            good.clone() + "\n[slurm]\npartition = \"gpu\\n#SBATCH --begin=now\"\n",
            "slurm.partition",
        ),
        (
            good.clone() + "\n[slurm]\nextra = [\"account=abc\"]\n",
            "not an sbatch option",
        ),
        // Issue 17: runs the plan would make twice, and studies that could never finish.
        (
            good.replace(
                "drop_after = 1",
                "drop_after = 1\ngroups = [\"nc\", \"nc\"]",
            ),
            "nc is listed twice",
        ),
        (
            good.replace(
                "[eval]",
                "[[intervention]]\nsource = \"nol2-long\"\nfrom_epoch = 1\nepochs = 2\n\n[eval]",
            ),
            "the intervention from nol2-long at epoch 1 is given twice",
        ),
        (
            good.replace(
                "[[overtrain]]",
                "[[variant]]\nname = \"nol2-long-intervene-e1-control\"\nseeds = [0]\n\n[[overtrain]]",
            ),
            "the name nol2-long-intervene-e1-control is used twice: by the control group of the intervention from nol2-long at epoch 1 and by the variant nol2-long-intervene-e1-control",
        ),
        (
            good.replace("name = \"l2-over\"", "name = \"nol2-long-intervene-e1-nc\""),
            "by the nc group of the intervention from nol2-long at epoch 1 and by the over-training",
        ),
        (
            good.replace("[base]\n", "[base]\ncheckpoint_every = 2\n"),
            "l2-short has no checkpoint at epoch 1 to evaluate (checkpoint_every = 2",
        ),
        (
            good.replace("epochs = [1]", "epochs = [0, 1]"),
            "count from 1",
        ),
        (
            good.replace("\"model.l2\" = true }", "\"model.l2\" = true, seed = 5 }"),
            "set.seed: a variant's seeds are its `seeds` list (seeds = [5])",
        ),
        (good.replace("[base]\n", "[base]\nseed = 5\n"), "base.seed"),
    ];
    for (text, needle) in cases {
        let e = StudySpec::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains(needle), "expected {needle:?} in: {e}");
    }
}

#[test]
fn a_plan_never_holds_a_run_twice() {
    // Specs built in code skip the file's validation: the plan itself refuses what would give
    // the report one run twice (or two runs under one name and seed).
    let tmp = tempfile::tempdir().unwrap();
    let good = StudySpec::from_toml(&spec_text(tmp.path(), false)).unwrap();
    let root = tmp.path().join("study");
    assert!(Plan::new(&good, &root).is_ok());
    let mut twice = good.clone();
    twice.interventions.push(good.interventions[0].clone());
    let e = Plan::new(&twice, &root).unwrap_err().to_string();
    assert!(
        e.contains("two runs are named nol2-long-intervene-e1-control with seed 0"),
        "{e}"
    );
    let mut named = good.clone();
    let mut v = good.variants[0].clone();
    v.name = "nol2-long-intervene-e1-nc".into();
    named.variants.push(v);
    let e = Plan::new(&named, &root).unwrap_err().to_string();
    assert!(
        e.contains("two runs are named nol2-long-intervene-e1-nc with seed 0"),
        "{e}"
    );
    let mut groups = good.clone();
    groups.interventions[0].groups = vec!["control".into(), "control".into()];
    let e = Plan::new(&groups, &root).unwrap_err().to_string();
    assert!(e.contains("control is listed twice"), "{e}");
}

#[test]
fn plans_respect_dependencies_and_extensions() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = StudySpec::from_toml(&spec_text(tmp.path(), false)).unwrap();
    let plan = Plan::new(&spec, &tmp.path().join("study")).unwrap();
    // 3 trainings (+2 evals each: epoch 1 and last), 2 over-trainings (+1 eval: they hold
    // epochs 2 and 3 only), 1 intervention (+1 eval per group).
    assert_eq!(plan.tasks.len(), 3 * 3 + 2 * 2 + 3);
    for t in &plan.tasks {
        for &d in &t.deps {
            assert!(d < t.id, "{} needs a later task", t.label);
        }
        let needs = |kind: fn(&TaskKind) -> bool| t.deps.iter().any(|&d| kind(&plan.tasks[d].kind));
        match t.kind {
            TaskKind::Eval { .. } => assert!(
                needs(|k| !matches!(k, TaskKind::Eval { .. })),
                "{}",
                t.label
            ),
            TaskKind::Overtrain { .. } | TaskKind::Intervene { .. } => {
                assert!(
                    needs(|k| matches!(k, TaskKind::Train { .. })),
                    "{}",
                    t.label
                )
            }
            TaskKind::Train { .. } => assert!(t.deps.is_empty()),
        }
        assert_eq!(plan.state(t), TaskState::Absent);
    }
    // Extensions: added seeds are fine, a changed base is not.
    let bigger = StudySpec::from_toml(&spec_text(tmp.path(), true)).unwrap();
    assert!(bigger.extends(&spec).is_ok());
    assert!(spec.extends(&bigger).unwrap_err().contains("lost seed 2"));
    let other = StudySpec::from_toml(
        &spec_text(tmp.path(), false).replace("batch_size = 32", "batch_size = 30"),
    )
    .unwrap();
    assert!(other.extends(&spec).unwrap_err().contains("base"));
}

#[test]
fn a_study_runs_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 300, 60);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path(), false)).unwrap();
    let run = |out: &PathBuf| {
        let mut c = ncood();
        c.args(["study", "run"])
            .arg(&spec)
            .arg("--out")
            .arg(out)
            .args(["--jobs", "2", "--threads", "1"]);
        c
    };
    // Uninterrupted.
    let a = tmp.path().join("a");
    let out = run(&a).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        for l in text.lines().filter(|l| l.starts_with("FAILED")) {
            let log = l.split("log: ").nth(1).unwrap().trim_end_matches(')');
            eprintln!("{l}\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        panic!("{text}");
    }
    assert!(
        text.contains("16 tasks, 0 finished before, 16 now, 0 failed"),
        "{text}"
    );
    let plan = Plan::new(
        &StudySpec::from_toml(&spec_text(tmp.path(), false)).unwrap(),
        &a,
    )
    .unwrap();
    assert!(
        plan.tasks
            .iter()
            .all(|t| plan.state(t) == TaskState::Finished)
    );
    assert!(a.join("runs/l2-short/s1/eval/epoch-0001.json").exists());
    assert!(
        a.join("runs/nol2-long/s0/intervene-e0001/nc/eval/epoch-0001.json")
            .exists()
    );
    // The report: tidy rows that agree with the runs' own files, and means over seeds.
    let out = common::run_ok(ncood().arg("report").arg(&a));
    let printed = String::from_utf8_lossy(&out.stdout);
    // The terminal gets the headline (one line per claim) and the report's path, not the parts.
    assert!(
        printed.contains("aggregates over seeds")
            && printed.contains("verdicts on noise-uniform")
            && printed.contains("too few seeds (needs 6)")
            && printed.contains("regime: OUT of the paper's regime"),
        "{printed}"
    );
    assert!(printed.lines().count() <= 30, "{printed}");
    let csv = std::fs::read_to_string(a.join("report/results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("run,seed,epoch,source,ood,score,features,metric,value")
    );
    let value = |run: &str, seed: &str, epoch: &str, rest: &str| -> f64 {
        let prefix = format!("{run},{seed},{epoch},{rest},");
        let hits: Vec<&str> = csv.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(hits.len(), 1, "{prefix}");
        hits[0][prefix.len()..].parse().unwrap()
    };
    let log = ncood::run::RunDir::new(a.join("runs/l2-short/s1"))
        .log()
        .unwrap();
    assert_eq!(
        value("l2-short", "1", "2", "log,,,,test_acc"),
        log[1].test_acc
    );
    let nc1 = log[1].track.as_ref().unwrap().nc.nc1.unwrap();
    assert_eq!(value("l2-short", "1", "2", "log,,,normalized,nc1"), nc1);
    let eval: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("runs/l2-short/s0/eval/epoch-0002.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        value(
            "l2-short",
            "0",
            "2",
            "eval,flip-invert,gda,normalized,auroc"
        ),
        eval["ood"]["flip-invert"]["gda_normalized"]["auroc"]
            .as_f64()
            .unwrap()
    );
    assert!(csv.contains("nol2-long-intervene-e1-nc,0,1,log,"));
    let agg = std::fs::read_to_string(a.join("report/aggregate.csv")).unwrap();
    let mean = (value("l2-short", "0", "2", "log,,,,test_acc") + log[1].test_acc) / 2.0;
    let line = agg
        .lines()
        .find(|l| l.starts_with("l2-short,2,log,,,,test_acc,2,"))
        .unwrap();
    let got: f64 = line.split(',').nth(8).unwrap().parse().unwrap();
    assert!((got - mean).abs() < 1e-15, "{line} vs {mean}");
    // Claims from the roles: C1-C4 per OoD set and C2, out of the paper's regime (the 3-epoch
    // baseline is still learning), with the seeds each method would need; the rest "too few
    // seeds" with 2 and 1 seeds (a group of one has no spread: no evidence either way). The
    // headline set is the one the long runs track.
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report/claims.json")).unwrap())
            .unwrap();
    assert_eq!(file["primary_ood"], "noise-uniform");
    assert!(file["blocks"][0]["regime"]["why"].as_str().is_some());
    let training = file["training"].as_array().unwrap();
    let l2 = training.iter().find(|t| t["run"] == "l2-short").unwrap();
    let groups: Vec<&str> = training
        .iter()
        .map(|t| t["run"].as_str().unwrap())
        .collect();
    let once: std::collections::BTreeSet<&str> = groups.iter().copied().collect();
    assert_eq!(
        groups.len(),
        once.len(),
        "one training row per run group: {groups:?}"
    );
    assert_eq!(
        (l2["seeds"].as_u64(), l2["epochs"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(l2["steps"].as_u64().unwrap() > 0 && l2["precision"] == "fp32");
    let claims = file["claims"].as_array().unwrap();
    let ids: Vec<(&str, &str, &str)> = claims
        .iter()
        .map(|c| {
            let v = c["verdict"].as_str().unwrap();
            (c["claim"].as_str().unwrap(), c["ood"].as_str().unwrap(), v)
        })
        .filter(|c| ["C1", "C1+", "C2", "C3", "C4"].contains(&c.0))
        .collect();
    let (few, out) = ("too_few_seeds", "out_of_regime");
    assert_eq!(
        ids,
        [
            ("C1", "flip-invert", out),
            ("C1+", "flip-invert", out),
            ("C3", "flip-invert", out),
            ("C4", "flip-invert", out),
            ("C1", "noise-uniform", out),
            ("C1+", "noise-uniform", out),
            ("C3", "noise-uniform", out),
            ("C4", "noise-uniform", out),
            ("C2", "", out),
        ]
    );
    let needs = |id: &str| claims.iter().find(|c| c["claim"] == id).unwrap()["needs"].as_u64();
    assert_eq!(
        (needs("C1"), needs("C3"), needs("C4")),
        (Some(6), Some(10), Some(11))
    );
    // C6 compares the NC measures of L2-short with no-L2-long on each one's head input and raw
    // against raw (5 parts each, ratios in the note); C7 is one verdict per model and set of
    // the seven softmax scores; C8 one per no-L2 long run when it has a rho (the tracked AUROC
    // against uniform noise can be 1 at every epoch of this tiny run, and a constant has no
    // rank correlation: whether it is depends on float rounding); C10 the NC-loss group's false
    // positives.
    let count = |id: &str| claims.iter().filter(|c| c["claim"] == id).count();
    assert_eq!((count("C6"), count("C6 raw")), (1, 1));
    let c6 = claims.iter().find(|c| c["claim"] == "C6").unwrap();
    assert_eq!(c6["parts"].as_array().unwrap().len(), 5);
    assert!(c6["note"].as_str().unwrap().contains("x"));
    assert_eq!(count("C7"), 2 * 2, "two models, two sets");
    assert!(
        claims
            .iter()
            .filter(|c| c["claim"] == "C7")
            .all(|c| c["parts"].as_array().unwrap().len() == 7)
    );
    assert!(count("C8") <= 1 && count("C10") == 1);
    assert!(
        claims
            .iter()
            .all(|c| c["verdict"] == few || c["verdict"] == out),
        "{claims:?}"
    );
    let c1 = &claims.iter().find(|c| c["claim"] == "C1").unwrap()["parts"][0];
    let l2 = c1["values"][0].as_f64().unwrap();
    let l2_direct = (value(
        "l2-short",
        "0",
        "2",
        "eval,flip-invert,gda,normalized,auroc",
    ) + value(
        "l2-short",
        "1",
        "2",
        "eval,flip-invert,gda,normalized,auroc",
    )) / 2.0;
    assert!((l2 - l2_direct).abs() < 1e-15, "{l2} vs {l2_direct}");
    assert_eq!(
        c1["values"][1].as_f64().unwrap(),
        value("nol2-long", "0", "3", "eval,flip-invert,gda,raw,auroc")
    );
    // Each table cell is the mean/min/max over seeds of its values in results.csv.
    let html = std::fs::read_to_string(a.join("report/report.html")).unwrap();
    let table: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("report/table1-resnet18.json")).unwrap(),
    )
    .unwrap();
    let header: Vec<&str> = table["header"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let mut checked = 0;
    for row in table["rows"].as_array().unwrap() {
        let run = row[0].as_str().unwrap();
        if run.starts_with("published") {
            // The published anchor on Fashion-MNIST (DUQ): accuracy 0.924.
            assert_eq!(row[3], "0.924");
            continue;
        }
        let epoch = row[1].as_str().unwrap();
        let features = row[2].as_str().unwrap().split(' ').next().unwrap();
        let seeds: &[&str] = if run == "l2-short" {
            &["0", "1"]
        } else {
            &["0"]
        };
        for (col, cell) in header.iter().zip(row.as_array().unwrap()).skip(3) {
            let rest = match col.strip_prefix("AUROC ") {
                Some(set) => format!("eval,{set},gda,{features},auroc"),
                None => "eval,,,,accuracy".into(),
            };
            let v: Vec<f64> = seeds.iter().map(|s| value(run, s, epoch, &rest)).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            assert!(
                (cell["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
                "{run} {col}"
            );
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            assert_eq!(cell["min"].as_f64().unwrap(), min, "{run} {col}");
            assert_eq!(cell["n"].as_u64().unwrap() as usize, v.len());
            // report.html shows the same numbers: mean ± std over [min, max].
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let std = match v.len() {
                1 => "-".to_string(),
                n => {
                    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                    format!("{:.4}", var.sqrt())
                }
            };
            let shown = format!("<td class=\"num\">{mean:.4} ± {std}<br>[{min:.4}, {max:.4}]</td>");
            assert!(html.contains(&shown), "{shown} not in report.html");
            checked += 1;
        }
    }
    // L2-short: a row on its head's (normalised) features and one on raw ones; no-L2: one row.
    assert_eq!(checked, 3 * 3);
    for name in ["table3-resnet18", "table4-resnet18"] {
        assert!(a.join(format!("report/{name}.csv")).exists(), "{name}");
    }
    assert!(html.contains("Table 1 (resnet18)") && html.contains("<figure"));
    // Table 3: NC at each model's last epoch, L2 on the normalised features its head reads and on
    // its raw ones, no L2 on its raw ones.
    let table: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("report/table3-resnet18.json")).unwrap(),
    )
    .unwrap();
    let rows = table["rows"].as_array().unwrap();
    let cells: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            let f = r[3].as_str().unwrap().split(' ').next().unwrap();
            (r[1].as_str().unwrap(), r[2].as_str().unwrap(), f)
        })
        .collect();
    assert_eq!(
        cells,
        [
            ("l2-short", "2", "normalized"),
            ("l2-short", "2", "raw"),
            ("nol2-long", "3", "raw")
        ]
    );
    for (r, (run, epoch, features)) in rows.iter().zip(cells) {
        let seeds: &[&str] = if run == "l2-short" {
            &["0", "1"]
        } else {
            &["0"]
        };
        for (k, metric) in [
            "nc1",
            "nc2_equinorm_means",
            "nc2_equiangularity_means",
            "nc3",
            "nc4",
        ]
        .iter()
        .enumerate()
        {
            let rest = format!("log,,,{features},{metric}");
            let v: Vec<f64> = seeds.iter().map(|s| value(run, s, epoch, &rest)).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            assert!(
                (r[4 + k]["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
                "{run} {features} {metric}"
            );
        }
    }
    // The report from a copy of the study without its checkpoints is the same report.
    let copy = tmp.path().join("copy").join("a");
    copy_without_checkpoints(&a, &copy);
    common::run_ok(ncood().arg("report").arg(&copy));
    for f in [
        "results.csv",
        "claims.json",
        "claims.md",
        "tables.md",
        "report.html",
    ] {
        let read = |d: &Path| std::fs::read_to_string(d.join("report").join(f)).unwrap();
        assert!(
            read(&a) == read(&copy),
            "report/{f} differs without checkpoints"
        );
    }
    assert!(printed.contains(&a.join("report/report.html").display().to_string()));
    in_a_browser(&a.join("report/report.html"));
}

#[test]
fn a_study_killed_moved_and_continued_ends_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 300, 60);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path(), false)).unwrap();
    // `study run` from the working directory `cwd` into `out` (relative to it, or absolute).
    let run = |cwd: &Path, out: &Path| {
        let mut c = ncood();
        c.current_dir(cwd)
            .args(["study", "run"])
            .arg(&spec)
            .arg("--out")
            .arg(out)
            .args(["--jobs", "2", "--threads", "1"]);
        c
    };
    // Uninterrupted, as `--out a`; run again, nothing to do.
    let a = tmp.path().join("a");
    common::run_ok(&mut run(tmp.path(), Path::new("a")));
    let out = common::run_ok(&mut run(tmp.path(), &a));
    assert!(String::from_utf8_lossy(&out.stdout).contains("16 finished before, 0 now"));

    // Interrupted (every study process SIGKILLed, as a crash would) once early and once as the
    // intervention starts, its first group having recorded where it starts from; then moved and
    // continued through its absolute path from another working directory (as SLURM's jobs reach
    // it): the same checkpoints, byte for byte, and the same report.
    let uninterrupted = digests(&a);
    // A name no other command line holds: kill_study finds the study's processes by it.
    let name = format!("killed-study-{}", std::process::id());
    let b = tmp.path().join(&name);
    let wait_until = |what: &str, done: &dyn Fn() -> bool| {
        let t0 = std::time::Instant::now();
        while !done() {
            assert!(t0.elapsed().as_secs() < 300, "waited 5 minutes for {what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let mut child = run(tmp.path(), Path::new(&name))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A second after the pool's first task process appears (however busy the machine).
    wait_until("a task", &|| study_processes(Path::new(&name)).len() >= 2);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let killed = kill_study(Path::new(&name));
    child.wait().unwrap();
    assert!(killed >= 2, "{killed} processes killed");
    let group = b.join("runs/nol2-long/s0/intervene-e0001/control/config.toml");
    let mut child = run(tmp.path(), Path::new(&name))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the intervention", &|| group.exists());
    kill_study(Path::new(&name));
    child.wait().unwrap();
    let moved = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&moved).unwrap();
    let c = moved.join("study");
    std::fs::rename(&b, &c).unwrap();
    common::run_ok(&mut run(&moved, &c));
    assert_eq!(uninterrupted, digests(&c));
    // Weights and state files: l2-short 2 seeds x 2 epochs, nol2-long 3 epochs, l2-over 2 seeds x
    // (the copied epoch 2 and epoch 3), 2 intervention groups x 1 epoch.
    assert_eq!(uninterrupted.len(), 2 * (2 * 2 + 3 + 2 * 2 + 2));
    let report = |dir: &Path, file: &str| std::fs::read(dir.join("report").join(file)).unwrap();
    for file in ["results.csv", "claims.json"] {
        assert!(report(&a, file) == report(&c, file), "{file} differ");
    }

    // The report reads only the files the run layout defines, clears the temporary files a
    // killed report left, and refuses a value its metric cannot take, naming the file.
    let eval = c.join("runs/l2-short/s0/eval");
    std::fs::copy(eval.join("epoch-0002.json"), eval.join("notes.json")).unwrap();
    let stale = c.join("report/.results.csv.4242.tmp");
    std::fs::write(&stale, "torn").unwrap();
    common::run_ok(ncood().arg("report").arg(&c));
    assert!(report(&a, "results.csv") == report(&c, "results.csv"));
    assert!(!stale.exists());
    let path = eval.join("epoch-0002.json");
    let mut e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    e["ood"]["flip-invert"]["gda_normalized"]["auroc"] = 7.5.into();
    std::fs::write(&path, e.to_string()).unwrap();
    let out = ncood().arg("report").arg(&c).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&path.display().to_string())
            && err.contains("flip-invert gda normalized auroc at epoch 2 is 7.5"),
        "{err}"
    );

    // A changed study cannot take over the directory.
    std::fs::write(
        &spec,
        spec_text(tmp.path(), false).replace("batch_size = 32", "batch_size = 30"),
    )
    .unwrap();
    let out = run(tmp.path(), &a).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds another study"));
}

#[test]
fn what_would_fail_late_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 300, 60);
    let spec = tmp.path().join("study.toml");
    let out = tmp.path().join("s");
    let study = |dry_run: bool| {
        let mut c = ncood();
        c.args(["study", "run"]).arg(&spec).arg("--out").arg(&out);
        if dry_run {
            c.arg("--dry-run");
        }
        c.output().unwrap()
    };
    let fails = |o: std::process::Output, needles: &[&str]| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in: {err}");
        }
    };
    // The NC group's class-balanced batches (32 / 10 = 3 images of every class) cannot come from
    // a 20-image training subset (2 of each): refused before its source trains, by --dry-run too.
    let small = spec_text(tmp.path(), false).replace(
        "\"optim.epochs\" = 3 }",
        "\"optim.epochs\" = 3, \"data.train_subset\" = 20 }",
    );
    std::fs::write(&spec, small).unwrap();
    for dry_run in [true, false] {
        let needles = [
            "intervention from nol2-long (nc group, seed 0): optim.batch_size",
            "batches of 3 images per class",
            "smallest class has 2",
        ];
        fails(study(dry_run), &needles);
        assert!(!out.exists());
    }
    // While another process holds the study, a second one is refused, naming the directory and
    // the holder (and --dry-run says so after the plan).
    std::fs::write(&spec, spec_text(tmp.path(), false)).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let held = ncood::atomic::lock(&out.join("study.lock"))
        .unwrap()
        .unwrap();
    let holder = format!("study.lock is held by pid {}", std::process::id());
    let dir = format!("study {}", out.display());
    let dry = study(true);
    assert!(String::from_utf8_lossy(&dry.stdout).contains("train l2-short s0"));
    fails(dry, &[&dir, &holder]);
    fails(study(false), &[&dir, &holder]);
    assert!(!out.join("study.toml").exists() && !out.join("runs").exists());
    drop(held);
}

#[test]
fn presets_plan_and_bad_flags_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (preset, tasks) in [("quick", 30), ("cpu", 36), ("cpu-full", 90)] {
        let out = common::run_ok(
            ncood()
                .args(["reproduce", "--preset", preset, "--dry-run", "--out"])
                .arg(tmp.path().join(preset)),
        );
        let plan = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            plan.lines().filter(|l| l.contains(" absent ")).count(),
            tasks,
            "{plan}"
        );
    }
    let none = ncood()
        .args(["reproduce", "--jobs", "0", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--jobs 0"));
    let bad = ncood()
        .args(["reproduce", "--preset", "huge"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("quick, cpu, cpu-full, paper"));
}

#[test]
fn the_paper_previews_without_its_data_and_names_each_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("no-data");
    std::fs::create_dir_all(&empty).unwrap();
    let out = tmp.path().join("paper");
    // --dry-run prints the plan, then fails as the run does, naming every missing file.
    for dry_run in [true, false] {
        let mut cmd = ncood();
        cmd.args(["study", "run", "paper", "--out"])
            .arg(&out)
            .env("NCOOD_DATA", &empty);
        if dry_run {
            cmd.arg("--dry-run");
        }
        let run = cmd.output().unwrap();
        let plan = String::from_utf8_lossy(&run.stdout);
        assert_eq!(plan.contains("train rn50-l2-short s14"), dry_run, "{plan}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{err}");
        for file in [
            "cifar10/cifar-10-binary.tar.gz",
            "svhn/test_32x32.mat",
            "cifar100/cifar-100-binary.tar.gz",
        ] {
            assert!(err.contains(file), "{file} not named in: {err}");
        }
        assert!(
            !out.exists(),
            "nothing is written before the data are there"
        );
    }
}

#[test]
fn cpu_full_extends_the_cpu_study() {
    // `reproduce --preset cpu-full` on the cpu study's directory continues it in place.
    let (cpu, full) = (
        ncood::study::preset("cpu").unwrap(),
        ncood::study::preset("cpu-full").unwrap(),
    );
    assert_eq!(full.extends(&cpu), Ok(()));
    assert!(cpu.extends(&full).unwrap_err().contains("removed"));
    // The recorded study of results/cpu is the preset.
    let recorded = StudySpec::from_toml(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/cpu/study.toml"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(full.extends(&recorded), Ok(()));
}

#[test]
fn the_committed_studies_report_from_the_repository_alone() {
    // results/quick and results/cpu are the presets' study directories without checkpoints: each
    // report is made again from the repository alone, and it is the committed one.
    for name in ["quick", "cpu"] {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(name);
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join(name);
        copy_without_checkpoints(&committed, &copy);
        std::fs::remove_dir_all(copy.join("report")).unwrap();
        let out = common::run_ok(ncood().arg("report").arg(&copy));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.lines().count() <= 32, "{printed}");
        for f in ["results.csv", "claims.json"] {
            let read = |d: &Path| std::fs::read_to_string(d.join("report").join(f)).unwrap();
            assert!(
                read(&committed) == read(&copy),
                "results/{name}/report/{f} is not what `ncood report results/{name}` writes now: run it and commit"
            );
        }
    }
}
