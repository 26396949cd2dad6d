"""The paper's Fig. 4 and Table II/7 regenerated from the eval and complexity metrics.

Inputs: the results of every evaluated solution (``reports/metrics/eval/<model>.json`` + its details,
written by the ``eval_lfw`` stages) and of the ``complexity`` stage (``reports/metrics/complexity/<model>.json``:
GMAC, kMAC/px; its details: ms/pair). Outputs: ``reports/plots/fig4.csv`` for ``dvc plots`` (one row
per point with its Fig. 4 line in ``series``: the top-level plots ``fig4_*`` draw whatever lines exist),
``reports/figures/fig4.png`` (four panels: TAR@FAR=1e-3, TAR@FAR=1e-2, EER, AUC vs probe bpp) and
``reports/table7.md`` (paper values in adjacent columns with differences, BD-rate/BD-TAR between codec families).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cdfv import paths
from cdfv.rd.bd import BdError, BdMethod, bd_metric, bd_rate
from cdfv.results import read_results, result_names

#: Fig. 4 panels: (metric key, axis label).
PANELS: tuple[tuple[str, str], ...] = (
    ("tar_far_1e-3", "TAR@FAR=1e-3"),
    ("tar_far_1e-2", "TAR@FAR=1e-2"),
    ("eer", "EER"),
    ("auc", "AUC"),
)

#: Table II of the paper (= thesis Table 7): GMAC, kMAC/px, ms/batch, ms/pair, TAR@FAR=1e-3, bpp.
PAPER_TABLE7: dict[str, tuple[float, float, float, float, float, float | None]] = {
    "ResNet50_Original_Anchor": (3.89, 78, 205.3, 3.216, 0.910, None),
    "ResNet50_Balle2018_mse_Q1": (13.55, 270, 215.0, 3.368, 0.829, 0.10),
    "ResNet50_Balle2018_mse_Q3": (13.55, 270, 215.1, 3.370, 0.892, 0.17),
    "ResNet50_Balle2018_mse_Q6": (25.3, 504, 240.0, 3.760, 0.903, 0.38),
    "ResNet50_Balle2018_mse_Q8": (25.3, 504, 240.8, 3.772, 0.903, 0.65),
    "cResNet39_Balle2018_mse_Q1": (2.36, 47, 42.7, 0.669, 0.825, 0.10),
    "cResNet39_Balle2018_mse_Q3": (2.36, 47, 42.5, 0.666, 0.871, 0.17),
    "cResNet39_Balle2018_mse_Q6": (2.38, 47, 42.9, 0.672, 0.851, 0.38),
    "cResNet39_Balle2018_mse_Q8": (2.38, 47, 42.9, 0.673, 0.917, 0.65),
}
ANCHOR = "ResNet50_Original_Anchor"

CSV_FIELDS = ("series", "model", "pipeline", "bpp", "tar_far_1e-3", "tar_far_1e-2", "eer", "auc")


# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------
def load_eval_results(root: Path, models: Sequence[str] | None = None, stage_of: Any = None) -> list[dict[str, Any]]:
    """Results (metrics merged over details) of ``models`` (default: every evaluated one), sorted by model.

    A configured model without its results raises naming the stage to run (``stage_of(model)``); the
    report itself uses :func:`load_available`, which builds from whatever exists.
    """
    if models is not None:
        missing = [m for m in models if not (root / paths.eval_json(m)).is_file()]
        if missing:
            stages = " ".join(stage_of(m) if stage_of else m for m in missing)
            raise FileNotFoundError(
                f"{root / paths.EVAL_METRICS}: no metrics for {', '.join(missing)}. Run `dvc repro {stages}` first."
            )
    return load_available(root, models)[0]


def load_available(root: Path, models: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The eval results that exist (of ``models``, default every one evaluated) and the models without any."""
    names = result_names(root, paths.EVAL_METRICS) if models is None else list(models)
    results, missing = [], []
    for m in names:
        if not (root / paths.eval_json(m)).is_file():
            missing.append(m)
            continue
        results.append(read_results(root, paths.eval_json(m), "eval_lfw"))
    return sorted(results, key=lambda r: r["model"]), missing


def load_complexity(root: Path) -> dict[str, dict[str, Any]]:
    """Complexity results (MACs merged over timings) keyed by model, or ``{}`` when not computed."""
    names = result_names(root, paths.COMPLEXITY_METRICS)
    return {m: read_results(root, paths.complexity_json(m), "complexity") for m in names}


# ------------------------------------------------------------------------------------------
# Pure tables
# ------------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, float)):
        return f"{v:.{digits}f}"
    return str(v)


def _diff(ours: Any, paper: Any, digits: int = 3) -> str:
    if ours is None or paper is None:
        return "–"
    return f"{ours - paper:+.{digits}f}"


