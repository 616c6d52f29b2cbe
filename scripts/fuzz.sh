#!/usr/bin/env bash
# Builds and runs the parser fuzzer (examples/fuzz.rs); arguments go to it. Without --execs it
# runs the long pass, 1,000,000 executions per target (about 5 minutes on two cores).
#   scripts/fuzz.sh --execs 20000 --time-limit 30       # short bounded pass (CI)
#   scripts/fuzz.sh --targets npy,config --seed 7       # long pass of two targets
# Exit status 0 only when no target had a panic, signal, hang or accepted-bad input.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1
cargo build --release --quiet --example fuzz
args=("$@")
case " $* " in
  *" --execs "*|*" --replay "*|*" --list "*|*" --help "*|*" -h "*) ;;
  *) args=(--execs 1000000 "${args[@]}") ;;
esac
exec target/release/examples/fuzz "${args[@]}"
