//! Training-step benchmark: ncood against plain PyTorch (benches/train_step.py) in one run.
//!
//! DDU ResNet18 (spectral norm, mod, L2), batch 128, at four sizes: w=4, 8 and 16 on 1x28x28 Fashion-MNIST
//! and w=64 on 3x32x32 (CIFAR-shaped images drawn at random: CIFAR cannot be fetched here; the
//! pixels do not change the work). Each side runs every variant, memory layout (channels_last,
//! contiguous) x precision (fp32, bf16). The ncood side runs the trainer's own step
//! (`train::train_step`) including its data path (shuffle plan, crop augmentation, u8 ->
//! normalised f32; on a GPU from the split held on the device, and each variant also with CUDA
//! graphs, `train::graph`); the PyTorch side trains on one fixed, pre-made tensor, as a user would
//! time it, so the comparison is conservative for ncood. A third side, PyTorch with glibc told
//! to keep freed memory (ncood's `device::keep_freed_memory`, via MALLOC_* variables), shows how
//! much of the gap a PyTorch user could close with the allocator alone.
//!
//! Rounds interleave all sides; the report gives each variant's median and range over rounds,
//! its ratio to PyTorch's default (contiguous fp32) median of the same size (this machine is
//! noisy, only ratios from one run mean anything), and the memory it page-faulted in per step
//! (getrusage minor faults x page size).
//!
//! Run: `cargo bench --bench train_step` (after scripts/setup.sh). Env: NCOOD_BENCH_ROUNDS (5),
//! NCOOD_BENCH_STEPS (20 at w=16; w=64 runs a quarter, at least 2), NCOOD_BENCH_THREADS (2),
//! NCOOD_BENCH_SIZES (4x1x28,8x1x28,16x1x28,64x3x32), NCOOD_BENCH_PRECISIONS (fp32,bf16),
//! NCOOD_BENCH_DEVICE (cpu; cuda on a GPU machine), NCOOD_BENCH_PYTHON (.venv/bin/python).
//! The small widths (4, 8) are where the CPU presets train and where the faster layout changes:
//! `MemoryFormat::Auto` takes channels-last from `CHANNELS_LAST_FROM_WIDTH` on.
mod common;
use common::{env, median};
use ncood::config::{Loss, Precision, RunConfig};
use ncood::data::loader::{DeviceData, EpochPlan, Normalizer, train_batch};
use ncood::data::{DataSource, Dataset, DatasetKind, Normalization};
use ncood::model::{MemoryFormat, Net};
use ncood::rng::{Stream, rng};
use ncood::train::{graph::GraphedSteps, sgd::Sgd, train_step};
use rand::Rng;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

/// One benchmarked size: ResNet18 width, image channels and side.
struct Size {
    width: usize,
    channels: usize,
    side: usize,
}

impl Size {
    fn name(&self) -> String {
        format!(
            "w={} {}x{}x{}",
            self.width, self.channels, self.side, self.side
        )
    }
    /// Real Fashion-MNIST for 1x28x28, else random images of the CIFAR-10 format.
    fn data(&self) -> anyhow::Result<Dataset> {
        if self.channels == 1 && self.side == 28 {
            let cfg = RunConfig::default();
            return Ok(
                DataSource::from(&cfg.data).read_file_split(DatasetKind::FashionMnist, true)?
            );
        }
        anyhow::ensure!(
            self.channels == 3 && self.side == 32,
            "sizes are 1x28 or 3x32"
        );
        let mut r = rng(0, Stream::Epoch(0));
        let n = 2048;
        Ok(Dataset {
            info: DatasetKind::Cifar10.info(),
            pixels: (0..n * 3 * 32 * 32).map(|_| r.random()).collect(),
            labels: (0..n).map(|_| r.random_range(0..10)).collect(),
        })
    }
}

const LAYOUTS: [(MemoryFormat, &str); 2] = [
    (MemoryFormat::ChannelsLast, "channels_last"),
    (MemoryFormat::Contiguous, "contiguous"),
];

