//! Reports: a study's results gathered from its run directories as tidy rows (`results`),
//! aggregated over seeds (`aggregate`), how each run group was trained and whether the study is in
//! the paper's regime (`regime`), the paper's tables (`tables`) and figures (`figures`), its
//! claims judged (`claims`, with the statistics of `stats`), and all of it on one page (`html`).
//! Everything here reads only what runs wrote (logs, evaluations, configs and summaries: no
//! checkpoint), so a report can be made at any time, of a partial study or a copy without
//! checkpoints too.
pub mod aggregate;
pub mod chart;
pub mod claims;
pub mod figures;
pub mod html;
pub mod regime;
pub mod results;
pub mod stats;
pub mod tables;

pub use aggregate::{Summary, aggregate};
pub use results::{Row, collect};

use crate::error::Result;
use crate::study::plan::{Task, TaskKind};
use crate::study::{Plan, StudySpec};
use std::path::{Path, PathBuf};

/// What `write` produced.
pub struct Written {
    /// The report page.
    pub html: PathBuf,
    pub rows: usize,
    pub summaries: usize,
    pub claims: Vec<claims::Judged>,
    /// The OoD set the headline verdicts are read on.
    pub primary: String,
    /// Per roles block, its regime check.
    pub regimes: Vec<regime::Regime>,
    /// Labels of the study's tasks that have not finished (the report covers what exists).
    pub missing: Vec<String>,
}

/// What claims.json holds: the blocks' scale and regime, how every run group was trained, and
/// every judged claim with its parts.
#[derive(serde::Serialize)]
struct ClaimsFile<'a> {
    primary_ood: &'a str,
    blocks: Vec<BlockFile<'a>>,
    training: &'a [regime::Training],
    claims: &'a [claims::Judged],
}

#[derive(serde::Serialize)]
struct BlockFile<'a> {
    label: &'a str,
    scale: &'a str,
    regime: Option<&'a regime::Regime>,
}

/// What a roles block's models were trained at, for the claims' scale: what they share (ID data
/// and training subset, architecture, width, precision, tracking subset) once, then each model's
/// epochs, milestones and seeds.
fn scale(spec: &StudySpec, roles: &crate::study::spec::Roles) -> Result<String> {
    let (mut shared, mut own) = (vec![], vec![]);
    for name in roles.models() {
        let v = spec.variant(name).expect("validated roles");
        let c = spec.run_config(v, v.seeds[0])?;
        let images = |n: usize| match n {
            0 => "all".to_string(),
            n => n.to_string(),
        };
        let common = format!(
            "{} ({} training images), {} w={}, {}, NC on {} training images",
            c.data.name,
            images(c.data.train_subset),
            c.model.arch.name(),
            c.model.width,
            c.optim.precision.name(),
            images(c.track.subset)
        );
        if !shared.contains(&common) {
            shared.push(common);
        }
        own.push(format!(
            "{} {} epochs {:?} x {} seeds",
            v.name,
            c.optim.epochs,
            c.optim.resolved_milestones(),
            v.seeds.len()
        ));
    }
    Ok(format!("{}; {}", shared.join("; "), own.join(", ")))
}

/// What the tables and figures call a roles block: its label, else the architecture of its
/// first run.
pub fn label(spec: &StudySpec, roles: &crate::study::spec::Roles) -> Result<String> {
    if !roles.label.is_empty() {
        return Ok(roles.label.clone());
    }
    let Some((_, run)) = roles.named().into_iter().next() else {
        return Ok("study".into());
    };
    let v = spec
        .variant(run)
        .or_else(|| {
            let o = spec.overtrains.iter().find(|o| o.name == run)?;
            spec.variant(&o.source)
        })
        .expect("validated roles");
    Ok(spec
        .run_config(v, v.seeds[0])?
        .model
        .arch
        .name()
        .to_string())
}

