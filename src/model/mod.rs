//! DDU ResNets (SPEC 2): ResNet18 / ResNet50 in CIFAR form with base width w, spectral
//! normalisation of every conv, the "mod" variant (leaky ReLU, parameter-free shortcuts) and the
//! L2-normalised feature head under study.
//!
//! Parameter names follow the PyTorch reference ResNet's state_dict (`conv1`, `bn1`,
//! `layer{1..4}.{i}.conv{k}`, `.bn{k}`, `.shortcut.{0,1}`, `fc`), so checkpoints load into PyTorch.
pub mod spectral;

use crate::data::DatasetInfo;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use spectral::{Conv, SnSettings};
use tch::{Tensor, nn, nn::ModuleT};

/// The architectures ncood builds; tests iterate over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// BasicBlock x [2, 2, 2, 2]; feature dimension 8w.
    Resnet18,
    /// Bottleneck (expansion 4) x [3, 4, 6, 3]; feature dimension 32w.
    Resnet50,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Resnet18, Arch::Resnet50];
    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Resnet50 => "resnet50",
        }
    }
    fn blocks(self) -> [usize; 4] {
        match self {
            Arch::Resnet18 => [2, 2, 2, 2],
            Arch::Resnet50 => [3, 4, 6, 3],
        }
    }
    fn expansion(self) -> i64 {
        match self {
            Arch::Resnet18 => 1,
            Arch::Resnet50 => 4,
        }
    }
}

/// The model's knobs. Input channels, input size and class count come from the data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// resnet18 | resnet50. Default resnet18.
    pub arch: Arch,
    /// Base width w: stages have w, 2w, 4w, 8w planes (paper: 64). Default 16, >= 1.
    pub width: usize,
    /// Spectral normalisation of every conv. Default true.
    pub spectral_norm: bool,
    /// SN coefficient c (> 0). Default 3.
    pub sn_coeff: f64,
    /// Power iterations per training step (>= 1). Default 1.
    pub sn_iterations: usize,
    /// DDU "mod": leaky ReLU (slope 0.01) and parameter-free shortcuts. Default true.
    #[serde(rename = "mod")]
    pub modded: bool,
    /// L2-normalise the feature before the linear head (the method under study). Default false.
    pub l2: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::Resnet18,
            width: 16,
            spectral_norm: true,
            sn_coeff: 3.0,
            sn_iterations: 1,
            modded: true,
            l2: false,
        }
    }
}

/// The most parameters a model may have (8 GiB of f32 weights): a bound checked before anything
/// is allocated, so an absurd width is an error that names it rather than an allocator abort.
pub const MAX_PARAMETERS: u128 = 1 << 31;

impl ModelConfig {
    /// Checks the fields, and the parameter count for images of `channels` and `classes`.
    pub fn validate(&self, channels: usize, classes: usize) -> Result<()> {
        if self.width == 0 {
            return Err(Error::config("model.width", "must be >= 1"));
        }
        let params = self.parameter_count(channels, classes);
        if params > MAX_PARAMETERS {
            return Err(Error::config(
                "model.width",
                format!(
                    "{} gives {params} parameters, more than the limit of {MAX_PARAMETERS}",
                    self.width
                ),
            ));
        }
        if !(self.sn_coeff > 0.0 && self.sn_coeff.is_finite()) {
            return Err(Error::config(
                "model.sn_coeff",
                format!("{} is not a positive number", self.sn_coeff),
            ));
        }
        if self.sn_iterations == 0 {
            return Err(Error::config("model.sn_iterations", "must be >= 1"));
        }
        Ok(())
    }
    /// Weights of the convolutions and the head (BatchNorm and shortcut parameters are a small
    /// fraction), in u128 so that any width can be counted without overflow.
    pub fn parameter_count(&self, channels: usize, classes: usize) -> u128 {
        let (w, exp) = (self.width as u128, self.arch.expansion() as u128);
        let mut c_in = w;
        let mut total = channels as u128 * w * 9;
        for (stage, &n) in self.arch.blocks().iter().enumerate() {
            let planes = w << stage;
            for _ in 0..n {
                total += if exp == 1 {
                    c_in * planes * 9 + planes * planes * 9
                } else {
                    c_in * planes + planes * planes * 9 + planes * planes * exp
                };
                c_in = planes * exp;
            }
        }
        total + c_in * classes as u128 + classes as u128
    }

    /// Dimension of the feature vector entering the head.
    pub fn feature_dim(&self) -> i64 {
        8 * self.width as i64 * self.arch.expansion()
    }
}

