//! Link libtorch so that the binary runs without LD_LIBRARY_PATH and with CUDA really linked.
//!
//! torch-sys exports the libtorch directory as DEP_TCH_LIBTORCH_LIB (we depend on it directly to see
//! it). `--no-as-needed -ltorch` keeps libtorch_cuda.so in the binary's NEEDED list: without it the
//! linker drops it and CUDA is never available (tch-rs issue #980).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
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
    }
}
