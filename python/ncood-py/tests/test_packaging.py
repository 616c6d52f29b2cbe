"""The package's metadata and its one docstring source: the version is the crate's, the
requirements are torch's, and the stub's docstrings are the extension's own (from the Rust doc
comments), mentioning no file the wheel does not ship."""
import ast
import importlib.metadata
import inspect
import re
import tomllib
from pathlib import Path

import ncood
import ncood._native as native

PKG = Path(__file__).resolve().parents[1]
STUB = PKG / "python" / "ncood" / "_native.pyi"


def test_version_is_the_crates():
    crate = tomllib.loads((PKG.parents[1] / "Cargo.toml").read_text())["package"]["version"]
    binding = tomllib.loads((PKG / "Cargo.toml").read_text())["package"]["version"]
    assert ncood.__version__ == crate == binding == importlib.metadata.version("ncood")


def test_metadata_requires_this_torch_and_python():
    project = tomllib.loads((PKG / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"  # torch 2.11.0's own floor
    import torch
    assert f"torch=={torch.__version__.split('+')[0]}" in project["dependencies"]
    assert "version" in project["dynamic"]  # from Cargo.toml, never a second copy


def _stub_docs() -> dict[str, str | None]:
    """Qualified name -> docstring of every class and function of the stub."""
    docs = {}

    def walk(node, prefix):
        for ch in node.body:
            if isinstance(ch, (ast.ClassDef, ast.FunctionDef)):
                name = prefix + ch.name
                docs[name] = ast.get_docstring(ch)
                if isinstance(ch, ast.ClassDef):
                    walk(ch, name + ".")

    walk(ast.parse(STUB.read_text()), "")
    return docs


def _runtime_doc(name: str) -> str | None:
    obj = native
    for part in name.split("."):
        obj = getattr(obj, part)
    return inspect.getdoc(obj)


def _same(text: str | None) -> str | None:
    return None if text is None else " ".join(text.split())


def test_stub_docstrings_are_the_extensions():
    stub = _stub_docs()
    typed_dicts = {"Nc2", "_Collapse", "Collapse", "Detection", "SoftmaxScores", "GDAState"}
    checked = 0
    for name, doc in stub.items():
        if name.split(".")[0] in typed_dicts or name.endswith("__init__"):
            continue  # stub-only types; __init__'s doc is Python's generic one
        assert _same(_runtime_doc(name)) == _same(doc), name
        checked += 1
    assert checked >= 30
    # Everything the extension exports has its entry in the stub.
    public = {k for k in vars(native) if not k.startswith("_")} | {"__version__"}
    declared = {n for n in stub if "." not in n} | {"__version__", "Covariance", "Batch", "Model"}
    assert public - declared == set()
    for cls in (native.GDA, native.ClassStats):
        for k, v in vars(cls).items():
            if not k.startswith("_") or k == "__reduce__":
                assert f"{cls.__name__}.{k}" in stub, f"{cls.__name__}.{k} is missing from the stub"


def test_docstrings_cite_no_file_the_wheel_lacks():
    texts = [STUB.read_text(), inspect.getdoc(ncood), inspect.getdoc(ncood.load_checkpoint),
             inspect.getdoc(ncood.all_reduce)]
    texts += [d for n in _stub_docs() if hasattr(native, n.split(".")[0]) and (d := _runtime_doc(n))]
    for text in texts:
        assert not re.search(r"SPEC|docs/|README|\.md\b", text), text
