//! Where a command computes: the device (parsed from text when a config or option is read,
//! resolved against the machine only when a command runs) and the CPU thread count.
use crate::error::{Error, Result};

/// The most libtorch CPU threads ncood asks for (libgomp aborts the process on absurd counts).
pub const MAX_THREADS: usize = 1024;

/// auto | cpu | cuda | cuda:N, as written in configs and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA device 0 when one is present, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl DeviceSpec {
    /// The device on this machine; a CUDA device that is not there is an error.
    pub fn resolve(self) -> Result<tch::Device> {
        match self {
            DeviceSpec::Auto => Ok(tch::Device::cuda_if_available()),
            DeviceSpec::Cpu => Ok(tch::Device::Cpu),
            DeviceSpec::Cuda(i) => {
                if tch::Cuda::is_available() && i < tch::Cuda::device_count() as usize {
                    Ok(tch::Device::Cuda(i))
                } else {
                    Err(Error::config(
                        "device",
                        format!("{self}: no such CUDA device on this machine"),
                    ))
                }
            }
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<DeviceSpec> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
                Some(i) if i < 1024 => Ok(DeviceSpec::Cuda(i)),
                _ => Err(Error::config(
                    "device",
                    format!("{s}: expected auto, cpu, cuda or cuda:N"),
                )),
            },
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(0) => f.write_str("cuda"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

crate::serde_by_name!(DeviceSpec);

/// Sets libtorch's CPU thread count (0 = leave libtorch's default, one per core).
pub fn set_threads(threads: usize) -> Result<()> {
    if threads > MAX_THREADS {
        return Err(Error::config(
            "threads",
            format!("{threads}: must be at most {MAX_THREADS}"),
        ));
    }
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    Ok(())
}

/// Keeps memory that libtorch frees in the process for reuse instead of returning it to the
/// kernel. glibc serves large blocks (> 32 MiB always, smaller ones until its threshold adapts)
/// with a fresh mmap and unmaps them on free, so every step of a large model page-faults (and the
/// kernel zeroes) all its activations again: measured at w=64, 3x32x32, batch 128, about 2 GB of
/// page faults and 0.8 s of system time per PyTorch training step. With mmap off and trimming at
/// a high water mark, the second step reuses the first one's memory. PyTorch's CPU allocator has no
/// cache of its own, so this is the allocator's setting, not ours to re-implement. Once per
/// process; a no-op on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes allocator parameters; called before training allocates.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        });
    }
}

/// Resolves `spec` and applies `threads`: what every computing command does first.
pub fn setup(spec: DeviceSpec, threads: usize) -> Result<tch::Device> {
    set_threads(threads)?;
    keep_freed_memory();
    spec.resolve()
}

/// Where a command computes as it was told (options, an executor's settings): a device and a CPU
/// thread count, each None where not given. Given values replace a run's configured ones, for that
/// process only (`over`), and are passed on to the processes an executor starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compute {
    pub device: Option<DeviceSpec>,
    pub threads: Option<usize>,
}

impl Compute {
    /// The device and thread count over a run's configured `device` and `threads`: the given
    /// ones where given, else the configured ones. The one rule of every override.
    pub fn over(self, device: DeviceSpec, threads: usize) -> (DeviceSpec, usize) {
        (
            self.device.unwrap_or(device),
            self.threads.unwrap_or(threads),
        )
    }

    /// `setup` for a command that runs no configured run: auto and libtorch's default where not
    /// given.
    pub fn setup(self) -> Result<tch::Device> {
        let (device, threads) = self.over(DeviceSpec::Auto, 0);
        setup(device, threads)
    }
}
