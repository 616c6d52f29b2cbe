//! The binary's output: printing to stdout (`say!`) and the progress displays of training and of
//! a study's local pool.
use indicatif::{ProgressBar, ProgressStyle};
use ncood::study::local;
use ncood::train::Progress;
use std::io::IsTerminal;
use std::io::Write;
use std::path::Path;

/// Prints to stdout; a closed pipe (`ncood ... | head -1`) ends the process quietly with status 0.
pub fn say(text: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

macro_rules! say {
    ($($t:tt)*) => { $crate::show::say(format_args!("{}\n", format_args!($($t)*))) };
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
        .expect("valid template")
        .progress_chars("=> ")
}

/// A progress bar per epoch and a printed line at each epoch's end, prefixed by the prefix given
/// with each report.
pub fn progress_printer() -> impl FnMut(&str, Progress) {
    let mut bar = ProgressBar::hidden();
    let mut running = String::new();
    move |prefix, p| match p {
        Progress::EpochStart {
            epoch,
            epochs,
            steps,
        } => {
            running.clear();
            bar = ProgressBar::new(steps as u64)
                .with_style(bar_style())
                .with_prefix(format!("{prefix}{epoch}/{epochs}"));
        }
        Progress::Step { step, images_per_s } => {
            bar.set_position(step as u64);
            bar.set_message(format!("{running}{images_per_s:.0} img/s"));
        }
        Progress::Running { loss, acc, .. } => {
            running = format!("loss {loss:.4} acc {acc:.4} ");
        }
        Progress::EpochEnd(l) => {
            bar.finish_and_clear();
            print_epoch(prefix, l);
        }
    }
}

/// One epoch's log line on the terminal, with its tracking when present.
fn print_epoch(prefix: &str, l: &ncood::run::EpochLog) {
    say!(
        "{prefix}epoch {:>3}  lr {:.4}  loss {:.4}  train acc {:.4}  test acc {:.4}  {:.1} s  {:.0} img/s",
        l.epoch,
        l.lr,
        l.train_loss,
        l.train_acc,
        l.test_acc,
        l.seconds,
        l.images_per_s
    );
    if let Some(t) = &l.track {
        say!(
            "{prefix}  NC1 {}  NC2 equinorm {:.4} max-angle {:.4}  NC3 {:.4}  NC4 {:.4}  GDA AUROC vs {} {:.4}  top-N FP {}  ({:.1} s)",
            nc1_text(&t.nc),
            t.nc.nc2.equinorm_means,
            t.nc.nc2.maxangle_means,
            t.nc.nc3,
            t.nc.nc4,
            t.ood,
            t.gda_auroc,
            t.topn_false_positives,
            t.seconds
        );
    }
}

fn nc1_text(c: &ncood::collapse::Collapse) -> String {
    match c.nc1 {
        Some(v) => format!("{v:.4e}"),
        None => "undefined".into(),
    }
}

/// The local pool's one progress display (`local::Tally`): on a terminal one live line (the
/// counts, a bar, the running tasks); elsewhere (a log file, CI) a line per tenth of the tasks. A
/// failed or skipped task always gets its own line, with its log.
pub struct StudyProgress {
    tally: local::Tally,
    /// The live line on a terminal; None elsewhere.
    bar: Option<ProgressBar>,
    /// Tenths of the tasks reported so far (without a terminal).
    tenths: usize,
}

impl StudyProgress {
    pub fn new(tally: local::Tally) -> StudyProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(tally.total as u64).with_style(
                ProgressStyle::with_template("{bar:20} {pos}/{len} {msg}")
                    .expect("a valid template"),
            );
            b.set_position(tally.done as u64);
            b
        });
        let tenths = tally.done * 10 / tally.total.max(1);
        StudyProgress { tally, bar, tenths }
    }

    fn counts(&self) -> String {
        let t = &self.tally;
        let eta = t.seconds_left().map_or("time left unknown".into(), |s| {
            format!("{}m{:02}s left", (s / 60.0) as u64, (s % 60.0) as u64)
        });
        let running = t.running.len();
        format!(
            "[{}/{} done, {running} running, {} failed; {eta}]",
            t.done, t.total, t.failed
        )
    }

    /// A line of its own (above the live line on a terminal).
    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None => say!("{text}"),
        }
    }

    pub fn event(&mut self, e: local::Event) {
        self.tally.note(&e);
        match e {
            local::Event::Failed { task, log } => self.line(format!(
                "FAILED {} (log: {})  {}",
                task.label,
                log.display(),
                self.counts()
            )),
            local::Event::Skipped(t) => {
                self.line(format!("skip   {} (a task it needs failed)", t.label))
            }
            _ => {}
        }
        // The live line, or a line per tenth of the tasks.
        let t = &self.tally;
        match &self.bar {
            Some(b) => {
                b.set_position(t.done as u64);
                b.set_message(format!("{} | {}", self.counts(), t.running.join(", ")));
            }
            None if t.done * 10 / t.total.max(1) > self.tenths => {
                self.tenths = t.done * 10 / t.total.max(1);
                say!("{}", self.counts());
            }
            None => {}
        }
    }
}

