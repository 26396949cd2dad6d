"""``report_bian``: Table 1 of Bian et al. regenerated beside the paper's values, rate-accuracy curves
(Fig. 4 lines for ``dvc plots``) and BD-accuracy of the jointly trained CompNet against every other curve.

Everything is computed from ``reports/metrics/bian/eval/<point>.json``; the paper's numbers live only
in :data:`PAPER_TABLE1`.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from cdfv import paths
from cdfv.codecs.names import parse_codec_name
from cdfv.config import Params
from cdfv.io import atomic_path, write_bytes_atomic, write_json_atomic
from cdfv.rd.bd import BdError, bd_metric, bd_rate

#: Table 1 of Bian et al. 2019: (row, our point — ``{C}`` = bian.table_channels, paper size MB, paper accuracy %).
PAPER_TABLE1: tuple[tuple[str, str, float, float], ...] = (
    ("Original LFW_112×96 (PNG)", "Original", 30.6, 99.28),
    ("CompNet after joint training", "CompNet_C{C}_joint", 4.38, 89.48),
    ("JPEG2000 (compression ratio 88)", "JPEG2000_mse_R88", 4.41, 85.93),
    ("CompNet before joint training", "CompNet_C{C}_pretrain", 2.79, 75.87),
    ("JPEG (quality factor 0 → libjpeg's 1)", "JPEG_Q1", 10.8, 67.87),
    ("JPEG2000 (compression ratio 134)", "JPEG2000_mse_R134", 2.78, 64.85),
)
#: LFW images in the paper's LFW_112x96 set (§3.2).
PAPER_IMAGES = 13233
CSV_FIELDS = ("point", "bpp", "size_mb", "accuracy", "tar_far_1e-3", "tar_far_1e-2", "eer", "auc")
JOINT_SERIES = "Sphere20_CompNet_joint"


def series_of(point: str) -> str | None:
    """Fig. 4 line of a point (None for the original set, drawn as a horizontal line)."""
    if point == "Original":
        return None
    if point.startswith("CompNet_C"):
        return f"Sphere20_CompNet_{point.rsplit('_', 1)[1]}"
    return f"Sphere20_{parse_codec_name(point).series}"


def load_results(root: Path, points: list[str]) -> dict[str, dict[str, Any]]:
    from cdfv.bian.points import code_stage

    out = {}
    for p in points:
        f = root / paths.bian_eval_json(p)
        if not f.is_file():
            raise FileNotFoundError(
                f"{f}: missing; run `dvc repro` of its eval_lfw_bian stage (coded by {code_stage(p)})"
            )
        out[p] = {"point": p, **json.loads(f.read_text())}
    return out


def curves(results: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p, r in results.items():
        s = series_of(p)
        if s is not None:
            out[s].append(r)
    return {k: sorted(v, key=lambda r: r["bpp"]) for k, v in sorted(out.items())}


def curve_csv(points: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for p in points:
        w.writerow({k: p.get(k) for k in CSV_FIELDS})
    return buf.getvalue()


def bd_accuracy(curves_: dict[str, list[dict[str, Any]]], method: str) -> list[dict[str, Any]]:
    """BD-accuracy (percentage points) and BD-rate (%) of the joint CompNet curve vs every other curve."""
    rows: list[dict[str, Any]] = []
    test = curves_.get(JOINT_SERIES)
    if not test:
        return rows
    for name, pts in curves_.items():
        if name == JOINT_SERIES:
            continue
        args = (
            [p["bpp"] for p in pts],
            [p["accuracy"] for p in pts],
            [p["bpp"] for p in test],
            [p["accuracy"] for p in test],
        )
        row: dict[str, Any] = {"anchor": name, "bd_accuracy_pp": None, "bd_rate_pct": None, "note": ""}
        notes = []
        for key, fn, scale in (("bd_accuracy_pp", bd_metric, 100.0), ("bd_rate_pct", bd_rate, 1.0)):
            try:
                row[key] = fn(*args, method=method) * scale
            except (BdError, ValueError, FloatingPointError) as err:
                notes.append(str(err))
        row["note"] = "; ".join(dict.fromkeys(notes))
        rows.append(row)
    return rows


def _f(v: Any, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def table1_markdown(
    params: Params, results: dict[str, dict[str, Any]], bd: list[dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """Markdown of Table 1 (ours beside the paper's) + the curves' BD table, and Table 1 as numbers."""
    c = params.bian.table_channels
    n = max((r.get("images", 0) for r in results.values()), default=0)
    lines = [
        "# Table 1 — Bian et al. 2019, regenerated",
        "",
        f"LFW faces aligned to `{params.bian.reference}` (MTCNN + similarity transform), LFW View 2 "
        "(6,000 pairs in the full set), 10-fold accuracy, both images of every pair coded. Size = the whole "
        "coded set in MB (10^6 bytes); the paper's set has 13,233 faces, so sizes compare directly only on "
        f"the full LFW. CompNet rows: C = {c} channels, rate = the PNG files of the quantised maps.",
        "",
        "| approach | point | size MB (ours) | size MB (paper) | accuracy % (ours) | accuracy % (paper) "
        "| Δ acc pp | mean bpp (ours) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table: dict[str, Any] = {}
    for label, pattern, mb, acc in PAPER_TABLE1:
        point = pattern.format(C=c)
        r = results.get(point)
        ours_acc = None if r is None else 100.0 * r["accuracy"]
        lines.append(
            f"| {label} | `{point}` | {_f(r and r['size_mb'], 3)} | {mb} | {_f(ours_acc)} | {acc:.2f} | "
            f"{_f(None if ours_acc is None else ours_acc - acc)} | {_f(r and r['bpp'], 3)} |"
        )
        table[point] = {
            "size_mb": None if r is None else r["size_mb"],
            "accuracy": None if r is None else r["accuracy"],
            "paper_size_mb": mb,
            "paper_accuracy": acc / 100.0,
        }
    lines += [
        "",
        'JPEG "quality factor 0": libjpeg clamps quality 0 to 1, so the row is `JPEG_Q1`. JPEG 2000 '
        '"compression ratio R": raw 8-bit RGB bytes / codestream bytes, per image (`JPEG2000_mse_R<R>`: '
        "24/R bpp). " + (f"Our set: {n} coded faces." if n else ""),
        "",
        "## Beyond the paper: rate–accuracy curves and BD-accuracy",
        "",
        "CompNet at every `bian.channels` (one rate per C) and the same sphere20 on JPEG / JPEG 2000 / HEVC / "
        "learned decoded faces. BD-accuracy: mean accuracy gain (percentage points) of the jointly trained "
        f"CompNet curve over each curve at equal rate (Bjøntegaard, `{params.bian.bd_method}` fit over log bpp); "
        "BD-rate: its mean rate change at equal accuracy.",
        "",
        "| curve (anchor) | BD-accuracy pp | BD-rate % | note |",
        "|---|---|---|---|",
    ]
    for row in bd:
        lines.append(f"| {row['anchor']} | {_f(row['bd_accuracy_pp'])} | {_f(row['bd_rate_pct'], 1)} | {row['note']} |")
    if not bd:
        lines.append("| – | – | – | the joint CompNet curve was not evaluated |")
    lines += ["", "| point | bpp | size MB | accuracy % | TAR@FAR=1e-3 | EER | AUC |", "|---|---|---|---|---|---|---|"]
    for p, r in sorted(results.items(), key=lambda kv: kv[1]["bpp"]):
        lines.append(
            f"| `{p}` | {r['bpp']:.3f} | {r['size_mb']:.3f} | {100 * r['accuracy']:.2f} | {r['tar_far_1e-3']:.3f} | "
            f"{r['eer']:.4f} | {r['auc']:.4f} |"
        )
    return "\n".join(lines) + "\n", table


def plot(curves_: dict[str, list[dict[str, Any]]], original: dict[str, Any] | None, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (key, label) in zip(axes, (("accuracy", "10-fold accuracy"), ("tar_far_1e-3", "TAR@FAR=1e-3"))):
        for name, pts in curves_.items():
            ax.plot(
                [p["bpp"] for p in pts],
                [p[key] for p in pts],
                marker="o",
                label=name,
                linewidth=2 if name == JOINT_SERIES else 1,
            )
        if original is not None:
            ax.axhline(
                original[key], linestyle="--", color="k", linewidth=1, label=f"Original PNG ({original['bpp']:.2f} bpp)"
            )
        ax.set_xlabel("rate [bpp] (112×96 faces)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle("Bian et al. framework vs codecs — LFW View 2, sphere20")
    fig.tight_layout(rect=(0, 0.15, 1, 0.95))
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_bian_report(params: Params, root: Path, points: list[str]) -> dict[str, Any]:
    results = load_results(root, points)
    cv = curves(results)
    with atomic_path(root / paths.BIAN_RATE_METRIC_PLOTS) as tmp:
        tmp.mkdir(parents=True)
        for name, pts in cv.items():
            (tmp / f"{name}.csv").write_text(curve_csv(pts))
    plot(cv, results.get("Original"), root / paths.BIAN_FIGURE)
    bd = bd_accuracy(cv, params.bian.bd_method)
    md, table = table1_markdown(params, results, bd)
    write_bytes_atomic(root / paths.BIAN_TABLE, md.encode())
    metrics = {
        "table1": table,
        "bd_accuracy_pp": {r["anchor"]: r["bd_accuracy_pp"] for r in bd},
    }
    write_json_atomic(root / paths.BIAN_REPORT_JSON, metrics)
    return {"table": root / paths.BIAN_TABLE, "figure": root / paths.BIAN_FIGURE, **metrics}


def run_bian_report(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``report_bian``: Table 1, the rate-accuracy curves (CSV + PNG) and BD-accuracy."""
    from cdfv.bian.points import configured_points

    return write_bian_report(params, root, configured_points(params))
