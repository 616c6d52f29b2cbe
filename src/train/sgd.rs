//! SGD with momentum, PyTorch semantics (`torch.optim.SGD(lr, momentum, weight_decay)`):
//! d = g + wd * p; buf = momentum * buf + d (buf starts at d); p -= lr * buf. Written here rather
//! than with tch's optimizer because exact resumption needs the momentum buffers as tensors
//! (`state` / `load_state`).
use crate::error::Result;
use std::collections::HashMap;
use std::path::Path;
use tch::{Tensor, nn};

pub struct Sgd {
    params: Vec<(String, Tensor)>,
    buffers: Vec<Tensor>,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(vs: &nn::VarStore, momentum: f64, weight_decay: f64) -> Sgd {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        // Zero buffers: momentum * 0 + d == d exactly, which is PyTorch's first step.
        let buffers = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Sgd {
            params,
            buffers,
            momentum,
            weight_decay,
        }
    }

    /// One update with learning rate `lr`, a 0-d tensor: on the device, a new rate costs no
    /// host synchronisation and a captured CUDA graph reads the current one.
    pub fn step(&mut self, lr: &Tensor) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(&mut self.buffers) {
                let g = p.grad();
                if !g.defined() {
                    continue; // no gradient this step (e.g. the head's bias under the NC loss)
                }
                let d = g + &*p * self.weight_decay;
                let _ = buf.g_mul_scalar_(self.momentum).g_add_(&d);
                let _ = p.g_sub_(&(&*buf * lr));
            }
        });
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
    }

    /// The momentum buffers, named `momentum.<parameter>`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .map(|((n, _), b)| (format!("momentum.{n}"), b.shallow_clone()))
            .collect()
    }

    /// Restores the buffers `state` wrote, from the tensors of the file at `path`.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
        crate::checkpoint::load_into(self.state().into_iter().collect(), tensors, path)
    }
}
