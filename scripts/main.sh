#!/usr/bin/env bash
# The main job: set up if needed, then a short real training run (ResNet18 w=16 with L2-normalised
# features, DDU spectral norm + mod) on Fashion-MNIST; prints where its results are.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec target/release/ncood train --set model.l2=true --epochs "${NCOOD_EPOCHS:-2}" \
  --out "runs/main-$(date +%Y%m%d-%H%M%S)"
