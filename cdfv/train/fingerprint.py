"""The identity of a training run: a checkpoint resumes only an interrupted run of the *same inputs*.

DVC reruns a training stage when its params, its code or its data change (or on ``dvc repro -f``).
Resuming from a checkpoint is only correct when none of them changed, so the fingerprint stored in
every checkpoint covers

* the params the run reads (:func:`run_params`),
* every dependency DVC tracks for the stage — the ``deps:`` of its ``dvc.yaml`` entry, so code
  (``cdfv/train``, ``cdfv/models``, ...) and data (``images.parquet``, the PNG folder, latent shards,
  ``models/resnet50/model.pt``) alike — hashed by **content** as the files are in the workspace
  (sha256 of every file; ``__pycache__`` skipped),
* the embedding the phase-2 FC starts from.

A completed run deletes its checkpoints (:meth:`cdfv.train.checkpoint.Checkpoints.seal`), so a
rerun of a finished stage always trains from step 0; the fingerprint guards the interrupted case.
Cost: one read of every input file when a run starts (measured in ``docs/training.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cdfv.errors import CdfvError
from cdfv.io import sha256_file

#: dependencies under this prefix are code: resolved in the workspace, else beside the imported package
CODE_PREFIX = "cdfv/"
SKIP_DIRS = frozenset({"__pycache__"})
SKIP_SUFFIXES = (".pyc",)
MISSING = "missing"


class FingerprintError(CdfvError, RuntimeError):
    """The stage's dvc.yaml entry cannot be read; the message names the file and stage."""


def package_repo() -> Path:
    """The folder holding the imported ``cdfv`` package (the repository in a development install)."""
    import cdfv

    return Path(cdfv.__file__).resolve().parent.parent


def _dvc_yaml(root: Path) -> Path:
    for base in (root, package_repo()):
        if (base / "dvc.yaml").is_file():
            return base / "dvc.yaml"
    raise FingerprintError(f"no dvc.yaml in {root} or {package_repo()}: run training from the repository root")


def stage_deps(stage: str, item: str | None = None, root: Path = Path(".")) -> list[str]:
    """The ``deps:`` of ``stage`` (``${item}`` substituted for a ``foreach`` group) in ``dvc.yaml``.

    Read from ``<root>/dvc.yaml``, else from the repository of the imported package (runs outside a
    DVC workspace, e.g. tests).
    """
    path = _dvc_yaml(Path(root))
    doc = yaml.safe_load(path.read_text()) or {}
    entry = (doc.get("stages") or {}).get(stage)
    if entry is None:
        raise FingerprintError(f"{path}: no stage {stage!r}")
    if "foreach" in entry:
        if item is None:
            raise FingerprintError(f"{path}: stage {stage!r} is a foreach group; name the item ({stage}@<item>)")
        entry = entry["do"]
    deps = []
    for dep in entry.get("deps") or []:
        dep = str(dep).replace("${item}", item or "")
        if "${" in dep:
            raise FingerprintError(
                f"{path}: stage {stage!r} dep {dep!r} uses an interpolation the trainer cannot resolve"
            )
        deps.append(dep)
    return deps


def _files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        out += [Path(dirpath) / f for f in filenames if not f.endswith(SKIP_SUFFIXES)]
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def content_digest(path: Path, workers: int = 8) -> str:
    """sha256 of a file, or of a folder's sorted ``(relative path, file sha256)`` list; ``missing``."""
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        return MISSING
    files = _files(path)
    with ThreadPoolExecutor(max(1, workers)) as pool:  # hashlib releases the GIL
        hashes = list(pool.map(sha256_file, files))
    h = hashlib.sha256()
    for f, fh in zip(files, hashes, strict=True):
        h.update(f"{f.relative_to(path).as_posix()}\0{fh}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """``digest`` (stored in checkpoints) and its ``parts`` (name -> hash) for telling what changed."""

    parts: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.parts, sort_keys=True).encode()).hexdigest()[:16]

    def changed(self, other: dict[str, str] | None) -> list[str]:
        """Names of the parts that differ from ``other`` (all when unknown)."""
        if not other:
            return ["everything (checkpoint of an older format)"]
        names = sorted(set(self.parts) | set(other))
        return [n for n in names if self.parts.get(n) != other.get(n)]


def json_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def compute(
    stage: str,
    item: str | None,
    root: Path,
    params: Any,
    extra: dict[str, Any] | None = None,
    workers: int | None = None,
    say: bool = True,
) -> Fingerprint:
    """Hash ``params`` (JSON-able), every dvc.yaml dependency of ``stage[@item]`` and ``extra``."""
    root = Path(root)
    code_base = root if (root / "dvc.yaml").is_file() else package_repo()
    t0 = time.perf_counter()
    parts = {"params": json_digest(params)}
    for name, value in (extra or {}).items():
        parts[name] = json_digest(value)
    workers = workers or min(8, os.cpu_count() or 1)
    for dep in stage_deps(stage, item, root):
        base = code_base if dep.startswith(CODE_PREFIX) else root
        parts[f"{'code' if dep.startswith(CODE_PREFIX) else 'data'} {dep}"] = content_digest(base / dep, workers)
    if say:
        print(
            f"[fingerprint] {stage}{'@' + item if item else ''}: {len(parts) - 1 - len(extra or {})} dependencies "
            f"hashed in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return Fingerprint(parts)
