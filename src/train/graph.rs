//! CUDA graphs of whole training steps (`cuda_graphs = true`): the step (forward with the spectral
//! norm's power iteration, loss, backward, SGD update) is captured once per batch size and
//! replayed for every batch of that size, so a step costs one graph launch instead of hundreds of
//! kernel launches. Replays read their batch from static input tensors and the learning rate
//! from a device scalar, and run the same kernels as the eager step.
use super::sgd::Sgd;
use super::train_step;
use crate::config::{Loss, Precision};
use crate::error::{Error, Result};
use crate::model::Net;
use crate::shim::{CudaGraph, cuda_graphs_built};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// Eager steps on the side stream before a capture: cuDNN/cuBLAS set themselves up lazily, which
/// cannot happen inside a capture.
const WARMUP_STEPS: usize = 3;

/// A captured step and its static tensors: inputs written before each replay, outputs
/// rewritten by it.
struct Captured {
    graph: CudaGraph,
    x: Tensor,
    y: Tensor,
    loss: Tensor,
    logits: Tensor,
}

/// Training steps through CUDA graphs, one per batch size (a final partial batch gets its own,
/// so the full-size graph is never broken).
pub struct GraphedSteps {
    device: usize,
    lr: Tensor,
    graphs: HashMap<i64, Captured>,
}

impl GraphedSteps {
    pub fn new(device: Device) -> Result<GraphedSteps> {
        let Device::Cuda(i) = device else {
            return Err(Error::config(
                "cuda_graphs",
                "CUDA graphs need a CUDA device; set cuda_graphs = false on the CPU",
            ));
        };
        if !cuda_graphs_built() {
            return Err(Error::config(
                "cuda_graphs",
                "this ncood was built without CUDA headers (scripts/setup.sh installs them); set cuda_graphs = false",
            ));
        }
        Ok(GraphedSteps {
            device: i,
            lr: Tensor::zeros([], (Kind::Double, device)),
            graphs: HashMap::new(),
        })
    }

    /// `train_step` on (x, y) at learning rate `lr` (copied into the graph's own device scalar),
    /// by replaying the graph of this batch size (captured on first use). Returns the static loss
    /// and logits tensors, valid until the next step.
    #[allow(clippy::too_many_arguments)] // train_step's arguments
    pub fn step(
        &mut self,
        net: &Net,
        sgd: &mut Sgd,
        x: &Tensor,
        y: &Tensor,
        lr: &Tensor,
        loss: Loss,
        precision: Precision,
    ) -> Result<(Tensor, Tensor)> {
        tch::no_grad(|| self.lr.copy_(lr));
        let b = x.size()[0];
        if !self.graphs.contains_key(&b) {
            let c = self.capture(net, sgd, x, y, loss, precision).map_err(|e| {
                Error::invalid(
                    "CUDA graph capture of the training step",
                    format!("{e}; set cuda_graphs = false to train without graphs"),
                )
            })?;
            self.graphs.insert(b, c);
        }
        let c = &self.graphs[&b];
        tch::no_grad(|| {
            c.x.shallow_clone().copy_(x);
            c.y.shallow_clone().copy_(y);
        });
        c.graph.replay()?;
        Ok((c.loss.shallow_clone(), c.logits.shallow_clone()))
    }

    /// Captures a step on copies of (x, y). The warm-up steps change the model and SGD state:
    /// it is saved before and restored after, so a run's numbers do not depend on when graphs
    /// were captured.
    fn capture(
        &self,
        net: &Net,
        sgd: &mut Sgd,
        x: &Tensor,
        y: &Tensor,
        loss: Loss,
        precision: Precision,
    ) -> Result<Captured> {
        let state: Vec<(Tensor, Tensor)> = tch::no_grad(|| {
            net.vs
                .variables()
                .into_values()
                .chain(sgd.state().into_iter().map(|(_, t)| t))
                .map(|t| {
                    let saved = t.copy();
                    (t, saved)
                })
                .collect()
        });
        let (sx, sy) = (x.copy(), y.copy());
        let mut graph = CudaGraph::new(self.device)?;
        let lr = &self.lr;
        let (out_loss, logits) = graph.on_side_stream(|g| {
            for _ in 0..WARMUP_STEPS {
                let _ = train_step(net, sgd, &sx, &sy, lr, loss, precision)?;
            }
            g.capture(|| train_step(net, sgd, &sx, &sy, lr, loss, precision))?
        })?;
        tch::no_grad(|| {
            for (t, saved) in &state {
                t.shallow_clone().copy_(saved);
            }
        });
        Ok(Captured {
            graph,
            x: sx,
            y: sy,
            loss: out_loss,
            logits,
        })
    }
}
