"""Stage results for ``dvc metrics``: the declared numbers a researcher compares, the details beside them.

A stage that reports numbers calls :func:`write_results` once per result file:

* ``reports/metrics/<name>.json`` — declared under ``metrics:`` in ``dvc.yaml`` (``cache: false``):
  a flat mapping of at most :data:`MAX_KEYS` numbers, the same key set for every file of one kind
  (:class:`MetricKind`), so ``dvc metrics show`` prints one short row per file and
  ``dvc metrics diff`` lists only results that moved.
* ``reports/details/<name>.json`` (:func:`cdfv.paths.details_json`) — declared as a plain output
  (``outs:``, ``cache: false``, never ``metrics:``): run timings, counts, settings echoes, per-stage
  notes. Consumers read both through :func:`read_results`.

Floats in the declared file are rounded to :data:`SIGNIFICANT` significant digits: far below any
difference a researcher reads, and above the last-bit noise of a re-run (summation order of
threaded kernels), so ``dvc repro -f`` with unchanged inputs leaves ``dvc metrics diff`` empty.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdfv import paths
from cdfv.io import atomic_path, tmpdir_near, write_json_atomic

#: at most this many keys per declared metrics file (one terminal row of ``dvc metrics show``)
MAX_KEYS = 12
#: significant digits of a declared float
SIGNIFICANT = 6


@dataclass(frozen=True)
class MetricKind:
    """The common key set of one kind of metrics file (every file of the kind has these keys)."""

    name: str
    keys: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 0 < len(self.keys) <= MAX_KEYS or len(set(self.keys)) != len(self.keys):
            raise ValueError(f"metric kind {self.name!r}: 1..{MAX_KEYS} distinct keys, got {self.keys}")


def round_significant(value: float, digits: int = SIGNIFICANT) -> float:
    """``value`` rounded to ``digits`` significant digits (0, inf and NaN unchanged)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def declared(kind: MetricKind, values: Mapping[str, Any]) -> dict[str, int | float]:
    """The declared metrics of one file: exactly ``kind.keys`` (None dropped), numbers only, rounded."""
    extra = sorted(set(values) - set(kind.keys))
    missing = sorted(set(kind.keys) - set(values))
    if extra or missing:
        raise ValueError(
            f"{kind.name} metrics must have the keys {list(kind.keys)}: extra {extra}, missing {missing} "
            "(put anything else in the details)"
        )
    out: dict[str, int | float] = {}
    for key in kind.keys:
        v = values[key]
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{kind.name} metric {key!r} must be a number, got {type(v).__name__} {v!r}")
        out[key] = v if isinstance(v, int) else round_significant(float(v))
    return out


def write_results(
    root: str | os.PathLike[str],
    metrics_json: Path,
    kind: MetricKind,
    metrics: Mapping[str, Any],
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """Write ``root/metrics_json`` (declared, ``kind``'s keys) and its details file atomically.

    Returns details and metrics merged, a dropped (None) metric as None.
    """
    root = Path(root)
    values = declared(kind, metrics)
    clash = sorted(set(details) & set(kind.keys))
    if clash:
        raise ValueError(f"{metrics_json}: keys {clash} are declared metrics; keep them out of the details")
    write_json_atomic(root / paths.details_json(metrics_json), dict(details))
    write_json_atomic(root / metrics_json, values)
    return {**details, **dict.fromkeys(kind.keys), **values}


def read_results(root: str | os.PathLike[str], metrics_json: Path, stage: str = "") -> dict[str, Any]:
    """A declared metrics file merged over its details (a metric that was None is absent: use ``.get``).

    Raises :class:`FileNotFoundError` naming the stage to run when either file is missing.
    """
    root = Path(root)
    out: dict[str, Any] = {}
    for path in (root / paths.details_json(metrics_json), root / metrics_json):
        if not path.is_file():
            hint = f" Run `dvc repro {stage}` first." if stage else ""
            raise FileNotFoundError(f"{path}: missing.{hint}")
        try:
            out.update(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            hint = f"; rerun `dvc repro {stage}`" if stage else ""
            raise ValueError(f"{path}: not valid JSON ({err}){hint}") from None
    return out


def result_names(root: str | os.PathLike[str], metrics_dir: Path) -> list[str]:
    """Stems of the declared metrics files in ``root/metrics_dir`` (sorted; empty when absent)."""
    d = Path(root) / metrics_dir
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


@contextlib.contextmanager
def results_dir(root: str | os.PathLike[str], metrics_dir: Path) -> Iterator[Path]:
    """Stage a whole directory of results: yields a staging root to pass to :func:`write_results`.

    On success ``metrics_dir`` and its details directory are replaced by what was written under the
    staging root (files of results that no longer exist disappear); on error nothing changes.
    """
    root = Path(root)
    with tmpdir_near(root / paths.DETAILS / ".results") as staging:
        stage_root = Path(staging)
        (stage_root / metrics_dir).mkdir(parents=True)
        (stage_root / paths.details_json(metrics_dir)).mkdir(parents=True)
        yield stage_root
        for sub in (metrics_dir, paths.details_json(metrics_dir)):
            with atomic_path(root / sub) as tmp:
                os.replace(stage_root / sub, tmp)
