//! Training-step benchmark: ncood against plain PyTorch (benches/train_step.py) in one run.
//!
//! ResNet18, w=16, 1x28x28 Fashion-MNIST, batch 128, spectral norm, mod, L2. The ncood side runs
//! the trainer's own step (`train::train_step`) including its data path (shuffle plan, crop
//! augmentation, u8 -> normalised f32); the PyTorch side trains on one fixed, pre-made tensor, so
//! the comparison is conservative for ncood. Rounds alternate between the two and the medians are
//! compared: this machine is noisy, so only the ratio is meaningful.
//!
//! Run: `cargo bench --bench train_step` (after scripts/setup.sh). Env: NCOOD_BENCH_STEPS (30),
//! NCOOD_BENCH_ROUNDS (3), NCOOD_BENCH_THREADS (2), NCOOD_BENCH_DEVICE (cpu; cuda on a GPU
//! machine), NCOOD_BENCH_PYTHON (.venv/bin/python).
mod common;
use common::{env, median};
use ncood::config::{Loss, RunConfig};
use ncood::data::loader::{EpochPlan, Normalizer, train_batch};
use ncood::data::{DataSource, DatasetKind, Normalization};
use ncood::model::Net;
use ncood::rng::{Stream, rng};
use ncood::train::{sgd::Sgd, train_step};
use std::process::Command;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let (steps, rounds, threads) = (
        env("NCOOD_BENCH_STEPS", 30),
        env("NCOOD_BENCH_ROUNDS", 3),
        env("NCOOD_BENCH_THREADS", 2),
    );
    tch::set_num_threads(threads as i32);
    let device_name = std::env::var("NCOOD_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let python = std::env::var("NCOOD_BENCH_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into());
    let device = device_name
        .parse::<ncood::device::DeviceSpec>()?
        .resolve()?;
    let cfg = RunConfig::from_toml("[model]\nwidth = 16\nl2 = true\n", &[])?;
    let data = DataSource::from(&cfg.data).read_file_split(DatasetKind::FashionMnist, true)?;
    let norm = Normalizer::new(&Normalization::of(&data)?, device);
    let net = Net::new(&cfg, device)?;
    let mut sgd = Sgd::new(&net.vs, 0.9, 5e-4);
    let plan = EpochPlan::new(data.len(), 128, false, true, &mut rng(0, Stream::Epoch(0)));
    let mut batches = plan.batches.iter().cycle();
    let mut run = |n: usize| {
        let mut loss = tch::Tensor::from(0f32);
        for _ in 0..n {
            let (x, y) = train_batch(&data, batches.next().unwrap(), &norm);
            loss = train_step(&net, &mut sgd, &x, &y, 0.1, Loss::CrossEntropy).0;
        }
        f64::try_from(loss).unwrap()
    };
    run(5); // warm-up
    // The data path alone (shuffle plan, augmentation, u8 -> normalised f32), to show it is not
    // the bottleneck of a step.
    let t0 = Instant::now();
    for items in plan.batches.iter().take(steps) {
        let _ = train_batch(&data, items, &norm);
    }
    let data_s = t0.elapsed().as_secs_f64() / steps as f64;
    let (mut ours, mut theirs) = (vec![], vec![]);
    for r in 1..=rounds {
        let t0 = Instant::now();
        run(steps);
        ours.push((steps * 128) as f64 / t0.elapsed().as_secs_f64());
        let out = Command::new(&python)
            .args([
                "benches/train_step.py",
                "--steps",
                &steps.to_string(),
                "--threads",
                &threads.to_string(),
                "--device",
                &device_name,
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "PyTorch side failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        theirs.push(v["images_per_s"].as_f64().unwrap());
        println!(
            "round {r}: ncood {:.0} img/s, PyTorch {:.0} img/s",
            ours[r - 1],
            theirs[r - 1]
        );
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "data path: {:.2} ms per batch, {:.1}% of an ncood step",
        data_s * 1e3,
        100.0 * data_s * a / 128.0
    );
    println!(
        "median of {rounds} rounds x {steps} steps, {device_name}, {threads} threads: ncood {a:.0} img/s, PyTorch {b:.0} img/s, ratio ncood/PyTorch {:.3}",
        a / b
    );
    Ok(())
}