/// What one forward pass gives: logits (B x C), the raw pooled feature f (B x D) and its L2
/// normalisation z = f / ||f|| (B x D), whichever of them the head used.
pub struct Output {
    pub logits: Tensor,
    pub raw: Tensor,
    pub normalized: Tensor,
}

enum Shortcut {
    Identity,
    /// mod: average-pool with kernel = stride (kernel 1 on odd sizes), then zero channels appended.
    AvgPad {
        stride: i64,
        extra: i64,
    },
    /// plain: 1x1 strided conv + BatchNorm.
    Conv(Conv, nn::BatchNorm),
}

/// A BasicBlock (two 3x3 convs) or Bottleneck (1x1, 3x3 strided, 1x1): conv, BN, activation for
/// each but the last conv, whose BN output is added to the shortcut before the activation.
struct Block {
    convs: Vec<(Conv, nn::BatchNorm)>,
    shortcut: Shortcut,
}

/// How 4-d tensors (images, activations, conv weights, SN vectors) are laid out in memory. Only
/// speed and float rounding depend on it: every tensor keeps its logical N x C x H x W shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryFormat {
    /// Whichever of the two is faster for the model's width and device (`resolve`).
    #[default]
    Auto,
    /// NHWC in memory: oneDNN's preferred layout on CPUs, where NCHW costs a reorder of every
    /// activation and weight at every conv (forward and backward).
    ChannelsLast,
    /// NCHW in memory, PyTorch's default.
    Contiguous,
}

/// From this width on, channels-last trains faster than contiguous on a CPU (one thread, DDU
/// ResNet18, 1x28x28, batch 128: contiguous 1.5-1.7x faster at width 4, channels-last 1.25-1.4x
/// at width 8 and 1.24x at 16; `cargo bench --bench train_step` measures it).
pub const CHANNELS_LAST_FROM_WIDTH: usize = 8;

impl MemoryFormat {
    /// The layout `Auto` stands for on `device` at base width `width`: channels-last from
    /// `CHANNELS_LAST_FROM_WIDTH` on a CPU (below it the reorders cost more than they save), and
    /// on CUDA, where cuDNN's tensor-core kernels want it.
    pub fn resolve(self, width: usize, device: tch::Device) -> MemoryFormat {
        match self {
            MemoryFormat::Auto if device.is_cuda() || width >= CHANNELS_LAST_FROM_WIDTH => {
                MemoryFormat::ChannelsLast
            }
            MemoryFormat::Auto => MemoryFormat::Contiguous,
            f => f,
        }
    }

    /// `t` (4-d) in this layout, as `t.contiguous(memory_format=...)` (tch binds no memory
    /// formats; `Auto` must be resolved first, else it lays out as contiguous): NHWC memory,
    /// viewed N x C x H x W with explicit channels-last strides. Explicit
    /// because with one channel (grey images, the stem's weight) NCHW and NHWC memory coincide and
    /// libtorch reads the strides a copy would leave as NCHW, which keeps the stem off oneDNN's
    /// channels-last path.
    pub fn apply(self, t: &Tensor) -> Tensor {
        match self {
            MemoryFormat::ChannelsLast if t.dim() == 4 => {
                let s = t.size();
                let (c, h, w) = (s[1], s[2], s[3]);
                t.permute([0, 2, 3, 1]).contiguous().as_strided(
                    &s,
                    [h * w * c, 1, w * c, c],
                    None::<i64>,
                )
            }
            _ => t.contiguous(),
        }
    }
}

/// `t` in fp32 if autocast computed it in a 16-bit float; f32 and f64 tensors as they are.
fn at_least_fp32(t: Tensor) -> Tensor {
    match t.kind() {
        tch::Kind::BFloat16 | tch::Kind::Half => t.to_kind(tch::Kind::Float),
        _ => t,
    }
}

/// A DDU ResNet.
pub struct ResNet {
    pub config: ModelConfig,
    /// The layout of inputs (converted on entry), activations, conv weights and SN vectors.
    memory_format: MemoryFormat,
    stem: (Conv, nn::BatchNorm),
    blocks: Vec<Block>,
    pub fc: nn::Linear,
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    // PyTorch defaults: scale 1, shift 0, momentum 0.1, eps 1e-5 (tch's default scale is U[0,1]).
    nn::batch_norm2d(
        p,
        c,
        nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            momentum: 0.1,
            eps: 1e-5,
            ..Default::default()
        },
    )
}

