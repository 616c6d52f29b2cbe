//! The SLURM executor under a real slurmctld and slurmd (`scripts/slurm.sh start DIR` sets one up
//! on this machine and prints the SLURM_CONF to export): a tiny study submitted as job arrays ends
//! with the same results as the local pool, byte for byte; the finished study submits nothing
//! more; `study status` shows the jobs. A failed task fails its dependents, saying why, while
//! unrelated tasks finish, and a re-run submits only what is unfinished; while a study's jobs are
//! queued, `study run` refuses. An intervention begun by a local run (the study's path spelled
//! relative to the working directory) is continued by SLURM's jobs (absolute paths) to the same
//! checkpoints. These tests need a cluster: they are ignored outside CI (`--ignored` runs them;
//! scripts/test.sh does once its cluster is up) and fail under `CI=true` without one. Without
//! `sbatch` on PATH the executor says so and writes nothing; a study path sbatch cannot take, a
//! line break in an sbatch value and `--threads 0` without `cpus_per_task` are refused, by
//! `--dry-run` too.
mod common;
use common::ncood;
use ncood::study::{Plan, StudySpec, TaskKind, TaskState};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Two variants, an over-training of one and the evaluations: three waves of jobs (training; the
/// over-training and the first evaluations; the over-training's evaluation).
fn spec_text(root: &Path) -> String {
    format!(
        r#"
{base}

[[variant]]
name = "l2"
seeds = [0]
set = {{ "model.l2" = true }}

[[variant]]
name = "nol2"
seeds = [0]

[[overtrain]]
name = "l2-over"
source = "l2"
epochs = 3

[eval]
ood = ["noise-uniform"]
"#,
        base = common::tiny_study_base(root)
    )
}

fn study_run(spec: &Path, out: &Path, executor: &str) -> Command {
    let mut c = ncood();
    c.args(["study", "run"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .args(["--executor", executor, "--threads", "1"]);
    c
}

/// Fails the test, saying why, unless SLURM can be used here: a test that needs SLURM is ignored
/// where it may be missing, never passed without it.
fn require_slurm() {
    if let Some(why) = no_slurm() {
        panic!("SLURM is needed and missing: {why}");
    }
}

/// Why SLURM cannot be used here, if it cannot.
fn no_slurm() -> Option<String> {
    if std::env::var_os("SLURM_CONF").is_none() {
        return Some("SLURM_CONF is not set (scripts/slurm.sh start DIR sets up SLURM)".into());
    }
    match Command::new("sinfo").arg("-h").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("sinfo: {}", String::from_utf8_lossy(&o.stderr))),
        Err(e) => Some(format!("sinfo: {e}")),
    }
}

#[test]
// Ignored outside CI (cfg(ci) is set by build.rs when CI=true, where it fails without SLURM).
#[cfg_attr(
    not(ci),
    ignore = "needs SLURM: scripts/slurm.sh start DIR, SLURM_CONF=DIR/slurm.conf, then --ignored"
)]
fn a_study_on_slurm_matches_the_local_pool() {
    require_slurm();
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 300, 60);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path())).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    let ids = submitted(&common::run_ok(&mut study_run(&spec, &a, "slurm")));
    assert_eq!(ids.len(), 3, "{ids:?}");
    let script = std::fs::read_to_string(a.join(format!("slurm/{}.sh", ids[2]))).unwrap();
    assert!(
        script.contains(&format!("--dependency=afterany:{}\n", ids[1])),
        "{script}"
    );
    // The local pool meanwhile, on the same cores.
    common::run_ok(study_run(&spec, &b, "local").args(["--jobs", "2"]));

    wait_for(&ids, &a);
    let plan = Plan::new(&StudySpec::from_toml(&spec_text(tmp.path())).unwrap(), &a).unwrap();
    let finished = plan
        .tasks
        .iter()
        .all(|t| plan.state(t) == TaskState::Finished);
    assert!(
        finished,
        "the jobs ended with tasks unfinished:\n{}",
        logs(&a)
    );

    let status = common::run_ok(ncood().args(["study", "status"]).arg(&a));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("SLURM jobs:"), "{status}");
    assert!(ids.iter().all(|id| status.contains(id)), "{status}");
    let finished = status.lines().filter(|l| l.contains(" finished ")).count();
    assert_eq!(finished, plan.tasks.len(), "{status}");

    let out = common::run_ok(&mut study_run(&spec, &a, "slurm"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("every task is finished"), "{text}");
    let recorded = std::fs::read_to_string(a.join("slurm/jobs.txt")).unwrap();
    assert_eq!(recorded.lines().count(), 3, "{recorded}");

    for dir in [&a, &b] {
        common::run_ok(ncood().arg("report").arg(dir));
    }
    for file in ["results.csv", "aggregate.csv", "tables.md"] {
        let read = |d: &Path| std::fs::read(d.join("report").join(file)).unwrap();
        assert!(read(&a) == read(&b), "{file} differ");
    }
    eprintln!("took {:.0} s", t0.elapsed().as_secs_f64());
}

