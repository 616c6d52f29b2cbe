//! Convolutions with spectral normalisation on the convolution operator (SPEC 2, DDU).
//!
//! W is replaced by W / max(1, sigma / c), sigma the largest singular value of the linear map
//! x -> conv2d(x, W) on the layer's real input shape (1, in, H, H), estimated by power iteration
//! with conv2d / conv_transpose2d (for 1x1 convs: of the reshaped (out, in) matrix, as DDU does).
//! u and v persist as buffers; training runs `iterations` power steps per forward pass without
//! gradient, eval mode reuses the stored vectors. sigma = <u, conv2d(v, W)> is differentiated
//! through W. DDU divides by an extra (1 + 1e-5); ncood drops it, so a layer whose sigma is already
//! <= c is left exactly unchanged.
use tch::{Kind, Tensor, nn};

/// F.normalize(x, dim=all, eps=1e-12).
fn normalize(t: &Tensor) -> Tensor {
    t / t.norm().clamp_min(1e-12)
}

/// Spectral-normalisation state of one conv.
#[derive(Debug)]
struct Sn {
    u: Tensor,
    v: Tensor,
    coeff: f64,
    iterations: usize,
    /// 1x1 conv: matrix norm of (out, in) instead of the operator norm.
    matrix: bool,
    output_padding: i64,
}

/// A bias-free 2-d convolution, optionally spectrally normalised.
#[derive(Debug)]
pub struct Conv {
    /// Raw weight (`weight_orig` under SN, else `weight`), out x in x k x k.
    pub weight: Tensor,
    sn: Option<Sn>,
    stride: i64,
    padding: i64,
}

/// Spectral-normalisation settings of a conv: coefficient c and power iterations per step.
#[derive(Debug, Clone, Copy)]
pub struct SnSettings {
    pub coeff: f64,
    pub iterations: usize,
}

