"""Rate–distortion curves of codec series and Bjøntegaard tables between them (pure).

BD deltas come from :mod:`cdfv.rd.bd` (VCEG-M33 cubic fit, or PCHIP).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdfv.rd.bd import BdError, BdMethod, bd_metric, bd_rate


@dataclass(frozen=True)
class RdPoint:
    """One codec x quality point: mean rate and distortion."""

    codec: str
    series: str
    bpp: float
    psnr: float
    ms_ssim: float


def curves(points: Sequence[RdPoint]) -> dict[str, list[RdPoint]]:
    """Group points by series (``JPEG``, ``HEVC``, ``Balle2018_mse`` ...), each sorted by rate."""
    out: dict[str, list[RdPoint]] = {}
    for p in points:
        out.setdefault(p.series, []).append(p)
    return {k: sorted(v, key=lambda p: p.bpp) for k, v in sorted(out.items())}


def bd_table(
    points: Sequence[RdPoint], anchor: str, metric: str = "psnr", method: BdMethod = "cubic"
) -> dict[str, dict[str, float | None]]:
    """BD-rate (%) and BD-<metric> of every series against ``anchor``.

    Returns ``{series: {"bd_rate": ..., "bd_<metric>": ...}}``; a delta that is undefined (too few
    points, no overlap) is None. Raises KeyError naming the series when ``anchor`` has no points.
    """
    by = curves(points)
    if anchor not in by:
        raise KeyError(f"anchor series {anchor!r} has no points (have: {', '.join(by) or 'none'})")
    a = by[anchor]
    ar, am = [p.bpp for p in a], [getattr(p, metric) for p in a]
    table: dict[str, dict[str, float | None]] = {}
    for series, pts in by.items():
        tr, tm = [p.bpp for p in pts], [getattr(p, metric) for p in pts]
        row: dict[str, float | None] = {}
        for key, fn in (("bd_rate", bd_rate), (f"bd_{metric}", bd_metric)):
            try:
                row[key] = fn(ar, am, tr, tm, method)
            except BdError:
                row[key] = None
        table[series] = row
    return table


def bd_markdown(tables: Mapping[str, Mapping[str, Mapping[str, float | None]]], anchor: str) -> str:
    """Markdown BD table: one row per series, columns per metric (``tables[metric][series]``)."""
    metrics = list(tables)
    series = sorted({s for t in tables.values() for s in t})
    head = ["series"] + [f"BD-rate % ({m})" for m in metrics] + [f"BD-{m}" for m in metrics]
    lines = [f"Bjøntegaard deltas vs **{anchor}** (negative BD-rate = fewer bits for the same quality).", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v: float | None, digits: int) -> str:
        return "n/a" if v is None else f"{v:+.{digits}f}"

    for s in series:
        cells = [fmt(tables[m].get(s, {}).get("bd_rate"), 1) for m in metrics]
        cells += [fmt(tables[m].get(s, {}).get(f"bd_{m}"), 3 if m == "psnr" else 4) for m in metrics]
        lines.append("| " + " | ".join([s, *cells]) + " |")
    return "\n".join(lines) + "\n"
