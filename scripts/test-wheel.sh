#!/usr/bin/env bash
# The Python package as a user installs it, from this checkout: `pip install ./python/ncood-py`
# with pip's build isolation (maturin from the package index, the build backend finding torch)
# into a fresh venv that has only torch and what torch requires (hard links of .venv's, so torch
# is not downloaded again), then, outside the source tree, an import, the version and one GDA
# fit and score. The build reuses target/ (scripts/setup.sh's build; python/ncood-py/.cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
tmp=$(mktemp -d "$PWD/target/wheel-test.XXXXXX") # on .venv's file system, for the hard links
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python scripts/venv_with_torch.py "$tmp/venv"
"$tmp/venv/bin/python" -m ensurepip >/dev/null
"$tmp/venv/bin/python" -m pip install -q ./python/ncood-py
cd "$tmp"
# (torch warns that numpy is missing: there is none here, on purpose.)
venv/bin/python -W "ignore:Failed to initialize NumPy" - <<'PY'
import importlib.metadata, pathlib, torch, ncood
here = pathlib.Path.cwd()
assert pathlib.Path(ncood.__file__).is_relative_to(here), ncood.__file__
# Every libtorch and ncood library the process mapped is this venv's, none of the build's.
mapped = {l.split()[-1] for l in open("/proc/self/maps") if ".so" in l}
ours = [m for m in mapped if "libtorch" in m or "_native" in m or "libc10" in m]
assert ours and all(pathlib.Path(m).is_relative_to(here) for m in ours), ours
assert ncood.__version__ == importlib.metadata.version("ncood"), ncood.__version__
names = sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions())
assert "ncood" in names and "torch" in names and "numpy" not in names, names
x = torch.randn(200, 4, dtype=torch.float64)
y = torch.arange(200) % 2
s = ncood.GDA.fit(x, y).score(x)
assert s.shape == (200,) and torch.isfinite(s).all()
print(f"wheel: ncood {ncood.__version__} installed into a venv with only torch and its requirements; imported and scored")
PY
