"""``reports/table_tfqi.md``, ``reports/figures/tfqi.png`` and the plot CSVs of Li et al. 2019, from the metrics.

Every number is read from the stages' outputs; only the paper's published fits (Fig. 2) and its claims are
constants (:mod:`cdfv.tfqi.rd_models`), printed beside ours.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cdfv import paths
from cdfv.io import atomic_path, write_bytes_atomic
from cdfv.tfqi.quantise import q_step

#: The plot CSVs (``reports/plots/tfqi/<name>.csv``) and their columns; all of them are always written.
PLOT_FILES: dict[str, tuple[str, ...]] = {
    "joint_model": ("bpp", "tfqi", "accuracy", "budget", "qp1", "qp2"),
    "joint_grid": ("bpp", "tfqi", "accuracy", "budget", "qp1", "qp2"),
    "texture_only": ("bpp", "tfqi", "accuracy", "qp1"),
    "feature_only": ("bpp", "accuracy", "qp2"),
}


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    return str(v)


def _g(v: float) -> str:
    return f"{v:.4g}"


def texture_formula(p: dict[str, float]) -> str:
    return f"{_g(p['a1'])}·e^({_g(p['b1'])}·R_t)"


def feature_formula(p: dict[str, float]) -> str:
    return f"{_g(p['a2'])}·e^({_g(p['b2'])}·R_f) + {_g(p['c2'])}·e^({_g(p['d2'])}·R_f)"


def fits_markdown(fit: dict[str, Any]) -> list[str]:
    """The fits table: ours (or why there is none) beside the paper's LFW fits."""
    out = ["## R-D models (eq. 9) fitted to our points, beside the paper's LFW fits (Fig. 2)", ""]
    out += ["| model | ours | R² (ours) | points | paper | R² (paper) |", "|---|---|---|---|---|---|"]
    for kind, formula in (("texture", texture_formula), ("feature", feature_formula)):
        rec = fit[kind]
        label = "D_t(R_t) (MSE)" if kind == "texture" else "D_f(R_f) (error rate)"
        ours = formula(rec["params"]) if rec["status"] == "ok" else rec["status"]
        paper = rec["paper"]
        out.append(
            f"| {label} | {ours} | {_f(rec['r2'])} | {len(rec['points'])} | {formula(paper)} | {paper['r2']:.4f} |"
        )
    out.append("")
    return out


def points_markdown(
    tex: Sequence[dict[str, Any]], fea: Sequence[dict[str, Any]], lossless: dict[str, Any]
) -> list[str]:
    out = ["## Operating points", "", "Texture: HEVC intra of the crop (bpp over the crop's pixels).", ""]
    out += [
        "| QP1 | bpp | D1 = MSE | PSNR (dB) | texture-only accuracy | texture-only D2 |",
        "|---|---|---|---|---|---|",
    ]
    for p in tex:
        out.append(
            f"| {p['qp']} | {_f(p['bpp'])} | {_f(p['mse'], 2)} | {_f(p['psnr'], 2)} | {_f(p['accuracy'])} | "
            f"{_f(p['error_rate'])} |"
        )
    out += ["", f"Feature of the lossless crop (uncoded): accuracy {_f(lossless['accuracy'])}.", ""]
    out += ["| QP2 | Q_step | bpp | bits/component | accuracy | D2 |", "|---|---|---|---|---|---|"]
    for p in fea:
        out.append(
            f"| {p['qp']} | {q_step(p['qp']):.5g} | {_f(p['bpp'])} | {_f(p['bits_per_component'], 2)} | "
            f"{_f(p['accuracy'])} | {_f(p['error_rate'])} |"
        )
    out.append("")
    return out