fn main() -> anyhow::Result<()> {
    let (rounds, steps_small, threads) = (
        env("NCOOD_BENCH_ROUNDS", 5),
        env("NCOOD_BENCH_STEPS", 20),
        env("NCOOD_BENCH_THREADS", 2),
    );
    let device_name = std::env::var("NCOOD_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let python = std::env::var("NCOOD_BENCH_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into());
    let device = ncood::device::setup(device_name.parse()?, threads)?;
    let sizes: Vec<Size> = std::env::var("NCOOD_BENCH_SIZES")
        .unwrap_or_else(|_| "4x1x28,8x1x28,16x1x28,64x3x32".into())
        .split(',')
        .map(|s| {
            let v: Vec<usize> = s.split('x').map(|t| t.parse()).collect::<Result<_, _>>()?;
            anyhow::ensure!(v.len() == 3, "NCOOD_BENCH_SIZES: {s} is not WxCxS");
            Ok(Size {
                width: v[0],
                channels: v[1],
                side: v[2],
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let precisions: Vec<String> = std::env::var("NCOOD_BENCH_PRECISIONS")
        .unwrap_or_else(|_| "fp32,bf16".into())
        .split(',')
        .map(String::from)
        .collect();
    // (size, side and variant) -> (images/s, page-faulted MB per step) of each round.
    let mut results: BTreeMap<(usize, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (si, size) in sizes.iter().enumerate() {
        let steps = if size.width <= 16 {
            steps_small
        } else {
            (steps_small / 4).max(2)
        };
        let data = size.data()?;
        let norm = Normalizer::new(&Normalization::of(&data)?, device);
        let plan = EpochPlan::new(data.len(), 128, false, true, &mut rng(0, Stream::Epoch(0)));
        // On a GPU the trainer keeps the split on the device and augments there.
        let on_device = device.is_cuda().then(|| DeviceData::new(&data, device));
        // Every ncood variant's model, built once (the same seed: the same initial weights); on
        // a GPU each also with CUDA graphs.
        let graph_modes: &[bool] = if device.is_cuda() {
            &[false, true]
        } else {
            &[false]
        };
        let mut nets = vec![];
        for (format, layout) in LAYOUTS {
            for (precision, &graphs) in precisions
                .iter()
                .flat_map(|p| graph_modes.iter().map(move |g| (p, g)))
            {
                let cfg = RunConfig::from_toml(
                    &format!(
                        "memory_format = \"{layout}\"\n[model]\nwidth = {}\nl2 = true\n[data]\nname = \"{}\"\n[optim]\nprecision = \"{precision}\"\n",
                        size.width, data.info.name
                    ),
                    &[],
                )?;
                let net = cfg.net(device)?;
                let sgd = Sgd::new(&net.vs, 0.9, 5e-4);
                assert_eq!(cfg.memory_format, format);
                let graphed = graphs.then(|| GraphedSteps::new(device)).transpose()?;
                let name = format!(
                    "{layout}:{precision}{}",
                    if graphs { "+graphs" } else { "" }
                );
                nets.push((name, cfg.optim.precision, net, sgd, graphed));
            }
        }
        let lr = tch::Tensor::from(0.1).to_device(device);
        let mut batches = plan.batches.iter().cycle();
        let mut run = |net: &Net,
                       sgd: &mut Sgd,
                       graphed: &mut Option<GraphedSteps>,
                       precision: Precision,
                       n: usize| {
            let mut loss = tch::Tensor::from(0f32);
            for _ in 0..n {
                let items = batches.next().unwrap();
                let (x, y) = match &on_device {
                    Some(d) => d.batch(items, &norm),
                    None => train_batch(&data, items, &norm),
                };
                let ce = Loss::CrossEntropy;
                loss = match graphed {
                    Some(g) => g.step(net, sgd, &x, &y, &lr, ce, precision),
                    None => train_step(net, sgd, &x, &y, &lr, ce, precision),
                }
                .unwrap()
                .0;
            }
            f64::try_from(loss).unwrap() // waits for the device
        };
        for (_, precision, net, sgd, graphed) in &mut nets {
            run(net, sgd, graphed, *precision, 3); // warm-up (and graph capture)
        }
        // The data path alone, to show it is not the bottleneck of a step.
        let t0 = Instant::now();
        for items in plan.batches.iter().take(steps) {
            let _ = train_batch(&data, items, &norm);
        }
        let data_ms = t0.elapsed().as_secs_f64() * 1e3 / steps as f64;
        println!("{}: data path {data_ms:.2} ms per batch", size.name());
        let pytorch_variants: Vec<String> = LAYOUTS
            .iter()
            .flat_map(|(_, l)| precisions.iter().map(move |p| format!("{l}:{p}")))
            .collect();
        for r in 1..=rounds {
            for (name, precision, net, sgd, graphed) in &mut nets {
                let (faults, t0) = (minor_faults(), Instant::now());
                run(net, sgd, graphed, *precision, steps);
                let v = (steps * 128) as f64 / t0.elapsed().as_secs_f64();
                let mb = (minor_faults() - faults) as f64 * page_size() / 1e6 / steps as f64;
                results
                    .entry((si, format!("ncood {name}")))
                    .or_default()
                    .push((v, mb));
            }
            let pytorch = |variants: &str, env: &[(&str, &str)]| -> anyhow::Result<_> {
                let out = Command::new(&python)
                    .args(["benches/train_step.py", "--variants", variants])
                    .args(["--steps", &steps.to_string()])
                    .args(["--threads", &threads.to_string()])
                    .args(["--width", &size.width.to_string()])
                    .args(["--channels", &size.channels.to_string()])
                    .args(["--side", &size.side.to_string()])
                    .args(["--device", &device_name])
                    .envs(env.iter().copied())
                    .output()?;
                anyhow::ensure!(
                    out.status.success(),
                    "PyTorch side failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let sides: BTreeMap<String, PyTorchSide> = serde_json::from_slice(&out.stdout)?;
                Ok(sides
                    .into_iter()
                    .map(|(v, r)| (v, (r.images_per_s, r.page_fault_mb_per_step))))
            };
            for (v, r) in pytorch(&pytorch_variants.join(","), &[])? {
                results
                    .entry((si, format!("PyTorch {v}")))
                    .or_default()
                    .push(r);
            }
            let kept = [
                ("MALLOC_MMAP_MAX_", "0"),
                ("MALLOC_TRIM_THRESHOLD_", "2147483647"),
            ];
            for (v, r) in pytorch("contiguous:fp32", &kept)? {
                results
                    .entry((si, format!("PyTorch {v} +keep-freed-memory")))
                    .or_default()
                    .push(r);
            }
            println!("{} round {r}/{rounds} done", size.name());
        }
    }
    println!(
        "\n{rounds} interleaved rounds, {device_name}, {threads} threads, batch 128; img/s median [min-max]; ratio to PyTorch contiguous:fp32 (median over median)"
    );
    let ips = |v: &[(f64, f64)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    for (si, size) in sizes.iter().enumerate() {
        let reference = median(ips(&results[&(si, "PyTorch contiguous:fp32".to_string())]));
        println!(
            "\n| {} | img/s median [min-max] | ratio | page faults MB/step (median) |",
            size.name()
        );
        println!("|---|---|---|---|");
        for ((s, name), v) in &results {
            if *s != si {
                continue;
            }
            let speeds = ips(v);
            let lo = speeds.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = speeds.iter().cloned().fold(0.0, f64::max);
            let m = median(speeds);
            let faults = median(v.iter().map(|r| r.1).collect());
            println!(
                "| {name} | {m:.0} [{lo:.0}-{hi:.0}] | {:.3} | {faults:.1} |",
                m / reference
            );
        }
    }
    Ok(())
}

/// One PyTorch variant's figures, as benches/train_step.py prints them.
#[derive(serde::Deserialize)]
struct PyTorchSide {
    images_per_s: f64,
    page_fault_mb_per_step: f64,
}

/// Minor page faults of this process so far (getrusage).
fn minor_faults() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as f64 }
}
