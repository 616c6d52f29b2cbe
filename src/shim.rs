//! Safe wrappers over csrc/shim.cpp, the libtorch functions tch 0.24 does not bind: autocast on
//! the CPU and CUDA in bfloat16 (`optim.precision = "bf16"`), and CUDA graphs (capture a whole
//! training step once, replay it every step: see `train::graph`). A C++ exception comes back as an
//! error carrying its message.
use crate::error::{Error, Result};
use std::ffi::{CStr, c_char};

#[repr(C)]
struct RawGraph {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn ncood_free_error(e: *const c_char);
    fn ncood_autocast_set(cuda: i32, enabled: bool, was_enabled: *mut bool) -> *const c_char;
    fn ncood_autocast_nesting(enter: bool) -> *const c_char;
    fn ncood_autocast_suspend() -> i32;
    fn ncood_autocast_restore(was: i32);
    fn ncood_cuda_graphs_built() -> bool;
    fn ncood_graph_new(device: i32, out: *mut *mut RawGraph) -> *const c_char;
    fn ncood_graph_enter(g: *mut RawGraph) -> *const c_char;
    fn ncood_graph_leave(g: *mut RawGraph) -> *const c_char;
    fn ncood_graph_capture_begin(g: *mut RawGraph) -> *const c_char;
    fn ncood_graph_capture_end(g: *mut RawGraph) -> *const c_char;
    fn ncood_graph_replay(g: *mut RawGraph) -> *const c_char;
    fn ncood_graph_free(g: *mut RawGraph);
}

/// The error a shim function returned, if any, naming `what` failed.
fn check(what: &str, e: *const c_char) -> Result<()> {
    if e.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, freed once here.
    let msg = unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned();
    unsafe { ncood_free_error(e) };
    Err(Error::invalid(
        what,
        msg.lines().next().unwrap_or("").to_string(),
    ))
}

/// `f` in fp32 even inside an autocast region (the spectral norm's power iteration and sigma):
/// as `with torch.autocast(..., enabled=False)`.
pub fn fp32<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: thread-local flag flips that cannot fail.
    let was = unsafe { ncood_autocast_suspend() };
    let out = f();
    unsafe { ncood_autocast_restore(was) };
    out
}

/// bfloat16 autocast on `device` while the guard lives (as `with torch.autocast(...)`; `fp32`
/// turns it off inside). Restores the previous state when dropped.
pub struct Autocast {
    cuda: i32,
    was_enabled: bool,
}

impl Autocast {
    pub fn bf16(device: tch::Device) -> Result<Autocast> {
        let cuda = i32::from(device.is_cuda());
        let mut was_enabled = false;
        // SAFETY: plain values and a valid out-pointer.
        check("autocast", unsafe {
            ncood_autocast_set(cuda, true, &mut was_enabled)
        })?;
        check("autocast", unsafe { ncood_autocast_nesting(true) })?;
        Ok(Autocast { cuda, was_enabled })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        let mut ignored = false;
        // SAFETY: as in `new`; these cannot fail once `new` succeeded for the same device type.
        unsafe {
            let _ = check(
                "autocast",
                ncood_autocast_set(self.cuda, self.was_enabled, &mut ignored),
            );
            let _ = check("autocast", ncood_autocast_nesting(false));
        }
    }
}

/// Whether this binary was built with CUDA graphs (the CUDA headers were found at build time).
pub fn cuda_graphs_built() -> bool {
    // SAFETY: no arguments.
    unsafe { ncood_cuda_graphs_built() }
}

/// A CUDA graph and the side stream it is captured on.
pub struct CudaGraph(*mut RawGraph);

impl CudaGraph {
    pub fn new(device: usize) -> Result<CudaGraph> {
        let mut g = std::ptr::null_mut();
        // SAFETY: a valid out-pointer; the object is freed in Drop.
        check("CUDA graph", unsafe {
            ncood_graph_new(device as i32, &mut g)
        })?;
        Ok(CudaGraph(g))
    }
    /// Runs `f` on the graph's side stream (warm-up steps, the capture), after the work queued
    /// before has finished; returns once `f`'s work has finished.
    pub fn on_side_stream<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        // SAFETY: self.0 is a live graph object.
        check("CUDA graph", unsafe { ncood_graph_enter(self.0) })?;
        let out = f(self);
        check("CUDA graph", unsafe { ncood_graph_leave(self.0) })?;
        out
    }
    /// Captures the CUDA work `f` queues (on the side stream: call inside `on_side_stream`)
    /// instead of running it.
    pub fn capture<T>(&mut self, f: impl FnOnce() -> T) -> Result<T> {
        // SAFETY: self.0 is a live graph object.
        check("CUDA graph capture", unsafe {
            ncood_graph_capture_begin(self.0)
        })?;
        let out = f();
        check("CUDA graph capture", unsafe {
            ncood_graph_capture_end(self.0)
        })?;
        Ok(out)
    }
    /// Runs the captured work again on the current stream.
    pub fn replay(&self) -> Result<()> {
        // SAFETY: self.0 is a live graph object.
        check("CUDA graph replay", unsafe { ncood_graph_replay(self.0) })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: allocated by ncood_graph_new, freed once.
        unsafe { ncood_graph_free(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn cpu_autocast_computes_convolutions_in_bf16_and_restores() {
        let x = Tensor::ones([1, 2, 4, 4], (Kind::Float, Device::Cpu));
        let w = Tensor::ones([3, 2, 3, 3], (Kind::Float, Device::Cpu));
        let conv = || {
            x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1)
                .kind()
        };
        assert_eq!(conv(), Kind::Float);
        {
            let _on = Autocast::bf16(Device::Cpu).unwrap();
            assert_eq!(conv(), Kind::BFloat16);
            assert_eq!(fp32(conv), Kind::Float, "fp32 inside an autocast region");
            assert_eq!(conv(), Kind::BFloat16, "the outer region is restored");
            {
                let _nested = Autocast::bf16(Device::Cpu).unwrap();
                assert_eq!(conv(), Kind::BFloat16);
            }
            assert_eq!(
                conv(),
                Kind::BFloat16,
                "a nested region leaves the outer one on"
            );
        }
        assert_eq!(conv(), Kind::Float, "autocast off again after the guard");
    }

    #[test]
    fn a_cuda_graph_is_made_where_cuda_graphs_can_run_and_is_an_error_elsewhere() {
        let can = tch::Cuda::is_available() && cuda_graphs_built();
        match CudaGraph::new(0) {
            Ok(_) => assert!(
                can,
                "a CUDA graph without CUDA or without CUDA graphs built"
            ),
            Err(e) => {
                let e = e.to_string();
                assert!(!can, "{e}");
                assert!(e.contains("CUDA graph"), "{e}");
            }
        }
    }
}
