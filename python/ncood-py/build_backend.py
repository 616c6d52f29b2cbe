"""ncood's PEP 517 build backend: maturin's, run so that the build finds the torch it will run
with, so `pip install ./python/ncood-py` needs no environment variable and no flag.

The extension links the libtorch of the installed torch (never a copy of its own), which
torch-sys finds by asking Python (`LIBTORCH_USE_PYTORCH`, set in .cargo/config.toml): it runs
`python3` (`python` in an activated venv) from PATH. Under pip's build isolation that interpreter
would not see torch (pip hides the environment's site-packages with a sitecustomize.py on
PYTHONPATH), and without an activated venv PATH may name another Python. So before compiling, the
interpreter pip runs (the target environment's) goes first on PATH and pip's isolation entry
leaves PYTHONPATH; maturin itself still comes from the isolated build environment.
"""
from __future__ import annotations

import os
import subprocess
import sys

import maturin
from maturin import (  # noqa: F401  (the hooks pip asks for, unchanged)
    build_sdist,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)


def _see_the_installed_torch() -> None:
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if p and not os.path.exists(os.path.join(p, "sitecustomize.py"))]
    if path:
        os.environ["PYTHONPATH"] = os.pathsep.join(path)
    else:
        os.environ.pop("PYTHONPATH", None)
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise RuntimeError(
            f"ncood links the libtorch of the torch installed beside it, and {sys.executable} has "
            "no torch: install torch==2.11.0 first (pip install torch==2.11.0), then ncood")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _see_the_installed_torch()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _see_the_installed_torch()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)