impl ResNet {
    /// Builds the model under `p` (parameters drawn from tch's global RNG: seed it first) for
    /// images of `channels` x `side` x `side` and `classes` classes.
    pub fn new(
        p: &nn::Path,
        config: &ModelConfig,
        channels: i64,
        side: i64,
        classes: i64,
    ) -> Result<ResNet> {
        config.validate(channels as usize, classes as usize)?;
        let sn = config.spectral_norm.then_some(SnSettings {
            coeff: config.sn_coeff,
            iterations: config.sn_iterations,
        });
        let w = config.width as i64;
        let exp = config.arch.expansion();
        let stem = (
            Conv::new(p / "conv1", channels, w, 3, 1, side, sn),
            bn(p / "bn1", w),
        );
        let mut blocks = Vec::new();
        let (mut c_in, mut hw) = (w, side);
        for (stage, &n) in config.arch.blocks().iter().enumerate() {
            let planes = w << stage;
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let q = p / format!("layer{}", stage + 1) / i;
                let out_hw = (hw - 1) / stride + 1; // 3x3, padding 1
                let convs = if exp == 1 {
                    vec![
                        (
                            Conv::new(&q / "conv1", c_in, planes, 3, stride, hw, sn),
                            bn(&q / "bn1", planes),
                        ),
                        (
                            Conv::new(&q / "conv2", planes, planes, 3, 1, out_hw, sn),
                            bn(&q / "bn2", planes),
                        ),
                    ]
                } else {
                    vec![
                        (
                            Conv::new(&q / "conv1", c_in, planes, 1, 1, hw, sn),
                            bn(&q / "bn1", planes),
                        ),
                        (
                            Conv::new(&q / "conv2", planes, planes, 3, stride, hw, sn),
                            bn(&q / "bn2", planes),
                        ),
                        (
                            Conv::new(&q / "conv3", planes, planes * exp, 1, 1, out_hw, sn),
                            bn(&q / "bn3", planes * exp),
                        ),
                    ]
                };
                let c_out = planes * exp;
                let shortcut = if stride == 1 && c_in == c_out {
                    Shortcut::Identity
                } else if config.modded {
                    Shortcut::AvgPad {
                        stride,
                        extra: c_out - c_in,
                    }
                } else {
                    let s = &q / "shortcut";
                    Shortcut::Conv(
                        Conv::new(&s / "0", c_in, c_out, 1, stride, hw, sn),
                        bn(&s / "1", c_out),
                    )
                };
                blocks.push(Block { convs, shortcut });
                (c_in, hw) = (c_out, out_hw);
            }
        }
        let d = config.feature_dim();
        let bound = 1.0 / (d as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let fc = nn::linear(
            p / "fc",
            d,
            classes,
            nn::LinearConfig {
                ws_init: init,
                bs_init: Some(init),
                bias: true,
            },
        );
        Ok(ResNet {
            config: config.clone(),
            memory_format: MemoryFormat::Contiguous,
            stem,
            blocks,
            fc,
        })
    }

    fn act(&self, x: Tensor) -> Tensor {
        if self.config.modded {
            x.leaky_relu()
        } else {
            x.relu()
        }
    }

    /// The raw pooled feature f, B x D.
    pub fn forward_features(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.memory_format.apply(x);
        let mut out = self.act(
            self.stem
                .1
                .forward_t(&self.stem.0.forward_t(&x, train), train),
        ); // B x w x H x H
        for block in &self.blocks {
            let mut h = out.shallow_clone();
            let last = block.convs.len() - 1;
            for (k, (conv, norm)) in block.convs.iter().enumerate() {
                h = norm.forward_t(&conv.forward_t(&h, train), train);
                if k < last {
                    h = self.act(h);
                }
            }
            let short = match &block.shortcut {
                Shortcut::Identity => out,
                Shortcut::AvgPad { stride, extra } => {
                    let k = if out.size()[2] % 2 == 1 { 1 } else { *stride };
                    // Zero channels appended by padding (pads run from the last dim backwards):
                    // one op that keeps the memory format, where zeros + cat would need two.
                    out.avg_pool2d([k, k], [*stride, *stride], [0, 0], false, true, None::<i64>)
                        .constant_pad_nd([0, 0, 0, 0, 0, *extra])
                }
                Shortcut::Conv(conv, norm) => norm.forward_t(&conv.forward_t(&out, train), train),
            };
            out = self.act(h + short); // B x c_out x H' x H'
        }
        out.adaptive_avg_pool2d([1, 1]).flatten(1, -1) // B x D (4x4 map averaged)
    }