/// A file-stem-safe lower-case form of a label ("ResNet 18" -> "resnet-18").
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Writes `ROOT/report/`: results.csv and .json (tidy rows), aggregate.csv and .json (over seeds),
/// the paper's tables (tableN-LABEL.{csv,json}, all in tables.md), figures (NAME.svg, NAME.png),
/// claims.json and .md (the claims the study's roles allow judging) and report.html (all of it).
pub fn write(spec: &StudySpec, plan: &Plan, root: &Path) -> Result<Written> {
    let rows = collect(&plan.runs)?;
    let summaries = aggregate(&rows);
    let data = spec
        .run_config(&spec.variants[0], spec.variants[0].seeds[0])?
        .data
        .name;
    let (mut tables, mut scales, mut blocks) = (vec![], vec![], vec![]);
    for roles in &spec.roles {
        let label = label(spec, roles)?;
        let scale = scale(spec, roles)?;
        tables.extend(tables::tables(&rows, &plan.runs, roles, &label, data));
        // Interventions belong to the block whose no-L2 long runs they start from.
        let interventions: Vec<_> = spec
            .interventions
            .iter()
            .filter(|i| roles.nol2_long.as_ref() == Some(&i.source))
            .cloned()
            .collect();
        let resnet50 = match roles.nol2_long.as_ref().and_then(|r| spec.variant(r)) {
            Some(v) => spec.run_config(v, v.seeds[0])?.model.arch == crate::model::Arch::Resnet50,
            None => false,
        };
        let regime = regime::check(&rows, &plan.runs, roles);
        scales.push(scale);
        blocks.push((label, roles, interventions, regime, resnet50));
    }
    let blocks: Vec<claims::Block> = blocks
        .iter()
        .map(
            |(label, roles, interventions, regime, resnet50)| claims::Block {
                label,
                roles,
                interventions,
                regime: regime.as_ref(),
                resnet50: *resnet50,
            },
        )
        .collect();
    let mut judged = vec![];
    for b in &blocks {
        judged.extend(claims::judge_block(&rows, &plan.runs, b));
    }
    judged.extend(claims::configurations(&rows, &plan.runs, &blocks));
    let primary = primary_ood(spec, &rows);
    let training: Vec<regime::Training> = results::run_names(&plan.runs)
        .into_iter()
        .filter_map(|n| regime::training(&rows, &plan.runs, n))
        .collect();
    let regimes: Vec<regime::Regime> = blocks.iter().filter_map(|b| b.regime.cloned()).collect();
    let dir = root.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
    // One writer at a time: then the temporary files in report/ are a killed writer's, removed
    // here as a run directory's are when its lock is taken.
    let _lock = crate::atomic::lock(&dir.join("report.lock"))?.map_err(|holder| {
        crate::Error::invalid(
            format!("report {}", dir.display()),
            format!("another ncood process is writing it (report.lock is held by {holder})"),
        )
    })?;
    crate::atomic::remove_stale_temps(&dir)?;
    crate::atomic::write(&dir.join("results.csv"), results::to_csv(&rows).as_bytes())?;
    crate::atomic::write_json(&dir.join("results.json"), &rows)?;
    crate::atomic::write(
        &dir.join("aggregate.csv"),
        aggregate::to_csv(&summaries).as_bytes(),
    )?;
    crate::atomic::write_json(&dir.join("aggregate.json"), &summaries)?;
    crate::atomic::write_json(
        &dir.join("claims.json"),
        &ClaimsFile {
            primary_ood: &primary,
            blocks: blocks
                .iter()
                .zip(&scales)
                .map(|(b, scale)| BlockFile {
                    label: b.label,
                    scale,
                    regime: b.regime,
                })
                .collect(),
            training: &training,
            claims: &judged,
        },
    )?;
    let mut md = String::new();
    for t in &tables {
        crate::atomic::write(
            &dir.join(format!("{}.csv", t.name)),
            tables::csv(t).as_bytes(),
        )?;
        crate::atomic::write_json(&dir.join(format!("{}.json", t.name)), t)?;
        md += &tables::markdown(t);
        md.push('\n');
    }
    crate::atomic::write(&dir.join("tables.md"), md.as_bytes())?;
    let drawn = figures::draw(&rows, &plan.runs, spec, &dir)?;
    let missing: Vec<String> = plan
        .tasks
        .iter()
        .filter(|t| !has_results(t))
        .map(|t| t.label.clone())
        .collect();
    let title = format!(
        "ncood study {}",
        root.canonicalize()
            .unwrap_or_else(|_| root.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let labelled: Vec<(String, String)> = blocks
        .iter()
        .zip(&scales)
        .map(|(b, s)| (b.label.to_string(), s.clone()))
        .collect();
    let page = html::render(&html::Page {
        title: &title,
        spec: &spec.to_toml(),
        scales: &labelled,
        regimes: &regimes,
        primary: &primary,
        missing: &missing,
        tasks: &crate::study::TaskRecord::read_all(root, plan),
        training: &training,
        tables: &tables,
        figures: &drawn,
        claims: &judged,
    });
    let html_path = dir.join("report.html");
    crate::atomic::write(&html_path, page.as_bytes())?;
    crate::atomic::write(
        &dir.join("claims.md"),
        claims::markdown(&judged, &primary).as_bytes(),
    )?;
    Ok(Written {
        html: html_path,
        rows: rows.len(),
        summaries: summaries.len(),
        claims: judged,
        primary,
        regimes,
        missing,
    })
}

/// The OoD set the headline verdicts are read on: the one the first block's long runs were
/// tracked against (the paper's main set: MNIST for Fashion-MNIST, SVHN for CIFAR-10) when it
/// was evaluated, else the first evaluated set.
fn primary_ood(spec: &StudySpec, rows: &[Row]) -> String {
    let sets = results::ood_sets(rows);
    spec.roles
        .iter()
        .filter_map(|r| r.nol2_long.as_ref())
        .map(|r| results::tracked_ood(rows, r))
        .find(|s| sets.contains(s))
        .or_else(|| sets.first().cloned())
        .unwrap_or_default()
}

/// Whether a task's results are on disk: a run's summary.json of all its epochs, an evaluation's
/// result. Read from what the report reads (never the checkpoints), so a study copied without
/// its checkpoints reports the same.
fn has_results(task: &Task) -> bool {
    let summarised = |dir: &Path, epochs: usize| {
        std::fs::read_to_string(crate::run::RunDir::new(dir).summary_path())
            .ok()
            .and_then(|t| serde_json::from_str::<crate::run::Summary>(&t).ok())
            .is_some_and(|s| s.epochs >= epochs)
    };
    match &task.kind {
        TaskKind::Train { config } => summarised(&task.dir, config.optim.epochs),
        TaskKind::Overtrain { epochs, .. } => summarised(&task.dir, *epochs),
        TaskKind::Intervene { source, plan } => plan.groups.iter().all(|&g| {
            summarised(
                &crate::train::intervene::group_dir(source, plan.from_epoch, g),
                plan.epochs,
            )
        }),
        TaskKind::Eval { epoch } => crate::run::RunDir::new(&task.dir)
            .eval_path(*epoch, "json")
            .exists(),
    }
}