impl Conv {
    /// A k x k conv with padding k / 2 at input size `in_hw`, PyTorch's default init
    /// (U(-1/sqrt(fan_in), 1/sqrt(fan_in))). u, v start as normalised standard normals.
    pub fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        in_hw: i64,
        sn: Option<SnSettings>,
    ) -> Conv {
        let bound = 1.0 / ((c_in * k * k) as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let padding = k / 2;
        let Some(s) = sn else {
            return Conv {
                weight: p.var("weight", &[c_out, c_in, k, k], init),
                sn: None,
                stride,
                padding,
            };
        };
        let weight = p.var("weight_orig", &[c_out, c_in, k, k], init);
        let matrix = k == 1;
        let out_hw = (in_hw + 2 * padding - k) / stride + 1;
        let (u_shape, v_shape) = if matrix {
            (vec![c_out], vec![c_in])
        } else {
            (vec![1, c_out, out_hw, out_hw], vec![1, c_in, in_hw, in_hw])
        };
        let dev = p.device();
        let u = p.add(
            "weight_u",
            normalize(&Tensor::randn(&u_shape, (Kind::Float, dev))),
            false,
        );
        let v = p.add(
            "weight_v",
            normalize(&Tensor::randn(&v_shape, (Kind::Float, dev))),
            false,
        );
        let output_padding = if stride > 1 { 1 - in_hw % 2 } else { 0 };
        Conv {
            weight,
            sn: Some(Sn {
                u,
                v,
                coeff: s.coeff,
                iterations: s.iterations,
                matrix,
                output_padding,
            }),
            stride,
            padding,
        }
    }

    /// A(x) = conv2d(x, W) with this layer's stride and padding.
    fn apply(&self, x: &Tensor, w: &Tensor) -> Tensor {
        x.conv2d(
            w,
            None::<Tensor>,
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            1,
        )
    }

    /// sigma = <u, A v> (differentiable in W). Runs the power iteration first when `train`.
    pub fn sigma(&self, train: bool) -> Option<Tensor> {
        let sn = self.sn.as_ref()?;
        let w = &self.weight;
        if sn.matrix {
            let w2 = w.view([w.size()[0], -1]);
            if train {
                tch::no_grad(|| {
                    for _ in 0..sn.iterations {
                        let v = normalize(&w2.tr().mv(&sn.u));
                        let u = normalize(&w2.mv(&v));
                        sn.v.shallow_clone().copy_(&v);
                        sn.u.shallow_clone().copy_(&u);
                    }
                });
            }
            return Some(sn.u.dot(&w2.mv(&sn.v)));
        }
        if train {
            tch::no_grad(|| {
                for _ in 0..sn.iterations {
                    let v = sn.u.conv_transpose2d(
                        w,
                        None::<Tensor>,
                        [self.stride; 2],
                        [self.padding; 2],
                        [sn.output_padding; 2],
                        1,
                        [1, 1],
                    );
                    let v = normalize(&v);
                    let u = normalize(&self.apply(&v, w));
                    sn.v.shallow_clone().copy_(&v);
                    sn.u.shallow_clone().copy_(&u);
                }
            });
        }
        Some((&sn.u * self.apply(&sn.v, w)).sum(Kind::Float))
    }

    /// The weight the layer applies: W / max(1, sigma / c) under SN, else W.
    pub fn effective_weight(&self, train: bool) -> Tensor {
        match (self.sigma(train), &self.sn) {
            (Some(sigma), Some(sn)) => &self.weight / (sigma / sn.coeff).clamp_min(1.0),
            _ => self.weight.shallow_clone(),
        }
    }

    /// The convolution; under bf16 autocast only the convolution itself is bf16: the power
    /// iteration, sigma and W / sigma stay fp32.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let w = match self.sn {
            Some(_) => crate::shim::fp32(|| self.effective_weight(train)),
            None => self.weight.shallow_clone(),
        };
        self.apply(x, &w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The exact operator norm of x -> conv2d(x, w) on inputs of shape `in_shape`: the dense
    /// matrix of the map (the conv applied to every basis image) and its largest singular value
    /// by SVD in f64. Independent of the power iteration it checks.
    fn operator_norm(w: &Tensor, in_shape: &[i64], stride: i64, padding: i64) -> f64 {
        let n: i64 = in_shape.iter().product();
        let basis = Tensor::eye(n, (Kind::Double, Device::Cpu)).view([
            n,
            in_shape[1],
            in_shape[2],
            in_shape[3],
        ]);
        let a = tch::no_grad(|| {
            basis
                .conv2d(
                    &w.to_kind(Kind::Double),
                    None::<Tensor>,
                    [stride; 2],
                    [padding; 2],
                    [1, 1],
                    1,
                )
                .view([n, -1])
        });
        f64::try_from(a.svd(true, false).1.max()).unwrap()
    }

    fn layer(
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        hw: i64,
        coeff: f64,
        scale: f64,
    ) -> (nn::VarStore, Conv) {
        // Tests run in parallel threads and libtorch's RNG is global: hold a lock while seeding and
        // drawing, so every run builds the same layer.
        static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = Conv::new(
            vs.root(),
            c_in,
            c_out,
            k,
            stride,
            hw,
            Some(SnSettings {
                coeff,
                iterations: 1,
            }),
        );
        tch::no_grad(|| conv.weight.shallow_clone().copy_(&(&conv.weight * scale)));
        (vs, conv)
    }

    #[test]
    fn normalised_operator_norm_is_at_most_coeff() {
        // Odd and even input sizes, stride 1 and 2 (output_padding 0 and 1), and a 1x1 conv.
        for (k, stride, hw) in [(3, 1, 6), (3, 2, 7), (3, 2, 8), (1, 2, 8)] {
            let (_vs, conv) = layer(3, 5, k, stride, hw, 1.0, 20.0);
            let raw = operator_norm(&conv.weight, &[1, 3, hw, hw], stride, k / 2);
            assert!(raw > 2.0, "test layer must start above c (sigma {raw})");
            for _ in 0..20_000 {
                conv.sigma(true); // power iteration as in training, run long enough to converge
            }
            let w = tch::no_grad(|| conv.effective_weight(false));
            let after = operator_norm(&w, &[1, 3, hw, hw], stride, k / 2);
            assert!(after <= 1.0 + 1e-4, "k={k} s={stride} hw={hw}: {after}");
            assert!(
                after > 0.999,
                "converged power iteration reaches c: {after}"
            );
        }
    }

    #[test]
    fn layer_below_coeff_is_unchanged() {
        let (_vs, conv) = layer(2, 4, 3, 1, 5, 3.0, 0.1);
        let raw = operator_norm(&conv.weight, &[1, 2, 5, 5], 1, 1);
        assert!(raw < 3.0);
        for _ in 0..50 {
            conv.sigma(true);
        }
        let w = tch::no_grad(|| conv.effective_weight(true));
        assert_eq!(f64::try_from((&w - &conv.weight).abs().max()).unwrap(), 0.0);
    }

    #[test]
    fn power_estimate_matches_independent_norm() {
        let (_vs, conv) = layer(3, 4, 3, 2, 8, 1.0, 1.0);
        for _ in 0..3000 {
            conv.sigma(true);
        }
        let est = f64::try_from(tch::no_grad(|| conv.sigma(false).unwrap())).unwrap();
        let exact = operator_norm(&conv.weight, &[1, 3, 8, 8], 2, 1);
        assert!((est - exact).abs() < 1e-4 * exact, "{est} vs {exact}");
    }
}
