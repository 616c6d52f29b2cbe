//! The SLURM executor: a study's unfinished tasks as `sbatch` job arrays, one per dependency wave
//! (split into arrays of at most 1000 tasks), each element running `ncood study task ROOT
//! --id K` as the local pool's children do, with its output in the same log. An array starts once
//! the arrays of the waves it needs have ended, well or not (`afterany`): waves are coarse, and
//! `afterok` on a whole wave would let one failed task cancel every later wave, unrelated tasks
//! included. Instead `study task` refuses to run, naming them, while any of its dependencies is
//! unfinished, so a failure's dependents fail fast and say why while the rest carries on, as in
//! the local pool. A few arrays instead of a job per task cost some parallelism: a task waits for
//! whole waves. Running the study again submits what is unfinished, since a task's state is read
//! from its run directory. The scripts (job ID's as `ID.sh`), SLURM's own output (time-limit kills
//! and the like) and the submitted jobs are kept in `ROOT/slurm/`.
use super::plan::{Plan, TaskState};
use super::spec::SlurmSpec;
use crate::device::Compute;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A submitted SLURM job: its id and what it runs.
pub struct Job {
    pub id: String,
    pub what: String,
}

/// The submitted jobs, a line `ID<tab>WHAT` each, in `ROOT/slurm/`.
const JOBS_FILE: &str = "jobs.txt";

/// The most tasks in one array: SLURM refuses array indices from MaxArraySize on, 1001 by default.
const MAX_ARRAY: usize = 1000;

/// Tasks that can start together: each needs only tasks of the waves in `after` (earlier ones).
#[derive(Debug, PartialEq)]
struct Wave {
    tasks: Vec<usize>,
    after: Vec<usize>,
}

/// Groups the open tasks (`open[id]`, with `deps[id]` lower ids) into waves: a task goes one wave
/// after the latest of its open dependencies (wave 0 without any), so it starts as early as wave
/// arrays allow. Finished dependencies need no waiting.
fn waves(deps: &[Vec<usize>], open: &[bool]) -> Vec<Wave> {
    let mut wave_of = vec![0; deps.len()];
    let mut waves: Vec<Wave> = vec![];
    for id in (0..deps.len()).filter(|&i| open[i]) {
        let needs: Vec<usize> = deps[id]
            .iter()
            .filter(|&&d| open[d])
            .map(|&d| wave_of[d])
            .collect();
        let w = needs.iter().max().map_or(0, |m| m + 1);
        wave_of[id] = w;
        if waves.len() == w {
            waves.push(Wave {
                tasks: vec![],
                after: vec![],
            });
        }
        waves[w].tasks.push(id);
        waves[w].after.extend(needs);
        waves[w].after.sort_unstable();
        waves[w].after.dedup();
    }
    waves
}

/// Splits each wave into arrays of at most `max` tasks, each returned with its wave's index; an
/// array's `after` names the arrays (indices into the result) of the waves its wave needs.
fn arrays(waves: &[Wave], max: usize) -> Vec<(usize, Wave)> {
    let mut of_wave: Vec<Vec<usize>> = vec![];
    let mut out = vec![];
    for (k, w) in waves.iter().enumerate() {
        let after: Vec<usize> = w.after.iter().flat_map(|&v| of_wave[v].clone()).collect();
        let first = out.len();
        for tasks in w.tasks.chunks(max) {
            let (tasks, after) = (tasks.to_vec(), after.clone());
            out.push((k, Wave { tasks, after }));
        }
        of_wave.push((first..out.len()).collect());
    }
    out
}

/// One job array: its name, the ids of the jobs it waits for, and its tasks with their logs.
struct Array {
    name: String,
    after: Vec<String>,
    tasks: Vec<(usize, PathBuf)>,
}

