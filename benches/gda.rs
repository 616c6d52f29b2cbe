//! GDA benchmark: ncood's fit + score against the DDU reference (benches/gda_ddu.py: PyTorch
//! float64 MultivariateNormal, as DDU's gmm_utils does it), in one run, on the same features.
//!
//! D = 512, C = 10, 50,000 training and 20,000 test features: Gaussian classes with random means
//! and random correlated covariances, written once as .npy. The reference is timed as DDU runs it
//! (log_prob per 128-row test batch) and at its best (all rows in one call); rounds alternate and
//! medians are compared. The scores of both sides are checked to agree.
//!
//! Run: `cargo bench --bench gda`. Env: NCOOD_BENCH_ROUNDS (3), NCOOD_BENCH_THREADS (2).
mod common;
use common::{env, median};
use ncood::ood::gda::Gda;
use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() -> anyhow::Result<()> {
    let (rounds, threads) = (env("NCOOD_BENCH_ROUNDS", 3), env("NCOOD_BENCH_THREADS", 2));
    tch::set_num_threads(threads as i32);
    let (d, c, n_train, n_test) = (512i64, 10i64, 50_000i64, 20_000i64);
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let means = Tensor::randn([c, d], opts) * 2.0;
    let mix = Tensor::randn([c, d, d], opts) / (d as f64).sqrt();
    // Class k's rows: z mix_k^T + mean_k, z standard normal (n / C rows per class, class-ordered).
    let make = |n: i64| {
        let per = n / c;
        let x = Tensor::cat(
            &(0..c)
                .map(|k| Tensor::randn([per, d], opts).mm(&mix.get(k).tr()) + means.get(k))
                .collect::<Vec<_>>(),
            0,
        );
        let y = Tensor::arange(n, (Kind::Int64, Device::Cpu)).divide_scalar_mode(per, "floor");
        (x, y)
    };
    let (train, labels) = make(n_train);
    let (test, _) = make(n_test);
    let dir = tempfile::tempdir()?;
    train.write_npy(dir.path().join("train.npy"))?;
    labels.write_npy(dir.path().join("labels.npy"))?;
    test.write_npy(dir.path().join("test.npy"))?;
    let labels_v = ncood::features::Labels::new(Vec::<i64>::try_from(&labels)?, None, "labels")?;

    let reference = |batch: usize| -> anyhow::Result<f64> {
        let out = Command::new(".venv/bin/python")
            .args([
                "benches/gda_ddu.py",
                &dir.path().to_string_lossy(),
                &threads.to_string(),
                &batch.to_string(),
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let (fit, score) = (v["fit_s"].as_f64().unwrap(), v["score_s"].as_f64().unwrap());
        println!("  reference (batch {batch}) fit {fit:.2} s, score {score:.2} s");
        Ok(fit + score)
    };
    let (mut ours, mut ddu, mut best) = (vec![], vec![], vec![]);
    let mut scores = vec![];
    for r in 1..=rounds {
        let t0 = Instant::now();
        let g = Gda::fit(&train, &labels_v)?;
        let fit_s = t0.elapsed().as_secs_f64();
        scores = g.score(&test)?;
        ours.push(t0.elapsed().as_secs_f64());
        println!(
            "  ncood fit {fit_s:.2} s, score {:.2} s",
            ours[r - 1] - fit_s
        );
        ddu.push(reference(128)?);
        best.push(reference(0)?);
        println!(
            "round {r}: ncood {:.2} s, DDU reference (128-row batches) {:.2} s, reference (one call) {:.2} s",
            ours[r - 1],
            ddu[r - 1],
            best[r - 1]
        );
    }
    let theirs = Vec::<f64>::try_from(Tensor::read_npy(dir.path().join("ddu_scores.npy"))?)?;
    let max_rel = scores
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max);
    anyhow::ensure!(
        max_rel < 1e-8,
        "scores disagree with the reference: max relative difference {max_rel:e}"
    );
    let (a, b, bb) = (median(ours), median(ddu), median(best));
    println!(
        "median of {rounds} rounds, {threads} threads, fit + score, D={d} C={c} N={n_train}+{n_test}: speed-up over the DDU reference {:.2}x (as DDU runs it), {:.2}x (reference in one call); scores agree to {max_rel:.1e}",
        b / a,
        bb / a
    );
    Ok(())
}