def metrics_table_markdown(results: Sequence[dict[str, Any]]) -> str:
    """One row per evaluated solution: pipeline, probe rate and the four Fig. 4 metrics."""
    head = (
        "| Model | Pipeline | bpp (probe) | TAR@FAR=1e-3 | TAR@FAR=1e-2 | EER | AUC | Accuracy (k-fold) | Pairs "
        "| Fallback pairs |"
    )
    lines = [head, "|---" * 10 + "|"]
    for r in results:
        acc = r.get("accuracy")
        acc_s = "–" if acc is None else f"{acc:.4f} ± {r.get('accuracy_std', 0.0):.4f}"
        lines.append(
            f"| {r['model']} | {r.get('pipeline', '–')} | {_fmt(r.get('bpp'))} | {_fmt(r.get('tar_far_1e-3'))} | "
            f"{_fmt(r.get('tar_far_1e-2'))} | {_fmt(r.get('eer'), 4)} | {_fmt(r.get('auc'), 4)} | {acc_s} | "
            f"{r.get('n_pairs', '–')} | {r.get('n_fallback_pairs', '–')} |"
        )
    return "\n".join(lines) + "\n"


def series_points(results: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group rate points by Fig. 4 line (``series``), sorted by bpp; anchors without a rate excluded."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        if r.get("bpp") is not None:
            out[r["series"]].append(r)
    return {k: sorted(v, key=lambda r: r["bpp"]) for k, v in sorted(out.items())}


def fig4_csv(results: Iterable[dict[str, Any]]) -> str:
    """CSV text (``series,model,pipeline,bpp,tar_far_1e-3,...``) of every Fig. 4 point for ``dvc plots``.

    One row per rate point, grouped by line (``series``) and sorted by rate; anchors (no rate) excluded.
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for pts in series_points(results).values():
        for p in pts:
            w.writerow({k: p.get(k) for k in CSV_FIELDS})
    return buf.getvalue()


def _attempt(fn: Any, args: tuple[Any, ...], method: str) -> tuple[float | None, str]:
    """``(fn(*args), "")``, or ``(None, reason)`` when the curves admit no Bjøntegaard delta."""
    try:
        return fn(*args, method=method), ""
    except (BdError, ValueError, FloatingPointError) as err:
        return None, str(err)


def bd_rows(
    results: Sequence[dict[str, Any]], anchor: str, metric: str = "tar_far_1e-3", method: BdMethod = "cubic"
) -> list[tuple[str, str, float | None, float | None, str]]:
    """BD-rate (%) and BD-metric of every series vs ``anchor``: (anchor, test, bd_rate, bd_metric, note)."""
    series = series_points(results)
    if anchor not in series:
        return []
    a = series[anchor]
    rows = []
    for name, pts in series.items():
        if name == anchor:
            continue
        args = ([p["bpp"] for p in a], [p[metric] for p in a], [p["bpp"] for p in pts], [p[metric] for p in pts])
        rate, note_r = _attempt(bd_rate, args, method)
        met, note_m = _attempt(bd_metric, args, method)
        notes = dict.fromkeys(n for n in (note_r, note_m) if n)  # same cause for both: say it once
        rows.append((anchor, name, rate, met, "; ".join(notes)))
    return rows


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if a is not None and b else None


def _times(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"×{x:.{digits}f}"


def table7_sentences(complexity: dict[str, dict[str, Any]]) -> list[str]:
    """The sentences under Table 7, every number taken from the complexity results (or 'not measured')."""
    out = []
    rows = [c for c in complexity.values() if c.get("device")]
    if rows:
        devices = ", ".join(sorted({str(c["device"]) for c in rows}))
        runs = sorted({(c.get("repeats"), c.get("batch_pairs")) for c in rows})
        out.append(
            f"Our timings: {devices}; "
            + "; ".join(f"mean of {r} batches of {p} pairs" for r, p in runs)
            + ". Paper: RTX 3080, mean of 50 runs over LFW View 2 in batches of 64 pairs."
        )
    else:
        out.append(
            "Our timings: not measured (run the complexity stage). Paper: RTX 3080, mean of 50 runs over "
            "LFW View 2 in batches of 64 pairs."
        )
    a, c1 = complexity.get(ANCHOR, {}), complexity.get("cResNet39_Balle2018_mse_Q1", {})
    paper_speedup = PAPER_TABLE7[ANCHOR][3] / PAPER_TABLE7["cResNet39_Balle2018_mse_Q1"][3]
    net, e2e = (
        _ratio(a.get("ms_per_pair"), c1.get("ms_per_pair")),
        _ratio(a.get("e2e_ms_per_pair"), c1.get("e2e_ms_per_pair")),
    )
    if net is None and e2e is None:
        out.append(
            f"Speed-up ms/pair of the original anchor over cResNet39 Q1: not measured here (both rows needed); "
            f"paper {_times(paper_speedup)} (end-to-end)."
        )
    else:
        out.append(
            f"Speed-up ms/pair of the original anchor over cResNet39 Q1: ours {_times(e2e)} end-to-end, "
            f"{_times(net)} network only; paper {_times(paper_speedup)} (end-to-end)."
        )
    for codec in sorted({m.split("_", 1)[1] for m in complexity if m.startswith("ResNet50_") and m != ANCHOR}):
        dec, comp = complexity.get(f"ResNet50_{codec}", {}), complexity.get(f"cResNet39_{codec}", {})
        paper_dec, paper_comp = PAPER_TABLE7.get(f"ResNet50_{codec}"), PAPER_TABLE7.get(f"cResNet39_{codec}")
        true, conv = dec.get("gmac"), dec.get("gmac_paper_convention")
        if true is None:
            continue
        text = (
            f"{codec}: the decoded anchor (g_s + ResNet50) is {true:.2f} GMAC with each ConvTranspose2d "
            f"counted at its true MACs, {_fmt(conv, 2)} in the paper's convention (output positions)"
        )
        text += f"; the paper reports {paper_dec[0]:.2f}" if paper_dec else ""
        if comp.get("gmac"):
            text += f". Versus cResNet39 ({comp['gmac']:.2f} GMAC) that is {_times(true / comp['gmac'])} the MACs"
            if conv is not None:
                text += f" ({_times(conv / comp['gmac'])} in the paper's convention"
                text += f"; paper {_times(paper_dec[0] / paper_comp[0])})" if paper_dec and paper_comp else ")"
        out.append(text + ".")
    return out


def table7_markdown(
    results: Sequence[dict[str, Any]],
    complexity: dict[str, dict[str, Any]],
    bd_anchor: str = "ResNet50_Balle2018_mse",
    bd_method: BdMethod = "cubic",
    not_run: dict[str, str] | None = None,
) -> str:
    """The paper's Table II/7: our values beside the paper's (with differences) and BD deltas.

    Conventions are labelled per column: GMAC "true" = ptflops counting a ConvTranspose2d at its
    input positions, "paper conv." = at its output positions (the paper's figures); kMAC/px = that
    GMAC / 224² (thesis §6.4, Table 7). Timings: "net" = networks only, inputs on the device; "e2e" = the
    path the paper timed (thesis §6.4: read/decode, crop/align/resize or range decoding, networks, both
    images of a pair); the paper's ms columns are end-to-end.

    ``not_run``: configured solutions without metrics -> why (their TAR cell says "not run", and a
    section lists the reasons).
    """
    not_run = not_run or {}
    by_model = {r["model"]: r for r in results}
    out = ["# Table 7 (paper Table II) regenerated", ""]
    out.append(
        "Ours beside the paper's values. GMAC true = ptflops 'pytorch' backend (a ConvTranspose2d counted at its "
        "input positions); paper conv. = each ConvTranspose2d counted at its output positions, as the paper did. "
        "kMAC/px = GMAC / 224² in the column's convention; the paper's kMAC/px is in the paper convention. "
        "ms: 'net' = networks only (inputs on the device), 'e2e' = end-to-end per pair as the paper timed "
        "(A: read + decode + crop/align/resize of both images + 2 ResNet50; B: range decoding + g_s of the probe, "
        "reference as A, 2 ResNet50; C: range decoding of ŷ for both + 2 cResNet39). The paper's ms are end-to-end: "
        "A and B include crop/align/resize of both images (and g_s decoding for B), C the latent crop (thesis §6.4); "
        "its C excludes range decoding, which ours includes. "
        "Rate = mean bpp over probe images. '–' = not evaluated / measured in this run."
    )
    out.append("")
    out.append(
        "| Model | GMAC true | GMAC paper conv. | GMAC paper | Δ (paper conv.) | kMAC/px true | "
        "kMAC/px paper conv. | kMAC/px paper (paper conv.) | ms/batch net | ms/batch e2e | ms/batch paper (e2e) | "
        "ms/pair net | ms/pair e2e | "
        "ms/pair paper (e2e) | TAR@FAR=1e-3 | paper | Δ | bpp | paper | Δ |"
    )
    out.append("|---" * 20 + "|")
    for model, (p_gmac, p_kmac, p_batch, p_pair, p_tar, p_bpp) in PAPER_TABLE7.items():
        c = complexity.get(model, {})
        r = by_model.get(model, {})
        gmac_conv = c.get("gmac_paper_convention")
        out.append(
            f"| {model} | {_fmt(c.get('gmac'), 2)} | {_fmt(gmac_conv, 2)} | {p_gmac:.2f} | "
            f"{_diff(gmac_conv, p_gmac, 2)} | "
            f"{_fmt(c.get('kmac_per_px'), 0)} | {_fmt(c.get('kmac_per_px_paper_convention'), 0)} | {p_kmac:.0f} | "
            f"{_fmt(c.get('ms_per_batch'), 1)} | {_fmt(c.get('e2e_ms_per_batch'), 1)} | {p_batch:.1f} | "
            f"{_fmt(c.get('ms_per_pair'), 3)} | {_fmt(c.get('e2e_ms_per_pair'), 3)} | {p_pair:.3f} | "
            f"{'not run' if model in not_run else _fmt(r.get('tar_far_1e-3'))} | {p_tar:.3f} | "
            f"{_diff(r.get('tar_far_1e-3'), p_tar)} | "
            f"{_fmt(r.get('bpp'))} | {_fmt(p_bpp, 2)} | {_diff(r.get('bpp'), p_bpp)} |"
        )
    out.append("")
    out += [f"{line}\n" for line in table7_sentences(complexity)]
    others = [r for r in results if r["model"] not in PAPER_TABLE7]
    if others:
        out += ["## Other evaluated solutions", "", metrics_table_markdown(others)]
    if not_run:
        out += [
            "## Not run",
            "",
            "Solutions params.yaml asks for whose evaluation produced no metrics in this run:",
            "",
        ]
        out += [f"- {m}: not run: {why}" for m, why in sorted(not_run.items())]
        out.append("")
    bds = bd_rows(results, bd_anchor, method=bd_method)
    out += [f"## Bjøntegaard deltas vs {bd_anchor} (rate vs TAR@FAR=1e-3, {bd_method})", ""]
    if not bds:
        out.append(f"Not computed: no rate points for {bd_anchor} in this run.")
    else:
        out.append("| Test series | BD-rate (%) | BD-TAR@1e-3 | Note |")
        out.append("|---|---|---|---|")
        for _, test, rate, met, note in bds:
            out.append(f"| {test} | {_fmt(rate, 1)} | {_fmt(met, 4)} | {note or ''} |")
    fb = [(r["model"], r.get("n_fallback_pairs", 0)) for r in results if r.get("n_fallback_pairs")]
    out += ["", "## Detection fallbacks", ""]
    if fb:
        out.append(
            "Pairs with at least one image whose face detection failed (scored on the recorded fallback crop): "
            + ", ".join(f"{m}: {n}" for m, n in fb)
            + "."
        )
    else:
        out.append("No pair used a detection fallback.")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------
# Figure
# ------------------------------------------------------------------------------------------
def plot_fig4(results: Sequence[dict[str, Any]], png: Path) -> None:
    """Fig. 4: four rate–metric panels, one line per series, anchors as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cdfv.io import atomic_path

    series = series_points(results)
    anchors = [r for r in results if r.get("bpp") is None]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (key, label) in zip(axes.ravel(), PANELS):
        for name, pts in series.items():
            b1 = pts[0].get("pipeline") == "B1"  # thesis ch. 5 decode-then-crop lines: dotted
            ax.plot(
                [p["bpp"] for p in pts],
                [p[key] for p in pts],
                marker="s" if b1 else "o",
                linestyle=":" if b1 else "-",
                label=name,
            )
        for r in anchors:
            ax.axhline(r[key], linestyle="--", color="k", linewidth=1, label=r["model"])
        ax.set_xlabel("rate [bpp] (probe images)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle("LFW View 2 (pooled ROC) — Fig. 4")
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------
# Stage
# ------------------------------------------------------------------------------------------
def write_report(
    root: Path,
    bd_anchor: str = "ResNet50_Balle2018_mse",
    bd_method: BdMethod = "cubic",
    models: Sequence[str] | None = None,
    why_not_run: Any = None,
) -> dict[str, Path]:
    """Write ``fig4.csv``, the Fig. 4 PNG and table7.md under ``root``; return the paths.

    Builds from the results that exist: each of ``models`` without results is marked "not run:
    <``why_not_run(model)``>". Without ``models`` (every result found) at least one must exist.
    """
    from cdfv.io import write_bytes_atomic

    results, missing = load_available(root, models)
    if not results and models is None:
        raise FileNotFoundError(f"{root / paths.EVAL_METRICS}: no eval metrics. Run `dvc repro eval_lfw` first.")
    not_run = {m: (why_not_run(m) if why_not_run else "no metrics") for m in missing}
    complexity = load_complexity(root)
    plots = root / paths.FIG4_CSV
    write_bytes_atomic(plots, fig4_csv(results).encode())
    fig = root / paths.FIG4
    plot_fig4(results, fig)
    table = root / paths.TABLE7
    write_bytes_atomic(table, table7_markdown(results, complexity, bd_anchor, bd_method, not_run).encode())
    return {"plots": plots, "figure": fig, "table": table}
