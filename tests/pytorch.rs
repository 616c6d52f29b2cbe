//! Interop: an ncood checkpoint loads into the plain PyTorch reference ResNet
//! (python/ddu_resnet.py, torch from .venv) with load_state_dict(strict=True) and gives the same
//! logits. The venv with torch is part of the set-up (scripts/setup.sh): without it this fails.
mod common;
use ncood::config::RunConfig;
use ncood::data::RunData;
use ncood::data::loader::{Normalizer, eval_batch};
use ncood::model::Arch;
use ncood::run::RunDir;
use ncood::train::{self, Start};
use std::process::Command;

fn python() -> &'static str {
    let py = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let out = Command::new(py)
        .args(["-c", "import torch, safetensors, numpy"])
        .output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()),
        "{py} cannot import torch, safetensors and numpy (run scripts/setup.sh): {out:?}"
    );
    py
}

#[test]
fn checkpoint_loads_into_pytorch_with_same_logits() {
    let py = python();
    let tmp = tempfile::tempdir().unwrap();
    common::fake_fashion_mnist(tmp.path(), 200, 40);
    for (arch, modded, l2) in [
        (Arch::Resnet18, true, true),
        (Arch::Resnet18, false, false),
        (Arch::Resnet50, true, false),
    ] {
        let text = format!(
            "device = \"cpu\"\n[model]\narch = \"{}\"\nwidth = 2\nmod = {modded}\nl2 = {l2}\n[data]\nroot = {:?}\nverify = false\n[optim]\nepochs = 1\nbatch_size = 50\n",
            format!("{arch:?}").to_lowercase(),
            tmp.path()
        );
        let cfg = RunConfig::from_toml(&text, &[]).unwrap();
        let dir = tmp.path().join(format!("{arch:?}-{modded}-{l2}"));
        train::run(&dir, Start::New(Box::new(cfg)), 0, &mut |_| {}).unwrap();
        let (cfg, net, _) = RunDir::new(&dir).load_net(0, tch::Device::Cpu).unwrap();
        let data = RunData::load(&cfg.data, cfg.seed).unwrap();
        let norm = Normalizer::new(&data.normalization, tch::Device::Cpu);
        let (x, _) = eval_batch(&data.test, 0, 16, &norm);
        let logits = tch::no_grad(|| net.model.forward_t(&x, false).logits);
        let (xp, lp) = (dir.join("x.npy"), dir.join("logits.npy"));
        x.write_npy(&xp).unwrap();
        logits.write_npy(&lp).unwrap();
        let out = Command::new(py)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/python/check_interop.py"
            ))
            .arg(RunDir::new(&dir).checkpoint_path(1, false))
            .args([&xp, &lp])
            .args([
                format!("{arch:?}").to_lowercase(),
                "2".into(),
                "1".into(),
                "28".into(),
                "10".into(),
            ])
            .args([if modded { "1" } else { "0" }, if l2 { "1" } else { "0" }])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{arch:?} mod={modded} l2={l2}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
