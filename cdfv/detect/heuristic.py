"""The paper's centre heuristic (thesis §5.4, paper §III.A), as a pure function.

Walk the confidence threshold down from ``start`` (0.985) to ``stop`` (0.7) by ``step`` (0.005).
At each threshold keep the faces whose box contains the image centre; one left → take it; several
→ take the one maximising the minimum distance from the centre to its box edges; none at the last
threshold → ``no_face``. The thresholds are generated with exact decimal integer steps
(985 → 700 by 5), never by repeated float subtraction, so 0.7 stays 0.7.

The detector runs once at the lowest threshold; greedy NMS is threshold-monotone, so filtering
those candidates by score is the same as re-running it at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from cdfv.detect.base import Face


@dataclass(frozen=True)
class Choice:
    """Outcome of the heuristic for one image."""

    status: Literal["ok", "no_face"]
    index: int | None  # into the candidate list, None for no_face
    threshold_used: float | None  # threshold at which the face was accepted
    n_containing: int  # candidates containing the centre at that threshold (0 for no_face)


@lru_cache(maxsize=64)
def threshold_steps(start: float, stop: float, step: float) -> tuple[float, ...]:
    """The schedule ``start, start-step, ... >= stop`` computed in exact decimal arithmetic."""
    d_start, d_stop, d_step = (Decimal(repr(float(v))) for v in (start, stop, step))
    if d_step <= 0:
        raise ValueError(f"threshold step must be > 0, got {step}")
    if d_stop > d_start:
        raise ValueError(f"threshold stop ({stop}) must be <= start ({start})")
    out: list[float] = []
    k = 0
    while (t := d_start - k * d_step) >= d_stop:
        out.append(float(t))
        k += 1
    return tuple(out)


def centre_margin(box: Sequence[float], cx: float, cy: float) -> float:
    """``min(cx-x1, x2-cx, cy-y1, y2-cy)``: >= 0 exactly when the box contains the centre."""
    x1, y1, x2, y2 = box
    return min(cx - x1, x2 - cx, cy - y1, y2 - cy)


def choose_face(
    faces: Sequence[Face],
    width: int,
    height: int,
    start: float = 0.985,
    stop: float = 0.7,
    step: float = 0.005,
) -> Choice:
    """Pick the face of an image of size ``width`` x ``height`` with the paper's walk-down.

    Ties on the centre margin go to the higher score, then to the earlier candidate, so the
    result never depends on set iteration order.
    """
    cx, cy = width / 2.0, height / 2.0
    margins = [centre_margin(f.box, cx, cy) for f in faces]
    containing = [i for i, m in enumerate(margins) if m >= 0]
    for t in threshold_steps(start, stop, step):
        kept = [i for i in containing if faces[i].score >= t]
        if len(kept) == 1:
            return Choice("ok", kept[0], t, 1)
        if kept:
            best = max(kept, key=lambda i: (margins[i], faces[i].score, -i))
            return Choice("ok", best, t, len(kept))
    return Choice("no_face", None, None, 0)


def fallback_box(width: int, height: int, kind: str, fraction: float = 0.6) -> tuple[int, int, int, int]:
    """Box fed to alignment when no face passes: the whole image or a centred square."""
    if kind == "whole_image":
        return (0, 0, width, height)
    if kind == "centre_crop":
        side = max(1, int(round(min(width, height) * fraction)))
        x1, y1 = (width - side) // 2, (height - side) // 2
        return (x1, y1, x1 + side, y1 + side)
    raise ValueError(f"unknown fallback {kind!r}: use 'whole_image' or 'centre_crop'")