/// The sbatch script of `a`: element i runs task `a.tasks[i]` into its log. `--threads` alone asks
/// SLURM for that many CPUs; `cpus_per_task` alone sets the thread count; neither: one of each.
/// 0 threads (one per core) counts as none given: a task's cores are the CPUs SLURM gives it, so
/// `cpus_per_task` sets both (`check` refuses it without). Paths go in double quotes (`#SBATCH`
/// lines) and single quotes (bash).
fn script(a: &Array, exe: &Path, root: &Path, s: &SlurmSpec, c: Compute) -> String {
    let threads = c.threads.filter(|&t| t > 0);
    let cpus = match s.cpus_per_task {
        0 => threads.unwrap_or(1),
        n => n,
    };
    let threads = threads.unwrap_or(cpus);
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name={}", a.name),
        format!("#SBATCH --array=0-{}", a.tasks.len() - 1),
        format!(
            "#SBATCH --output=\"{}/%A_%a.out\"",
            root.join("slurm").display()
        ),
        format!("#SBATCH --cpus-per-task={cpus}"),
    ];
    if !a.after.is_empty() {
        lines.push(format!(
            "#SBATCH --dependency=afterany:{}",
            a.after.join(":")
        ));
    }
    for (flag, value) in [
        ("partition", &s.partition),
        ("time", &s.time),
        ("mem", &s.mem),
    ] {
        if !value.is_empty() {
            lines.push(format!("#SBATCH --{flag}={value}"));
        }
    }
    if s.gpus > 0 {
        lines.push(format!("#SBATCH --gres=gpu:{}", s.gpus));
    }
    lines.extend(s.extra.iter().map(|e| format!("#SBATCH {e}")));
    let ids: Vec<String> = a.tasks.iter().map(|(id, _)| id.to_string()).collect();
    let logs: Vec<String> = a.tasks.iter().map(|(_, log)| quote(log)).collect();
    let device = c
        .device
        .map(|d| format!(" --device {d}"))
        .unwrap_or_default();
    lines.extend([
        "# The array index picks a task of the study and its log.".to_string(),
        format!("ids=({})", ids.join(" ")),
        format!("logs=({})", logs.join(" ")),
        "log=${logs[$SLURM_ARRAY_TASK_ID]}".into(),
        "mkdir -p \"${log%/*}\"".into(),
        format!("export OMP_NUM_THREADS={threads}"),
        format!(
            "exec {} study task {} --id \"${{ids[$SLURM_ARRAY_TASK_ID]}}\" --threads {threads}{device} >>\"$log\" 2>&1",
            quote(exe),
            quote(root)
        ),
    ]);
    lines.join("\n") + "\n"
}

/// `p` as one bash word.
fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Runs a SLURM command: Err when it cannot start (not on PATH, mostly), else Ok with its stdout,
/// or Ok(Err) with its stderr when it fails.
fn slurm(cmd: &mut Command) -> std::io::Result<std::result::Result<String, String>> {
    let out = cmd.output()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    Ok(match out.status.success() {
        true => Ok(text(&out.stdout)),
        false => Err(text(&out.stderr)),
    })
}

/// The error of the SLURM command `name` that cannot start.
fn cannot_run(name: &str, e: std::io::Error) -> Error {
    Error::invalid(
        "the SLURM executor",
        format!("cannot run {name} ({e}); it needs SLURM's commands on PATH"),
    )
}

/// The ids of the jobs recorded in `root`, with what they run.
fn recorded(root: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root.join("slurm").join(JOBS_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, what)| (id.to_string(), what.to_string()))
        .collect()
}

fn ids(jobs: &[(String, String)]) -> String {
    let ids: Vec<&str> = jobs.iter().map(|j| j.0.as_str()).collect();
    ids.join(",")
}

