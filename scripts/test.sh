#!/usr/bin/env bash
# Set up if needed, then the checks CI runs: formatting, lints, a short bounded fuzz pass over every
# parser (scripts/fuzz.sh runs long ones), and the whole test suite (CPU), with a real single-node
# SLURM cluster (scripts/slurm.sh) for the SLURM executor's tests, then the Python package's tests
# and its wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's wall time when it ends, and the total at the end: where CI's time goes.
timed() {
  local t0=$SECONDS
  "$@"
  echo "test.sh: $((SECONDS - t0)) s: $*" >&2
}
timed scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1
timed cargo fmt --all -- --check
timed cargo clippy --release --all-targets --quiet -- -D warnings
timed scripts/fuzz.sh --execs 20000 --time-limit 10
# A real single-node SLURM cluster for tests/slurm.rs, stopped on exit (failures included): its
# tests that submit jobs are #[ignore]d outside CI and run here with --ignored. Where SLURM cannot
# start (no root, no apt), the rest of the suite still runs and those tests are not run (under
# CI=true they run, and fail).
slurm_dir=$(mktemp -d)
trap 'scripts/slurm.sh stop "$slurm_dir"' EXIT
if scripts/slurm.sh start "$slurm_dir" >/dev/null; then
  export SLURM_CONF=$slurm_dir/slurm.conf
else
  printf '\n%s\n%s\n%s\n\n' \
    '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' \
    '!!! WARNING: scripts/slurm.sh could not start SLURM: the SLURM tests will NOT RUN !!!!!!' \
    '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
fi
timed cargo test --release
if [[ -n ${SLURM_CONF:-} && ${CI:-} != true ]]; then
  timed cargo test --release --test slurm -- --ignored
fi
# The Python package's suite (python/ncood-py/tests; the extension was installed by setup.sh),
# then the package as a user installs it: `pip install ./python/ncood-py` into a fresh venv that
# has only torch (linked from .venv, not downloaded), imported outside the tree (under a minute
# after set-up's build).
timed python -m pytest -q -p no:cacheprovider python/ncood-py/tests
timed scripts/test-wheel.sh
echo "test.sh: total $SECONDS s" >&2
