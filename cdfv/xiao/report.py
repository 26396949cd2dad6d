"""Stage ``report_xiao``: rate-FRR figure beside Xiao et al.'s Fig. 1 points, paper-vs-ours table, the paper's
rate measure (IPR's rate as a fraction of HEVC CRF 23's at equal FRR) and BD-rates vs the HEVC CRF sweep.

Built from the gallery results that exist; every other solution params.yaml asks for is marked "not run".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from cdfv import paths
from cdfv.config import Params
from cdfv.evaluate.solutions import parse_solution
from cdfv.io import atomic_path, write_bytes_atomic
from cdfv.rd.bd import BdError, bd_rate
from cdfv.results import read_results
from cdfv.xiao.paper import FIG1_POINTS, IPR_RATE_FRACTION_OF_HEVC

FRR = "frr_far_1e-2"  # Fig. 1 reads FRR at FAR = 1 %
ANCHOR_CODEC = "HEVC_CRF23"  # the paper's HEVC (x265 default CRF)


def method_of(codec: str | None) -> str | None:
    """The paper's label of a codec: HEVC for HEVC CRF 23, REC / IPR / IP for trained codecs named ``..._<m>_Q<k>``."""
    if codec == ANCHOR_CODEC:
        return "HEVC"
    m = re.search(r"_(REC|IPR|IP)_Q\d+$", codec or "")
    return m.group(1) if m else None


def load(root: Path, params: Params) -> tuple[list[dict[str, Any]], list[str]]:
    """(results that exist, models not run) over ``xiao.models`` and ``xiao.test_models``."""
    found, missing = [], []
    for test, models in ((False, params.xiao.models), (True, params.xiao.test_models)):
        for model in models:
            p = root / paths.xiao_gallery_json(model, test)
            if not p.is_file():
                missing.append(model)
                continue
            r = read_results(root, paths.xiao_gallery_json(model, test))
            sol = parse_solution(model)
            found.append({**r, "model": model, "series": sol.series, "recogniser": sol.recogniser, "codec": sol.codec})
    return found, missing


def rate_at_frr(curve: list[dict[str, Any]], frr: float) -> float | None:
    """Rate of a curve at a given FRR: log-rate interpolated linearly in FRR (None outside its FRR range)."""
    pts = sorted((p[FRR], p["bpp"]) for p in curve if p.get("bpp") and p.get(FRR) is not None)
    if len(pts) < 2 or not pts[0][0] <= frr <= pts[-1][0]:
        return None
    f, r = np.array([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.exp(np.interp(frr, f, r)))


def report_markdown(results: list[dict[str, Any]], missing: list[str], method: str = "cubic") -> str:
    series: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        series.setdefault(r["series"], []).append(r)
    lines = ["# Xiao et al. (2023): gallery FRR@FAR on LFW", "", "## Fig. 1 points: paper vs ours", ""]
    lines += [
        "| method | paper bpp | paper FRR@1% | ours (solution, subset) | bpp | FRR@1% |",
        "|---|---|---|---|---|---|",
    ]
    for p in FIG1_POINTS:
        ours = [r for r in results if method_of(r["codec"]) == p.method]
        if not ours:
            lines.append(f"| {p.method} | {p.bpp:.2f} | {100 * p.frr:.2f} % | not run | | |")
        for r in ours:
            lines.append(
                f"| {p.method} | {p.bpp:.2f} | {100 * p.frr:.2f} % | {r['model']} ({r['subset']}) | "
                f"{r['bpp']:.3f} | {100 * r[FRR]:.2f} % |"
            )
    lines += ["", "## IPR's rate as a fraction of HEVC CRF's at equal FRR (paper: "]
    lines[-1] += f"{100 * IPR_RATE_FRACTION_OF_HEVC:.0f} % on LFW)"
    lines.append("")
    for r in (r for r in results if method_of(r["codec"]) == "IPR"):
        crf = series.get(f"{r['recogniser']}_HEVC_CRF", [])
        at = rate_at_frr(crf, r[FRR])
        val = "n/a (FRR outside the CRF sweep)" if at is None else f"{100 * r['bpp'] / at:.1f} %"
        lines.append(f"- {r['model']} ({r['subset']}): {val}")
    if not any(method_of(r["codec"]) == "IPR" for r in results):
        lines.append("- not run (no IPR codec evaluated)")
    lines += ["", "## All points and BD-rate vs the HEVC CRF sweep (metric: 1 - FRR@1%)", ""]
    lines += ["| series | points (bpp / FRR@1% / FRR@0.1%) | subset | BD-rate vs HEVC_CRF |", "|---|---|---|---|"]
    for name, pts in sorted(series.items()):
        pts.sort(key=lambda p: p["bpp"] or 0)
        crf = series.get(f"{pts[0]['recogniser']}_HEVC_CRF", [])
        try:
            bd = "anchor" if name.endswith("_HEVC_CRF") else f"{bd_rate(*_rm(crf), *_rm(pts), method):+.1f} %"
        except BdError as e:
            bd = f"n/a ({e})"
        desc = "; ".join(f"{p['bpp']:.3f} / {100 * p[FRR]:.2f} % / {100 * p['frr_far_1e-3']:.2f} %" for p in pts)
        lines.append(f"| {name} | {desc} | {', '.join(sorted({p['subset'] for p in pts}))} | {bd} |")
    if missing:
        lines += ["", f"Not run: {', '.join(missing)} (run `dvc repro eval_gallery@<model>`)."]
    return "\n".join(lines) + "\n"


def _rm(pts: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    return [p["bpp"] for p in pts], [1.0 - p[FRR] for p in pts]


def plot(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    series: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        series.setdefault(r["series"], []).append(r)
    for name, pts in sorted(series.items()):
        pts = sorted(pts, key=lambda p: p["bpp"])
        ax.plot([p["bpp"] for p in pts], [100 * p[FRR] for p in pts], marker="o", label=name)
    for p in FIG1_POINTS:
        ax.scatter([p.bpp], [100 * p.frr], marker="*", s=120, color="k")
        ax.annotate(f"paper {p.method}", (p.bpp, 100 * p.frr), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("rate [bpp]")
    ax.set_ylabel("FRR at FAR = 1 % [%]")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Xiao et al. Fig. 1: rate vs FRR (LFW gallery), paper points as stars")
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def run_report_xiao(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    results, missing = load(root, params)
    write_bytes_atomic(root / paths.XIAO_REPORT, report_markdown(results, missing, params.eval.bd_method).encode())
    plot(results, root / paths.XIAO_FIGURE)
    return {"points": len(results), "not_run": len(missing)}