    /// Logits, raw and normalised features.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Output {
        // fp32 features, normalisation and logits also under bf16 autocast (only the head's
        // matmul is bf16 then).
        let raw = at_least_fp32(self.forward_features(x, train));
        let normalized = &raw / raw.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12); // B x D
        let logits = self
            .fc
            .forward_t(if self.config.l2 { &normalized } else { &raw }, train);
        let logits = at_least_fp32(logits); // B x C
        Output {
            logits,
            raw,
            normalized,
        }
    }

    /// The features the linear head reads: z under L2, else f.
    pub fn head_input<'a>(&self, out: &'a Output) -> &'a Tensor {
        if self.config.l2 {
            &out.normalized
        } else {
            &out.raw
        }
    }

    /// Lays out the model's 4-d variables (conv weights, SN vectors) in `format`, and inputs on
    /// entry to `forward_t`; gradients and SGD buffers follow the variables' layout. Values are
    /// unchanged (checkpoints are written contiguous either way).
    pub fn set_memory_format(&mut self, vs: &nn::VarStore, format: MemoryFormat) {
        tch::no_grad(|| {
            for (_, mut t) in vs.variables() {
                if t.dim() == 4 {
                    let laid_out = format.apply(&t);
                    t.set_data(&laid_out);
                }
            }
        });
        self.memory_format = format;
    }

    /// Every conv with its state_dict prefix (e.g. `layer2.0.conv1`).
    pub fn convs(&self) -> Vec<(String, &Conv)> {
        let mut out = vec![("conv1".to_string(), &self.stem.0)];
        let mut b = 0;
        for (stage, &n) in self.config.arch.blocks().iter().enumerate() {
            for i in 0..n {
                let block = &self.blocks[b];
                for (k, (conv, _)) in block.convs.iter().enumerate() {
                    out.push((format!("layer{}.{i}.conv{}", stage + 1, k + 1), conv));
                }
                if let Shortcut::Conv(conv, _) = &block.shortcut {
                    out.push((format!("layer{}.{i}.shortcut.0", stage + 1), conv));
                }
                b += 1;
            }
        }
        out
    }

    /// The weights in the PyTorch reference layout (SPEC 9): conv weights as the effective
    /// (spectrally normalised, eval-mode) weights, BatchNorm with `num_batches_tracked` = `steps`,
    /// no SN buffers. Sorted by name.
    pub fn pytorch_state(&self, vs: &nn::VarStore, steps: i64) -> Vec<(String, Tensor)> {
        let convs: std::collections::HashMap<String, &Conv> = self.convs().into_iter().collect();
        let mut out = Vec::new();
        tch::no_grad(|| {
            for (name, t) in vs.variables() {
                if let Some(prefix) = name.strip_suffix(".weight_orig") {
                    out.push((
                        format!("{prefix}.weight"),
                        convs[prefix].effective_weight(false).detach().copy(),
                    ));
                } else if name.ends_with(".weight_u") || name.ends_with(".weight_v") {
                    continue;
                } else {
                    if let Some(prefix) = name.strip_suffix(".running_mean") {
                        out.push((format!("{prefix}.num_batches_tracked"), Tensor::from(steps)));
                    }
                    out.push((name, t.detach().copy()));
                }
            }
        });
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A model with its variables, built deterministically from a seed on the CPU (so that initial
/// weights do not depend on the device), then moved to `device`.
pub struct Net {
    pub vs: nn::VarStore,
    pub model: ResNet,
}

impl Net {
    /// `model` for the images and classes of `data`, its weights drawn with `seed`, in `format`
    /// (resolved for the model's width and `device`). `RunConfig::net` builds a run's.
    pub fn new(
        model: &ModelConfig,
        format: MemoryFormat,
        data: &DatasetInfo,
        seed: u64,
        device: tch::Device,
    ) -> Result<Net> {
        // libtorch's RNG is process-global: seed and draw under a lock so that models built
        // concurrently in one process (threads, tests) still get their seed's weights.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed as i64);
        // tch's layer constructors panic when libtorch fails (out of memory): turn that into an
        // error naming the model rather than a crash.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut vs = nn::VarStore::new(tch::Device::Cpu);
            let mut resnet = ResNet::new(
                &vs.root(),
                model,
                data.channels as i64,
                data.side as i64,
                data.classes as i64,
            )?;
            resnet.set_memory_format(&vs, format.resolve(model.width, device));
            vs.set_device(device);
            Ok(Net { vs, model: resnet })
        }))
        .unwrap_or_else(|panic| {
            Err(Error::config(
                "model",
                format!(
                    "{} width {}: libtorch could not build it: {}",
                    model.arch.name(),
                    model.width,
                    crate::error::panic_message(&*panic)
                ),
            ))
        })
    }
}