/// Refuses while jobs this study submitted are queued or running: submitting again would run their
/// tasks twice, and recording a changed (extended) study would shift the task ids their scripts
/// name. Idle when the study never used SLURM, squeue is not on PATH, or squeue answers "Invalid
/// job id" (what it says when asked about one job only, gone long ago); any other squeue failure
/// (say, a controller briefly unreachable) is an error, as guessing idle might run tasks twice.
pub fn check_idle(root: &Path) -> Result<()> {
    let jobs = ids(&recorded(root));
    if jobs.is_empty() {
        return Ok(());
    }
    let study = format!("study {}", root.display());
    let queued = match slurm(Command::new("squeue").args(["-h", "-o", "%i", "-j", &jobs])) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(cannot_run("squeue", e)),
        Ok(Err(e)) if e.contains("Invalid job id") => return Ok(()),
        Ok(Err(e)) => {
            return Err(Error::invalid(
                study,
                format!(
                    "squeue cannot tell whether the jobs it submitted ({jobs}) are still queued, and running it again while they are would run their tasks twice: try again once squeue works; squeue said: {e}"
                ),
            ));
        }
        Ok(Ok(queued)) => queued,
    };
    if queued.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        study,
        format!(
            "jobs it submitted are still queued or running ({}); running it again now would run their tasks twice: wait for them or scancel them",
            queued.lines().collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// What a submission of the study in `root` needs, checked before anything is written: `#SBATCH`
/// values that stay on their line, a thread count a task can be sized by (0, one per core, needs
/// `cpus_per_task`), a study path sbatch's `--output` can carry, and sbatch on PATH.
pub fn check(root: &Path, settings: &SlurmSpec, compute: Compute) -> Result<()> {
    settings.check()?;
    if compute.threads == Some(0) && settings.cpus_per_task == 0 {
        return Err(Error::config(
            "threads",
            "0 (one per core) cannot size a SLURM task, which gets the CPUs it asks for: set a thread count, or slurm.cpus_per_task",
        ));
    }
    let root = std::path::absolute(root).map_err(|e| Error::io(root, e))?;
    // `#SBATCH --output="ROOT/..."` holds the path: `%` there starts a filename pattern, `"` or a
    // newline would end it.
    if let Some(c) = root
        .to_string_lossy()
        .chars()
        .find(|&c| "%\"\n".contains(c))
    {
        return Err(Error::invalid(
            format!("study directory {}", root.display()),
            format!("holds {c:?}, which sbatch's --output cannot take: use another directory"),
        ));
    }
    // Whether sbatch starts is what matters here, not what it answers.
    slurm(Command::new("sbatch").arg("--version"))
        .map(drop)
        .map_err(|e| cannot_run("sbatch", e))
}

/// Submits every unfinished task of `plan` (tasks whose `plan.state(t)` is Finished are left out)
/// as sbatch job arrays and returns the jobs, in submission order; an empty Vec when all is
/// finished. Refuses what `check` refuses, and while jobs it submitted before are queued, which
/// would run tasks twice.
pub fn submit(plan: &Plan, exe: &Path, settings: &SlurmSpec, compute: Compute) -> Result<Vec<Job>> {
    check(&plan.root, settings, compute)?;
    let open: Vec<bool> = plan
        .tasks
        .iter()
        .map(|t| plan.state(t) != TaskState::Finished)
        .collect();
    let deps: Vec<Vec<usize>> = plan.tasks.iter().map(|t| t.deps.clone()).collect();
    let arrays = arrays(&waves(&deps, &open), MAX_ARRAY);
    if arrays.is_empty() {
        return Ok(vec![]);
    }
    // The jobs run elsewhere, maybe in another folder: every path they see is absolute.
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let root = abs(&plan.root)?;
    let dir = root.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    check_idle(&root)?;
    let mut done = recorded(&root);
    // The folder's name, in letters SLURM takes unquoted.
    let study: String = root
        .file_name()
        .map_or("study".into(), |n| n.to_string_lossy())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut jobs: Vec<Job> = vec![];
    for (k, w) in &arrays {
        let tasks = w
            .tasks
            .iter()
            .map(|&id| Ok((id, abs(&plan.tasks[id].log_path())?)))
            .collect::<Result<_>>()?;
        let a = Array {
            name: format!("ncood-{study}-w{k}"),
            after: w.after.iter().map(|&i| jobs[i].id.clone()).collect(),
            tasks,
        };
        let path = dir.join(format!("w{k}.sh"));
        crate::atomic::write(&path, script(&a, exe, &root, settings, compute).as_bytes())?;
        let sbatch = slurm(Command::new("sbatch").arg("--parsable").arg(&path));
        let id = sbatch
            .map_err(|e| cannot_run("sbatch", e))
            .and_then(|r| {
                r.map_err(|e| {
                    let sent: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
                    Error::invalid(
                        format!("sbatch {}", path.display()),
                        format!("{e} (jobs submitted before it: [{}])", sent.join(", ")),
                    )
                })
            })
            .inspect_err(|_| {
                // Never submitted: a script left here would pass for a job's.
                let _ = std::fs::remove_file(&path);
            })?;
        // `--parsable` prints `ID` or `ID;CLUSTER`.
        let id = id.split(';').next().unwrap_or_default().to_string();
        // Kept under the job's id: a later submission's wave k is another script.
        let kept = dir.join(format!("{id}.sh"));
        std::fs::rename(&path, &kept).map_err(|e| Error::io(&kept, e))?;
        let labels: Vec<&str> = w
            .tasks
            .iter()
            .map(|&t| plan.tasks[t].label.as_str())
            .collect();
        let what = match labels.len() {
            n if n > 3 => format!("wave {k}, {n} tasks: {}, ...", labels[..2].join(", ")),
            n => format!("wave {k}, {n} task(s): {}", labels.join(", ")),
        };
        done.push((id.clone(), what.clone()));
        let text: String = done.iter().map(|(i, w)| format!("{i}\t{w}\n")).collect();
        crate::atomic::write(&dir.join(JOBS_FILE), text.as_bytes())?;
        jobs.push(Job { id, what });
    }
    Ok(jobs)
}

/// squeue/sacct lines for the jobs this study submitted (recorded under the study directory), or
/// None when it submitted none or neither tool is on PATH.
pub fn status(root: &Path) -> Option<String> {
    let jobs = recorded(root);
    if jobs.is_empty() {
        return None;
    }
    let ids = ids(&jobs);
    let queue = slurm(Command::new("squeue").args(["-h", "-j", &ids, "-o", "%i %j %T %M %R"]));
    let acct = slurm(
        Command::new("sacct")
            .args(["-n", "-P", "-j", &ids])
            .arg("--format=JobID,JobName,State,Elapsed,ExitCode"),
    );
    if queue.is_err() && acct.is_err() {
        return None;
    }
    let mut s = String::from("SLURM jobs:\n");
    for (id, what) in &jobs {
        s += &format!("  {id}  {what}\n");
    }
    // squeue fails when given only jobs that left the queue, sacct without accounting storage.
    match queue {
        Ok(Ok(lines)) if lines.is_empty() => s += "squeue: none of them is queued\n",
        Ok(Ok(lines)) => s += &format!("squeue:\n  {}\n", lines.replace('\n', "\n  ")),
        Ok(Err(e)) => s += &format!("squeue: {e}\n"),
        Err(_) => {}
    }
    if let Ok(Ok(lines)) = acct
        && !lines.is_empty()
    {
        s += &format!("sacct:\n  {}\n", lines.replace('\n', "\n  "));
    }
    Some(s.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_follow_open_dependencies() {
        // 0 -> 1 -> 2, 0 -> 3, 4 alone, 5 after 2 and 4.
        let deps = vec![vec![], vec![0], vec![1], vec![0], vec![], vec![2, 4]];
        let wave = |tasks: Vec<usize>, after: Vec<usize>| Wave { tasks, after };
        assert_eq!(
            waves(&deps, &[true; 6]),
            [
                wave(vec![0, 4], vec![]),
                wave(vec![1, 3], vec![0]),
                wave(vec![2], vec![1]),
                wave(vec![5], vec![0, 2]),
            ]
        );
        // Finished tasks drop out, and so do the waits on them.
        let open = [false, false, true, true, false, true];
        assert_eq!(
            waves(&deps, &open),
            [wave(vec![2, 3], vec![]), wave(vec![5], vec![0])]
        );
        assert_eq!(waves(&deps, &[false; 6]), []);
    }

    #[test]
    fn waves_split_into_arrays_that_wait_for_every_part() {
        let wave = |tasks: Vec<usize>, after: Vec<usize>| Wave { tasks, after };
        // Tasks 0 to 4 need nothing, 5 and 6 need wave 0, 7 needs wave 1.
        let waves = [
            wave(vec![0, 1, 2, 3, 4], vec![]),
            wave(vec![5, 6], vec![0]),
            wave(vec![7], vec![1]),
        ];
        assert_eq!(
            arrays(&waves, 2),
            [
                (0, wave(vec![0, 1], vec![])),
                (0, wave(vec![2, 3], vec![])),
                (0, wave(vec![4], vec![])),
                (1, wave(vec![5, 6], vec![0, 1, 2])),
                (2, wave(vec![7], vec![3])),
            ]
        );
        assert_eq!(arrays(&waves, MAX_ARRAY).len(), 3);
    }

    #[test]
    fn scripts_map_the_array_index_to_tasks_and_logs() {
        let a = Array {
            name: "ncood-x-w1".into(),
            after: vec!["12".into(), "13".into()],
            tasks: vec![
                (3, "/s/runs/a/s0/train.log".into()),
                (7, "/s/it's.log".into()),
            ],
        };
        let s = SlurmSpec {
            partition: "gpu".into(),
            gpus: 1,
            extra: vec!["--account=abc".into()],
            ..SlurmSpec::default()
        };
        let c = Compute {
            device: Some(crate::device::DeviceSpec::Cuda(0)),
            threads: Some(2),
        };
        let text = script(&a, Path::new("/bin/ncood"), Path::new("/s"), &s, c);
        let expected = r#"#!/bin/bash
#SBATCH --job-name=ncood-x-w1
#SBATCH --array=0-1
#SBATCH --output="/s/slurm/%A_%a.out"
#SBATCH --cpus-per-task=2
#SBATCH --dependency=afterany:12:13
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --account=abc
# The array index picks a task of the study and its log.
ids=(3 7)
logs=('/s/runs/a/s0/train.log' '/s/it'\''s.log')
log=${logs[$SLURM_ARRAY_TASK_ID]}
mkdir -p "${log%/*}"
export OMP_NUM_THREADS=2
exec '/bin/ncood' study task '/s' --id "${ids[$SLURM_ARRAY_TASK_ID]}" --threads 2 --device cuda >>"$log" 2>&1
"#;
        assert_eq!(text, expected);
        // Without --threads: one CPU and one thread, or as many as cpus_per_task.
        let one = script(
            &a,
            Path::new("/e"),
            Path::new("/s"),
            &SlurmSpec::default(),
            Compute::default(),
        );
        assert!(one.contains("--cpus-per-task=1\n") && one.contains("--threads 1 >"));
        let four = SlurmSpec {
            cpus_per_task: 4,
            ..SlurmSpec::default()
        };
        let four = script(
            &a,
            Path::new("/e"),
            Path::new("/s"),
            &four,
            Compute::default(),
        );
        assert!(four.contains("--cpus-per-task=4\n") && four.contains("THREADS=4\n"));
        // --threads 0 (one per core): the task's cores are the cpus_per_task it asks for.
        let zero = Compute {
            threads: Some(0),
            ..Compute::default()
        };
        let all = SlurmSpec {
            cpus_per_task: 6,
            ..SlurmSpec::default()
        };
        let text = script(&a, Path::new("/e"), Path::new("/s"), &all, zero);
        assert!(text.contains("--cpus-per-task=6\n") && text.contains("--threads 6 >"));
        // Without cpus_per_task it is refused: 0 CPUs is no request SLURM takes.
        let e = check(Path::new("/s"), &SlurmSpec::default(), zero).unwrap_err();
        assert!(e.to_string().contains("cpus_per_task"), "{e}");
    }
}
