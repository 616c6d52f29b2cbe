#!/usr/bin/env bash
# The GPU measurements of the speed issue, as one script for a lent device machine (see
# /work/.library/device): build here, carry target/release/ncood and the train_step bench binary,
# run this there. Writes everything under $OUT (default /tmp/gpu-check) and prints a summary.
#   1. the training-step benchmark on the device: ncood (layouts x precisions, eager and CUDA
#      graphs) against PyTorch eager, interleaved rounds;
#   2. a 60-epoch ResNet18+L2 (w=64) run on CIFAR-10-shaped data (synthetic: CIFAR cannot be
#      fetched offline; the format and sizes are CIFAR-10's), then its evaluation: wall time of both;
#   3. several runs packed on one device: N concurrent one-epoch runs, images/s per device for each N.
# The same script runs on a CPU at a toy scale to check it (NCOOD_CHECK_DEVICE=cpu and small sizes:
# see the variables below).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${NCOOD_CHECK_DEVICE:-cuda}
TRAIN=${NCOOD_CHECK_TRAIN_SIZE:-50000}
WIDTH=${NCOOD_CHECK_WIDTH:-64}
EPOCHS=${NCOOD_CHECK_EPOCHS:-60}
PACK=${NCOOD_CHECK_PACK:-1 2 4 8}
ROUNDS=${NCOOD_CHECK_ROUNDS:-5}
GRAPHS=${NCOOD_CHECK_GRAPHS:-true}
PYTHON=${NCOOD_CHECK_PYTHON:-$(command -v python3)}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
NCOOD=${NCOOD_BIN:-target/release/ncood}
# The binary's rpath names this checkout's venv; on another machine use that machine's libtorch.
torch_lib=$("$PYTHON" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
cu13_lib=$(dirname "$torch_lib")/../nvidia/cu13/lib
export LD_LIBRARY_PATH="$torch_lib:$cu13_lib:${LD_LIBRARY_PATH:-}"
"$NCOOD" --version

# Synthetic CIFAR-10 in the binary format (label byte + 3072 bytes CHW), class-dependent colour
# means so that training has something to learn.
data=$OUT/data
if [ ! -f "$data/cifar10/cifar-10-batches-bin/test_batch.bin" ]; then
  "$PYTHON" - "$data/cifar10/cifar-10-batches-bin" "$TRAIN" <<'PY'
import os, sys
import numpy as np
out, n_train = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
means = rng.integers(40, 216, size=(10, 3, 1, 1))
def batch(path, n):
    y = rng.integers(0, 10, size=n).astype(np.uint8)
    x = np.clip(means[y] + rng.normal(0, 40, size=(n, 3, 32, 32)), 0, 255).astype(np.uint8)
    rec = np.concatenate([y[:, None], x.reshape(n, -1)], axis=1)
    rec.tofile(path)
for b in range(1, 6):
    batch(os.path.join(out, f"data_batch_{b}.bin"), n_train // 5)
batch(os.path.join(out, "test_batch.bin"), max(n_train // 5, 100))
PY
fi
common=(--data-root "$data" --device "$DEVICE" --set data.name=cifar10 --set data.verify=false
  --set model.width="$WIDTH" --set model.l2=true --set cuda_graphs="$GRAPHS")

# 1. Training-step benchmark.
bench=$(ls target/release/deps/train_step-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
if [ -n "$bench" ] && [ "$ROUNDS" -gt 0 ]; then
  NCOOD_BENCH_DEVICE=$DEVICE NCOOD_BENCH_PYTHON=$PYTHON NCOOD_BENCH_ROUNDS=$ROUNDS \
    "$bench" --bench 2>&1 | tee "$OUT/bench.txt"
fi

# 2. One 60-epoch run and its evaluation, timed.
run=$OUT/run60
rm -rf "$run"
t0=$(date +%s.%N)
"$NCOOD" train "${common[@]}" --epochs "$EPOCHS" --out "$run" > "$OUT/run60.log" 2>&1
t1=$(date +%s.%N)
"$NCOOD" eval "$run" --device "$DEVICE" --ood noise-uniform,noise-gaussian,flip-invert \
  > "$OUT/eval60.log" 2>&1
t2=$(date +%s.%N)
echo "run: $EPOCHS epochs of $TRAIN images, w=$WIDTH, graphs=$GRAPHS: train $(echo "$t1 - $t0" | bc) s, eval $(echo "$t2 - $t1" | bc) s" \
  | tee "$OUT/summary.txt"
tail -2 "$OUT/run60.log" | tee -a "$OUT/summary.txt"

# 3. N runs packed on one device: one epoch each, started together.
for n in $PACK; do
  rm -rf "$OUT/pack$n"
  t0=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    "$NCOOD" train "${common[@]}" --epochs 1 --seed "$i" --out "$OUT/pack$n/r$i" \
      > "$OUT/pack$n-r$i.log" 2>&1 &
  done
  wait
  t1=$(date +%s.%N)
  echo "packed $n: $(echo "$n * $TRAIN / ($t1 - $t0)" | bc) img/s per device (one epoch + its test pass each, $(echo "$t1 - $t0" | bc) s)" \
    | tee -a "$OUT/summary.txt"
done
