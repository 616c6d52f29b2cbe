//! Link libtorch so that the binary runs without LD_LIBRARY_PATH and with CUDA really linked.
//!
//! torch-sys exports the libtorch directory as DEP_TCH_LIBTORCH_LIB (we depend on it directly to see
//! it). `--no-as-needed -ltorch` keeps libtorch_cuda.so in the binary's NEEDED list: without it the
//! linker drops it and CUDA is never available (tch-rs issue #980).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // `cfg(ci)` under CI (CI=true): tests that need what CI provides (tests/slurm.rs: a SLURM
    // cluster) run there and fail without it, instead of being ignored.
    println!("cargo::rustc-check-cfg=cfg(ci)");
    println!("cargo:rerun-if-env-changed=CI");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        println!("cargo:rustc-cfg=ci");
    }
    // The commit a binary was built from, recorded in every run directory.
    if let Ok(out) = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        && out.status.success()
    {
        println!(
            "cargo:rustc-env=NCOOD_GIT_COMMIT={}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={dir}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        shim(std::path::Path::new(&dir));
    }
}

/// Compiles csrc/shim.cpp (libtorch functions tch does not bind, see src/shim.rs) against the
/// headers of the libtorch in `lib`; with CUDA graphs when that libtorch has CUDA and the CUDA
/// runtime headers of its NVIDIA wheels (site-packages/nvidia/cu13/include, with the crt/ headers
/// of the nvidia-cuda-crt wheel) are there.
fn shim(lib: &std::path::Path) {
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    let torch = lib.parent().expect("libtorch's lib/ has a parent");
    let cuda_include = torch.join("../nvidia/cu13/include");
    let cuda =
        lib.join("libtorch_cuda.so").exists() && cuda_include.join("crt/host_config.h").exists(); // from nvidia-cuda-crt (setup.sh)
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/shim.cpp")
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag("-w"); // libtorch's headers warn a lot; errors still show
    if cuda {
        build.include(&cuda_include).define("NCOOD_CUDA", None);
    }
    build.compile("ncood_shim");
    for l in ["torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
    if cuda {
        for l in ["torch_cuda", "c10_cuda"] {
            println!("cargo:rustc-link-lib=dylib={l}");
        }
        // libtorch's inline CUDA error checks call the CUDA runtime directly; its wheel ships only
        // the versioned file (hence verbatim, which also reaches crates that link this one, such
        // as the Python extension), found at run time through the rpath like libtorch itself.
        let cudart = torch.join("../nvidia/cu13/lib");
        println!("cargo:rustc-link-search=native={}", cudart.display());
        println!("cargo:rustc-link-lib=dylib:+verbatim=libcudart.so.13");
        println!("cargo:rustc-link-arg=-Wl,-rpath={}", cudart.display());
    }
}