/// The ids of the jobs a `study run --executor slurm` printed it submitted.
fn submitted(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.strip_prefix("submitted job ")?.split(':').next())
        .map(String::from)
        .collect()
}

/// Waits until none of the jobs `ids` of the study `dir` is queued or running (5 minutes at most).
fn wait_for(ids: &[String], dir: &Path) {
    let t0 = Instant::now();
    loop {
        let queue = common::run_ok(Command::new("squeue").args(["-h", "-j", &ids.join(",")]));
        if queue.stdout.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "jobs still queued after 5 minutes:\n{}\n{}",
            String::from_utf8_lossy(&queue.stdout),
            logs(dir)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Variants `good` and `bad`, each with an evaluation: bad reads its data from `root/bad`.
fn two_variants(root: &Path) -> String {
    format!(
        r#"
{base}

[[variant]]
name = "good"
seeds = [0]

[[variant]]
name = "bad"
seeds = [0]
set = {{ "data.root" = {bad:?} }}

[eval]
ood = ["noise-uniform"]
"#,
        base = common::tiny_study_base(root),
        bad = root.join("bad")
    )
}

#[test]
// Ignored outside CI (cfg(ci) is set by build.rs when CI=true, where it fails without SLURM).
#[cfg_attr(
    not(ci),
    ignore = "needs SLURM: scripts/slurm.sh start DIR, SLURM_CONF=DIR/slurm.conf, then --ignored"
)]
fn a_failed_task_fails_its_dependents_only() {
    require_slurm();
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (bad, away) = (tmp.path().join("bad"), tmp.path().join("away"));
    common::fake_fashion_mnist(tmp.path(), 200, 40);
    common::fake_fashion_mnist(&bad, 200, 40);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, two_variants(tmp.path())).unwrap();
    let a = tmp.path().join("a");

    // Held until bad's data is gone, so that its training fails whenever the jobs start.
    let run = common::run_ok(study_run(&spec, &a, "slurm").arg("--sbatch=--hold"));
    let ids = submitted(&run);
    assert_eq!(ids.len(), 2, "{ids:?}");
    std::fs::rename(&bad, &away).unwrap();
    common::run_ok(Command::new("scontrol").arg("release").args(&ids));
    wait_for(&ids, &a);

    // Good's tasks finished; bad's training failed, and its evaluation refused to start.
    let plan = Plan::new(
        &StudySpec::from_toml(&two_variants(tmp.path())).unwrap(),
        &a,
    )
    .unwrap();
    for t in &plan.tasks {
        let finished = plan.state(t) == TaskState::Finished;
        assert_eq!(
            finished,
            t.label.contains("good"),
            "{}\n{}",
            t.label,
            logs(&a)
        );
    }
    let eval = plan
        .tasks
        .iter()
        .find(|t| t.label.contains("bad") && matches!(t.kind, TaskKind::Eval { .. }))
        .unwrap();
    let log = std::fs::read_to_string(eval.log_path()).unwrap();
    assert!(log.contains("needs what has not finished"), "{log}");

    // With the data back, a re-run submits bad's two tasks alone and finishes the study.
    std::fs::rename(&away, &bad).unwrap();
    let run = common::run_ok(&mut study_run(&spec, &a, "slurm"));
    let text = String::from_utf8_lossy(&run.stdout);
    let jobs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("submitted"))
        .collect();
    assert_eq!(jobs.len(), 2, "{text}");
    assert!(
        jobs.iter()
            .all(|j| j.contains("1 task(s): ") && j.contains("bad")),
        "{text}"
    );
    wait_for(&submitted(&run), &a);
    let finished = plan
        .tasks
        .iter()
        .all(|t| plan.state(t) == TaskState::Finished);
    assert!(finished, "{}", logs(&a));
    eprintln!("took {:.0} s", t0.elapsed().as_secs_f64());
}

#[test]
// Ignored outside CI (cfg(ci) is set by build.rs when CI=true, where it fails without SLURM).
#[cfg_attr(
    not(ci),
    ignore = "needs SLURM: scripts/slurm.sh start DIR, SLURM_CONF=DIR/slurm.conf, then --ignored"
)]
fn a_study_with_queued_jobs_is_not_run_again() {
    require_slurm();
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 100, 20);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path())).unwrap();
    let a = tmp.path().join("a");
    // Held: they stay queued until cancelled.
    let ids = submitted(&common::run_ok(
        study_run(&spec, &a, "slurm").arg("--sbatch=--hold"),
    ));
    let again = study_run(&spec, &a, "slurm").output().unwrap();
    common::run_ok(Command::new("scancel").args(&ids));
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(err.contains("still queued or running"), "{err}");
    wait_for(&ids, &a);
}

