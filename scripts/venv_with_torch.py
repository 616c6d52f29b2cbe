"""Creates a fresh venv at DIR that has only torch (and the packages torch requires) by hard-linking
their installed files from the running environment: a clean environment to install the ncood wheel
into without downloading torch's 2.7 GB again (scripts/test-wheel.sh). Files are linked, not
copied (DIR must be on the running environment's file system), so nothing of the source
environment is shared in a way either can change: pip in DIR would replace a file, never write
into it.

usage: .venv/bin/python scripts/venv_with_torch.py DIR
"""
from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(root: str) -> list[md.Distribution]:
    """root and every distribution it requires, with the extras asked for (markers evaluated
    here)."""
    seen: dict[str, md.Distribution] = {}
    extras_of: dict[str, set[str]] = {}
    todo = [(root, set())]
    while todo:
        name, extras = todo.pop()
        name = canonicalize_name(name)
        if name in seen and extras <= extras_of[name]:
            continue
        dist = seen.setdefault(name, md.distribution(name))
        extras_of[name] = extras_of.get(name, set()) | extras
        for r in map(Requirement, dist.requires or []):
            wanted = r.marker is None or any(
                r.marker.evaluate({"extra": e}) for e in ["", *extras_of[name]])
            if wanted:
                todo.append((r.name, set(r.extras)))
    return list(seen.values())


def main() -> None:
    target = Path(sys.argv[1])
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(target)}))
    for dist in closure("torch"):
        base = Path(dist.locate_file(""))
        for f in dist.files or []:
            if f.parts[0] == "..":  # console scripts outside site-packages: not needed
                continue
            src, dst = base / f, site / f
            if not src.is_file() or dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
    names = sorted(d.metadata["Name"] for d in closure("torch"))
    print(f"{target}: {len(names)} distributions linked ({', '.join(names)})")


if __name__ == "__main__":
    main()
