"""The resume fingerprint: params + content of every dvc.yaml dependency of the stage."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cdfv.train.fingerprint import FingerprintError, compute, content_digest, stage_deps

DVC_YAML = """
stages:
  train_x:
    foreach: [a, b]
    do:
      cmd: cdfv train-x ${item}
      deps:
        - cdfv/pkg
        - data/${item}.bin
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "cdfv/pkg/sub").mkdir(parents=True)
    (tmp_path / "cdfv/pkg/mod.py").write_text("X = 1\n")
    (tmp_path / "cdfv/pkg/sub/deep.py").write_text("Y = 2\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/a.bin").write_bytes(b"\x00" * 100)
    return tmp_path


def test_folder_digest_is_content_not_metadata(root: Path) -> None:
    pkg = root / "cdfv/pkg"
    d0 = content_digest(pkg)
    # the definition restated: sha256 over sorted "relative path \0 sha256(file)" lines
    lines = "".join(f"{p}\0{hashlib.sha256((pkg / p).read_bytes()).hexdigest()}\n" for p in ("mod.py", "sub/deep.py"))
    assert d0 == hashlib.sha256(lines.encode()).hexdigest()
    os.utime(pkg / "mod.py", (1, 1))
    assert content_digest(pkg) == d0  # a touch changes nothing
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__/mod.cpython-311.pyc").write_bytes(b"junk")
    assert content_digest(pkg) == d0  # derived files are not code
    (pkg / "sub/deep.py").write_text("Y = 3\n")
    assert content_digest(pkg) != d0
    assert content_digest(root / "nope") == "missing"


def test_parts_name_what_changed(root: Path) -> None:
    assert stage_deps("train_x", "a", root) == ["cdfv/pkg", "data/a.bin"]
    base = compute("train_x", "a", root, {"lr": 0.1}, say=False)
    assert set(base.parts) == {"params", "code cdfv/pkg", "data data/a.bin"}
    assert compute("train_x", "a", root, {"lr": 0.1}, say=False).digest == base.digest  # deterministic
    (root / "data/a.bin").write_bytes(b"\x00" * 99 + b"\x01")  # one byte of data
    data = compute("train_x", "a", root, {"lr": 0.1}, say=False)
    assert data.changed(base.parts) == ["data data/a.bin"] and data.digest != base.digest
    (root / "cdfv/pkg/mod.py").write_text("X = 1  # comment\n")
    code = compute("train_x", "a", root, {"lr": 0.1}, say=False)
    assert code.changed(data.parts) == ["code cdfv/pkg"]
    assert compute("train_x", "a", root, {"lr": 0.2}, say=False).changed(code.parts) == ["params"]
    assert compute("train_x", "b", root, {"lr": 0.2}, say=False).parts["data data/b.bin"] == "missing"


def test_stage_errors_name_the_file(root: Path) -> None:
    with pytest.raises(FingerprintError, match=r"dvc.yaml: no stage 'nope'"):
        stage_deps("nope", None, root)
    with pytest.raises(FingerprintError, match=r"foreach group; name the item"):
        stage_deps("train_x", None, root)