def allocation_markdown(alloc: dict[str, Any], w1s: Sequence[float]) -> list[str]:
    out = ["## Bit allocation: working condition vs brute-force grid, texture-only beside", ""]
    out.append(
        "R_c: budgets log-spaced over the joint grid's total rates (`tfqi.n_budgets`) plus `tfqi.budgets`, bpp. "
        "Model: the working-condition optimum (R_t*, R_f*) of the fitted models (eqs. 7-8); QP1 of the texture "
        "rate nearest to R_t* (log rate); QP2 of lowest fitted D_f within R_c − R_t(QP1). Grid: the pair of "
        "highest measured TFQI within R_c (brute force); lost = TFQI(grid) − TFQI(model) ≥ 0. Texture-only: its "
        "rate–TFQI curve (QP1 points, D2 from features of the decoded texture, piecewise linear in log rate) at "
        "the model choice's total rate; '–' outside its range."
    )
    out.append("")
    rows = alloc["rows"]
    for w1 in w1s:
        out += [f"### w1 = {w1:g}, w2 = {1 - w1:g}", ""]
        out += [
            "| R_c | R_t*, R_f* | model (QP1, QP2) | rate | TFQI model | grid (QP1, QP2) | rate | TFQI grid | lost "
            "| texture-only TFQI at the model's rate | model − texture-only |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["w1"] == w1):
            note = r.get("model_note", "–")
            star = f"{r['model_rate_t']:.4f}, {r['model_rate_f']:.4f}" if "model_rate_t" in r else note
            model = f"({r['model_qp1']}, {r['model_qp2']})" if "model_qp1" in r else note
            grid = f"({r['grid_qp1']}, {r['grid_qp2']})" if "grid_qp1" in r else r.get("grid_note", "–")
            out.append(
                f"| {r['budget']:.4f} | {star} | {model} | {_f(r.get('model_rate'))} | {_f(r.get('model_tfqi'))} | "
                f"{grid} | {_f(r.get('grid_rate'))} | {_f(r.get('grid_tfqi'))} | {_f(r.get('tfqi_lost'))} | "
                f"{_f(r.get('texture_only_tfqi_at_model_rate'))} | {_f(r.get('model_minus_texture_only'))} |"
            )
        out.append("")
    return out


def claim_markdown(alloc: dict[str, Any], w1s: Sequence[float]) -> list[str]:
    """The paper's claims (§IV-B, Fig. 4) beside what our numbers say, sentence by sentence."""
    out = ["## The paper's claims, checked", ""]
    out.append(
        "Paper (§IV-B/C, Figs. 4 and 6): the joint scheme beats texture-only in TFQI, the more so the lower the rate, "
        "and keeps a saturated accuracy where texture-only accuracy drops. Ours, at equal total rate on the "
        "texture-only curve:"
    )
    out.append("")
    for w1 in w1s:
        s = alloc["summary"][f"w1={w1}"]
        parts = [f"- w1 = {w1:g}:"]
        for name, label in (("model", "the model-based joint choice"), ("grid", "the grid-optimal joint choice")):
            if f"{name}_compared" not in s:
                parts.append(f"{label}: no point inside the texture-only rate range.")
                continue
            gain = s[f"{name}_low_rate_gain"]
            verdict = "wins" if gain > 0 else "does not win"
            parts.append(
                f"{label} {verdict} at its lowest rate inside the texture-only range ({s[f'{name}_low_rate']:.4f} bpp, "
                f"ΔTFQI {gain:+.4f}) and wins at {s[f'{name}_wins']} of {s[f'{name}_compared']} budgets;"
            )
        if s["model_budgets"]:
            parts.append(
                f"TFQI lost by the model-based choice vs the grid optimum: mean {s['mean_tfqi_lost']:.4f}, "
                f"max {s['max_tfqi_lost']:.4f} (equal at {s['model_is_grid_optimum']} of {s['model_budgets']} budgets)."
            )
        else:
            parts.append("no model-based choice (see the fits and the allocation table).")
        out.append(" ".join(parts))
    out.append("")
    return out


def table_markdown(
    tex: Sequence[dict[str, Any]],
    fea: Sequence[dict[str, Any]],
    lossless: dict[str, Any],
    fit: dict[str, Any],
    alloc: dict[str, Any],
    w1s: Sequence[float],
    extractor: str,
) -> str:
    out = ["# Joint texture + deep-feature coding, TFQI (Li et al. 2019) regenerated", ""]
    out.append(
        f"LFW View-2 pairs, every pair image coded; feature extractor: {extractor}; D1 = RGB MSE of the decoded crop, "
        "D2 = 1 − 10-fold verification accuracy (both images of a pair decoded); TFQI = −log10(w1·D1 + w2·D2). "
        "Feature reconstruction: cell midpoint (l + ½)·Q_step (the paper leaves it open)."
    )
    out.append("")
    out += points_markdown(tex, fea, lossless)
    out += fits_markdown(fit)
    out += allocation_markdown(alloc, w1s)
    out += claim_markdown(alloc, w1s)
    return "\n".join(out)


def plot_rows(
    tex: Sequence[dict[str, Any]], fea: Sequence[dict[str, Any]], alloc: dict[str, Any], w1: float
) -> dict[str, list[dict[str, Any]]]:
    """Rows of the plot CSVs at weight ``w1`` (the declared curves use the first ``tfqi.w1``)."""
    from cdfv.tfqi.allocate import tfqi

    rows = [r for r in alloc["rows"] if r["w1"] == w1]
    out: dict[str, list[dict[str, Any]]] = {}
    for name in ("model", "grid"):
        pts = {
            (r[f"{name}_qp1"], r[f"{name}_qp2"]): {
                "bpp": r[f"{name}_rate"],
                "tfqi": r[f"{name}_tfqi"],
                "accuracy": r[f"{name}_accuracy"],
                "budget": r["budget"],
                "qp1": r[f"{name}_qp1"],
                "qp2": r[f"{name}_qp2"],
            }
            for r in rows
            if f"{name}_qp1" in r
        }
        out[f"joint_{name}"] = sorted(pts.values(), key=lambda p: p["bpp"])
    out["texture_only"] = sorted(
        (
            {"bpp": p["bpp"], "tfqi": tfqi(p["mse"], p["error_rate"], w1), "accuracy": p["accuracy"], "qp1": p["qp"]}
            for p in tex
        ),
        key=lambda p: p["bpp"],
    )
    out["feature_only"] = sorted(
        ({"bpp": p["bpp"], "accuracy": p["accuracy"], "qp2": p["qp"]} for p in fea), key=lambda p: p["bpp"]
    )
    return out


def _csv(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def plot_figure(
    tex: Sequence[dict[str, Any]],
    fea: Sequence[dict[str, Any]],
    fit: dict[str, Any],
    alloc: dict[str, Any],
    w1s: Sequence[float],
    png: Path,
) -> None:
    """Four panels: (a) D_t-R_t, (b) D_f-R_f with our and the paper's fits, (c) rate-TFQI, (d) rate-accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cdfv.tfqi.rd_models import feature_model, texture_model

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax, kind, model, xlab, ylab in (
        (axes[0, 0], "texture", texture_model, "R_t [bpp]", "D_t = MSE"),
        (axes[0, 1], "feature", feature_model, "R_f [bpp]", "D_f = error rate"),
    ):
        rec = fit[kind]
        r = np.array([p["bpp"] for p in rec["points"]])
        d = np.array([p["distortion"] for p in rec["points"]])
        ax.plot(r, d, "o", color="k", label="measured")
        xs = np.linspace(0.0, max(float(r.max()) * 1.05, 1e-6), 200)
        if rec["status"] == "ok":
            ax.plot(xs, model(xs, **rec["params"]), "-", label=f"ours (R² {rec['r2']:.3f})")
        else:
            ax.plot([], [], " ", label=rec["status"][:60])
        paper = {k: v for k, v in rec["paper"].items() if k != "r2"}
        ax.plot(xs, model(xs, **paper), "--", label=f"paper LFW (R² {rec['paper']['r2']:.4f})")
        ax.set_xlabel(xlab)
        ax.set_ylabel(ylab)
        ax.set_title(f"({'a' if kind == 'texture' else 'b'}) {kind} R-D model (eq. 9)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_ylim(bottom=0, top=max(float(d.max()) * 1.5, 1e-3))
    ax = axes[1, 0]
    for k, w1 in enumerate(w1s):
        series = plot_rows(tex, fea, alloc, w1)
        colour = f"C{k}"
        for name, style in (("joint_model", "-o"), ("joint_grid", ":s"), ("texture_only", "--^")):
            pts = series[name]
            if pts:
                ax.plot(
                    [p["bpp"] for p in pts], [p["tfqi"] for p in pts], style, color=colour, label=f"{name} w1={w1:g}"
                )
    ax.set_xscale("log")
    ax.set_xlabel("total rate [bpp]")
    ax.set_ylabel("TFQI")
    ax.set_title("(c) rate–TFQI")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1, 1]
    series = plot_rows(tex, fea, alloc, w1s[0])
    for name, style in (("joint_model", "-o"), ("joint_grid", ":s"), ("texture_only", "--^"), ("feature_only", "-.v")):
        pts = series[name]
        if pts:
            ax.plot([p["bpp"] for p in pts], [p["accuracy"] for p in pts], style, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("total rate [bpp]")
    ax.set_ylabel("10-fold accuracy")
    ax.set_title(f"(d) rate–accuracy (joint at w1={w1s[0]:g})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("Li et al. 2019: joint texture + feature coding on LFW View 2")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_tfqi_report(
    root: Path,
    tex: Sequence[dict[str, Any]],
    fea: Sequence[dict[str, Any]],
    lossless: dict[str, Any],
    fit: dict[str, Any],
    alloc: dict[str, Any],
    w1s: Sequence[float],
    extractor: str,
) -> dict[str, Path]:
    """Write the table, the figure and the plot CSVs; return their paths."""
    with atomic_path(root / paths.TFQI_PLOTS) as tmp:
        tmp.mkdir(parents=True)
        for name, rows in plot_rows(tex, fea, alloc, w1s[0]).items():
            (tmp / f"{name}.csv").write_text(_csv(rows, PLOT_FILES[name]))
    plot_figure(tex, fea, fit, alloc, w1s, root / paths.TFQI_FIGURE)
    write_bytes_atomic(root / paths.TFQI_TABLE, table_markdown(tex, fea, lossless, fit, alloc, w1s, extractor).encode())
    return {"table": root / paths.TFQI_TABLE, "figure": root / paths.TFQI_FIGURE, "plots": root / paths.TFQI_PLOTS}
