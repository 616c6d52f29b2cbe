//! Model: shapes for both architectures and both input sizes, L2 features, the PyTorch-layout
//! export, and checkpoints that reload to the same logits.
use ncood::checkpoint;
use ncood::model::{Arch, ModelConfig, ResNet};
use tch::{Device, Kind, Tensor, nn};

fn build(arch: Arch, modded: bool, l2: bool, channels: i64, side: i64) -> (nn::VarStore, ResNet) {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        arch,
        width: 2,
        modded,
        l2,
        ..Default::default()
    };
    let m = ResNet::new(&vs.root(), &cfg, channels, side, 7).unwrap();
    (vs, m)
}

#[test]
fn shapes_for_every_arch_and_input() {
    for arch in Arch::ALL {
        for (c, side) in [(1, 28), (3, 32)] {
            for modded in [true, false] {
                let (_vs, m) = build(arch, modded, true, c, side);
                let x = Tensor::randn([3, c, side, side], (Kind::Float, Device::Cpu));
                for train in [true, false] {
                    let out = m.forward_t(&x, train);
                    let d = m.config.feature_dim();
                    assert_eq!(d, if arch == Arch::Resnet18 { 16 } else { 64 });
                    assert_eq!(
                        out.logits.size(),
                        vec![3, 7],
                        "{arch:?} {c}x{side} mod={modded}"
                    );
                    assert_eq!(out.raw.size(), vec![3, d]);
                    assert_eq!(out.normalized.size(), vec![3, d]);
                }
            }
        }
    }
}

#[test]
fn l2_features_have_unit_norm_and_feed_the_head() {
    let (_vs, m) = build(Arch::Resnet18, true, true, 1, 28);
    let x = Tensor::randn([4, 1, 28, 28], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| m.forward_t(&x, false));
    let norms = out.normalized.norm_scalaropt_dim(2, [1], false);
    let max_dev = f64::try_from((norms - 1.0).abs().max()).unwrap();
    assert!(max_dev < 1e-6, "{max_dev}");
    let head = tch::no_grad(|| out.normalized.matmul(&m.fc.ws.tr()) + m.fc.bs.as_ref().unwrap());
    assert!(f64::try_from((head - &out.logits).abs().max()).unwrap() < 1e-5);
    // Without L2, the head reads the raw feature.
    let (_vs2, m2) = build(Arch::Resnet18, true, false, 1, 28);
    let out2 = tch::no_grad(|| m2.forward_t(&x, false));
    let head2 = tch::no_grad(|| out2.raw.matmul(&m2.fc.ws.tr()) + m2.fc.bs.as_ref().unwrap());
    assert!(f64::try_from((head2 - &out2.logits).abs().max()).unwrap() < 1e-5);
}

#[test]
fn pytorch_layout_names() {
    let (vs, m) = build(Arch::Resnet18, false, false, 3, 32);
    let names: Vec<String> = m
        .pytorch_state(&vs, 5)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for expected in [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "layer1.0.conv1.weight",
        "layer2.0.shortcut.0.weight",
        "layer2.0.shortcut.1.running_var",
        "layer4.1.bn2.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("weight_orig") || n.contains("weight_u"))
    );
    let (vs50, m50) = build(Arch::Resnet50, true, false, 1, 28);
    let names50: Vec<String> = m50
        .pytorch_state(&vs50, 0)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names50.iter().any(|n| n == "layer3.5.conv3.weight"));
    assert!(
        !names50.iter().any(|n| n.contains("shortcut")),
        "mod shortcuts have no parameters"
    );
}

#[test]
fn checkpoint_roundtrip_gives_same_logits() {
    let (vs, m) = build(Arch::Resnet18, true, true, 1, 28);
    // Train-mode passes move the SN vectors and BN statistics away from their initial values.
    for _ in 0..3 {
        let _ = m.forward_t(
            &Tensor::randn([8, 1, 28, 28], (Kind::Float, Device::Cpu)),
            true,
        );
    }
    let x = Tensor::randn([5, 1, 28, 28], (Kind::Float, Device::Cpu));
    let before = tch::no_grad(|| m.forward_t(&x, false).logits);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.safetensors");
    let state: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    let meta: checkpoint::Metadata = [("epoch".to_string(), "3".to_string())].into();
    checkpoint::write(&path, &state, &meta).unwrap();
    // The same tensors in another order give the same bytes (sorted names and metadata).
    let reversed: Vec<(String, Tensor)> = state
        .iter()
        .rev()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    assert_eq!(
        checkpoint::to_bytes(&state, &meta).unwrap(),
        checkpoint::to_bytes(&reversed, &meta).unwrap()
    );
    let (vs2, m2) = build(Arch::Resnet18, true, true, 1, 28);
    let (tensors, meta2) = checkpoint::read(&path).unwrap();
    assert_eq!(meta2["epoch"], "3");
    checkpoint::load_into(vs2.variables(), &tensors, &path).unwrap();
    let after = tch::no_grad(|| m2.forward_t(&x, false).logits);
    assert_eq!(f64::try_from((before - after).abs().max()).unwrap(), 0.0);
    // A corrupt file is an error naming it.
    std::fs::write(&path, b"not safetensors").unwrap();
    let e = checkpoint::read(&path).unwrap_err().to_string();
    assert!(e.contains("state.safetensors"), "{e}");
}
