//! The SLURM executor under a real slurmctld and slurmd (`scripts/slurm.sh start DIR` sets one up
//! on this machine and prints the SLURM_CONF to export): a tiny study submitted as job arrays ends
//! with the same results as the local pool, byte for byte; the finished study submits nothing
//! more; `study status` shows the jobs. Without SLURM_CONF or a working `sinfo` the test says why
//! and passes. Without `sbatch` on PATH the executor says so.
mod common;
use ncood::study::{Plan, StudySpec, TaskState};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn ncood() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ncood"))
}

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
fn a_study_on_slurm_matches_the_local_pool() {
    if let Some(why) = no_slurm() {
        eprintln!("skipped: {why}");
        return;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 300, 60);
    let spec = tmp.path().join("study.toml");
    std::fs::write(&spec, spec_text(tmp.path())).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    let out = common::run_ok(&mut study_run(&spec, &a, "slurm"));
    let text = String::from_utf8_lossy(&out.stdout);
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("submitted job ")?.split(':').next())
        .collect();
    assert_eq!(ids.len(), 3, "{text}");
    let script = std::fs::read_to_string(a.join(format!("slurm/{}.sh", ids[2]))).unwrap();
    assert!(
        script.contains(&format!("--dependency=afterok:{}\n", ids[1])),
        "{script}"
    );
    // The local pool meanwhile, on the same cores.
    common::run_ok(study_run(&spec, &b, "local").args(["--jobs", "2"]));

    // Wait for every task to finish and the jobs to leave the queue.
    let plan = Plan::new(&StudySpec::from_toml(&spec_text(tmp.path())).unwrap(), &a).unwrap();
    loop {
        // The queue first: once it is empty, the states read after it are final.
        let queue = common::run_ok(Command::new("squeue").args(["-h", "-j", &ids.join(",")]));
        let finished = plan
            .tasks
            .iter()
            .all(|t| plan.state(t) == TaskState::Finished);
        if finished && queue.stdout.is_empty() {
            break;
        }
        if queue.stdout.is_empty() || t0.elapsed() > Duration::from_secs(300) {
            let status = ncood().args(["study", "status"]).arg(&a).output().unwrap();
            panic!(
                "the jobs ended (or 5 minutes passed) with tasks unfinished:\n{}\n{}",
                String::from_utf8_lossy(&status.stdout),
                logs(&a)
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }

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
    let out = study_run(&spec, &tmp.path().join("a"), "slurm")
        .env("PATH", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot run sbatch"), "{err}");
}
