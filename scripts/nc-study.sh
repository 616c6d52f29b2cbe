#!/usr/bin/env bash
# The Fashion-MNIST NC study of results/fmnist-nc-15ep: ResNet18 w=16 with and without L2, seeds
# 0..2, EPOCHS epochs, NC + GDA AUROC vs MNIST tracked every epoch on a 20,000-image class-balanced
# training subset, and the SPEC 7 intervention from epoch E of the no-L2 seed-0 run. All runs go in
# parallel (made for a GPU machine: about 7 minutes on one H200; on this 2-core CPU, hours).
#   scripts/nc-study.sh [OUT_DIR] (env: DEVICE=cuda EPOCHS=15 E=5 SEEDS="0 1 2")
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-runs/nc-study}; DEVICE=${DEVICE:-cuda}; EPOCHS=${EPOCHS:-15}; E=${E:-5}; SEEDS=${SEEDS:-0 1 2}
C="--epochs $EPOCHS --threads 2 --device $DEVICE --set track.every=1 --set track.subset=20000 --set track.ood=mnist"
mkdir -p "$R"
for s in $SEEDS; do
  target/release/ncood train $C --seed "$s" --set model.l2=true --out "$R/l2-s$s" > "$R/l2-s$s.out" 2>&1 &
  target/release/ncood train $C --seed "$s" --out "$R/nol2-s$s" > "$R/nol2-s$s.out" 2>&1 &
done
first=$(echo $SEEDS | cut -d' ' -f1)
while [ ! -f "$R/nol2-s$first/checkpoints/epoch-$(printf %04d "$E").state.safetensors" ]; do sleep 2; done
for g in control nc; do
  target/release/ncood intervene "$R/nol2-s$first" --from-epoch "$E" --groups $g > "$R/intervene-$g.out" 2>&1 &
done
wait
python3 scripts/nc-summary.py "$R"