#[test]
// Ignored outside CI (cfg(ci) is set by build.rs when CI=true, where it fails without SLURM).
#[cfg_attr(
    not(ci),
    ignore = "needs SLURM: scripts/slurm.sh start DIR, SLURM_CONF=DIR/slurm.conf, then --ignored"
)]
fn an_intervention_begun_locally_continues_under_slurm() {
    require_slurm();
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 200, 40);
    let spec = tmp.path().join("study.toml");
    let text = format!(
        "{}\n\n[[variant]]\nname = \"nol2\"\nseeds = [0]\n\n[[intervention]]\nsource = \"nol2\"\nfrom_epoch = 1\nepochs = 1\ndrop_after = 1\n\n[eval]\nood = [\"noise-uniform\"]\n",
        common::tiny_study_base(tmp.path())
    );
    std::fs::write(&spec, &text).unwrap();
    // Run locally as `--out a` from its parent folder; then its NC group is lost (as if killed
    // before it started), while the control group stays as that run recorded it.
    let a = tmp.path().join("a");
    common::run_ok(study_run(&spec, Path::new("a"), "local").current_dir(tmp.path()));
    let nc = a.join("runs/nol2/s0/intervene-e0001/nc");
    let digests = || {
        let mut d: Vec<(String, Vec<u8>)> = std::fs::read_dir(nc.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, Sha256::digest(std::fs::read(&p).unwrap()).to_vec())
            })
            .collect();
        d.sort();
        d
    };
    let local = digests();
    std::fs::remove_dir_all(&nc).unwrap();
    // SLURM's jobs reach it through its absolute path, from another working directory: the
    // control group is this intervention's, and the NC group trains as it did locally.
    let ids = submitted(&common::run_ok(
        study_run(&spec, &a, "slurm").current_dir(std::env::temp_dir()),
    ));
    wait_for(&ids, &a);
    let plan = Plan::new(&StudySpec::from_toml(&text).unwrap(), &a).unwrap();
    let finished = plan
        .tasks
        .iter()
        .all(|t| plan.state(t) == TaskState::Finished);
    assert!(finished, "{}", logs(&a));
    assert_eq!(local, digests());
}

/// Every task log and SLURM output file under the study `dir`, for a failure's message.
fn logs(dir: &Path) -> String {
    let mut s = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()) {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log" || x == "out") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                s += &format!("--- {}\n{text}\n", p.display());
            }
        }
    }
    s
}

#[test]
fn without_sbatch_the_executor_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 100, 20);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path())).unwrap();
    let a = tmp.path().join("a");
    let out = study_run(&spec, &a, "slurm")
        .env("PATH", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot run sbatch"), "{err}");
    assert!(!a.exists(), "a submission that cannot start writes nothing");
}

#[test]
fn zero_threads_are_sized_by_cpus_per_task_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 100, 20);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path())).unwrap();
    let out = tmp.path().join("a");
    // `--threads 0` (one per core) would ask SLURM for 0 CPUs: without cpus_per_task it is
    // refused, by --dry-run too, before anything is written (the script test in
    // src/study/slurm.rs shows cpus_per_task sizing it).
    for dry_run in [true, false] {
        let mut c = ncood();
        c.args(["study", "run"]).arg(&spec).arg("--out").arg(&out);
        c.args(["--executor", "slurm", "--threads", "0"]);
        if dry_run {
            c.arg("--dry-run");
        }
        let run = c.output().unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{err}");
        assert!(
            err.contains("threads: 0") && err.contains("cpus_per_task"),
            "{err}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn a_study_path_sbatch_cannot_take_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 100, 20);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path())).unwrap();
    let out = study_run(&spec, &tmp.path().join("50%"), "slurm")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("50%") && err.contains("'%'"), "{err}");
}

#[test]
fn a_line_break_in_an_sbatch_flag_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 100, 20);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path())).unwrap();
    let out = tmp.path().join("a");
    // --dry-run makes the same checks.
    for dry_run in [false, true] {
        let mut c = study_run(&spec, &out, "slurm");
        c.args(["--partition", "gpu\nrm -rf /tmp/x"]);
        if dry_run {
            c.arg("--dry-run");
        }
        let run = c.output().unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{err}");
        assert!(
            err.contains("slurm.partition") && err.contains("control character"),
            "{err}"
        );
        assert!(!out.exists());
    }
}