impl Drop for StudyProgress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The measures of `ncood collapse`, and why NC1 is undefined where it is.
pub fn collapse(r: &ncood::collapse::Collapse) {
    say!(
        "NC1 {}  NC2 equinorm {:.4} / {:.4}  equiangularity {:.4} / {:.4}  max-angle {:.4} / {:.4} (means / weights)  NC3 {:.4}  NC4 {:.4}",
        nc1_text(r),
        r.nc2.equinorm_means,
        r.nc2.equinorm_weights,
        r.nc2.equiangularity_means,
        r.nc2.equiangularity_weights,
        r.nc2.maxangle_means,
        r.nc2.maxangle_weights,
        r.nc3,
        r.nc4
    );
    if let Some(why) = &r.nc1_undefined {
        say!("NC1 is undefined: {why}");
    }
}

/// What a study's report holds: how partial the study is, the row counts, the regime, the
/// verdicts (`report_cmd` adds where the report is).
pub fn report(w: &ncood::report::Written, plan: &ncood::study::Plan) {
    if !w.missing.is_empty() {
        let first: Vec<&str> = w.missing.iter().take(4).map(String::as_str).collect();
        say!(
            "partial study: {} of {} tasks not finished ({}{})",
            w.missing.len(),
            plan.tasks.len(),
            first.join("; "),
            if w.missing.len() > first.len() {
                "; ..."
            } else {
                ""
            }
        );
    }
    say!("{} rows, {} aggregates over seeds", w.rows, w.summaries);
    for r in &w.regimes {
        say!("regime: {}", r.why);
    }
    if !w.claims.is_empty() {
        say!(
            "{}",
            ncood::report::claims::terminal(&w.claims, &w.primary).trim_end()
        );
    }
}

/// The jobs a SLURM submission of the study in `out` made, and how to follow them.
pub fn submitted(out: &Path, origin: &str, jobs: &[ncood::study::slurm::Job]) {
    if jobs.is_empty() {
        say!("study {} ({origin}): every task is finished", out.display());
        return;
    }
    for j in jobs {
        say!("submitted job {}: {}", j.id, j.what);
    }
    say!(
        "follow it with `ncood study status {}`; then `ncood report {}`",
        out.display(),
        out.display()
    );
}

/// The counts of a local pool's run of the study in `out`.
pub fn outcome(out: &Path, total: usize, outcome: &local::Outcome) {
    say!(
        "study {}: {total} tasks, {} finished before, {} now, {} failed, {} skipped",
        out.display(),
        outcome.already,
        outcome.finished,
        outcome.failed,
        outcome.skipped
    );
}
