#!/usr/bin/env bash
# The main job: set up if needed, then reproduce the paper's study with the quick preset
# (Fashion-MNIST -> MNIST and the flip-invert set, small width and epochs in the paper's
# proportions, 2 seeds; about 5.5 minutes on a 2-core CPU): every table, figure and claim, ending
# with the path of report.html. Run again, it continues an interrupted study and skips what is done.
# Extra arguments go to `ncood reproduce` (e.g. --out DIR, --preset cpu); NCOOD_JOBS sets --jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(( $(nproc) < 2 ? 1 : 2 ))
exec target/release/ncood reproduce --preset quick --jobs "${NCOOD_JOBS:-$jobs}" "$@"
