"""Stage ``rd_report``: RD curves of the codec series (``dvc plots``) and Bjøntegaard deltas.

Reads the rate results of every codec under ``codecs:`` (``reports/metrics/rate/<codec>.json`` and its
details: probe means, as the paper reports rates over probes only) and writes ``reports/plots/rd.csv``
(one row per codec point with its ``series``: the top-level plots ``rd_psnr`` / ``rd_ms_ssim`` draw
whatever series exist), ``reports/rd.md`` and one declared result per series,
``reports/metrics/rd/<series>.json``: BD-rate and BD-PSNR / BD-MS-SSIM vs ``encode.report.anchor``.
It builds from the rate results that exist: a codec whose ``encode_lfw@<codec>`` wrote none
(skipped or failed) is listed as "not run".
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from cdfv import paths
from cdfv.config import Params
from cdfv.io import write_bytes_atomic
from cdfv.rd.curves import RdPoint, bd_markdown, bd_table, curves
from cdfv.results import MetricKind, read_results, results_dir, write_results

#: ``rd/<series>.json``: Bjøntegaard deltas of the series vs the anchor (None when undefined: dropped)
RD_KIND = MetricKind("rd", ("bd_rate_psnr", "bd_psnr", "bd_rate_ms_ssim", "bd_ms_ssim"))
RD_FIELDS = ("series", "codec", "bpp", "psnr", "ms_ssim")


def rd_csv(points: list[RdPoint]) -> str:
    """``series,codec,bpp,psnr,ms_ssim`` rows of every point, by series then rate."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RD_FIELDS)
    for series, pts in curves(points).items():
        for p in pts:
            w.writerow([series, p.codec, f"{p.bpp:.6f}", f"{p.psnr:.4f}", f"{p.ms_ssim:.6f}"])
    return buf.getvalue()


def run_rd_report(params: Params, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Collect the rate results of every listed codec into ``rd.csv``, ``rd.md`` and per-series BD results."""
    root = Path(root)
    cfg = params.encode.report
    rate_key = cfg.rate
    points: list[RdPoint] = []
    not_run: dict[str, str] = {}
    for name in params.codecs:
        path = root / paths.rate_json(name)
        if not path.is_file():
            not_run[name] = f"encode_lfw@{name} wrote no {path} (skipped or failed: see `cdfv repro`)"
            continue
        s = read_results(root, paths.rate_json(name), stage=f"encode_lfw@{name}")
        block = s.get("probes") or s["all"]
        if block["n"] == 0 or block[rate_key] is None:
            continue
        points.append(RdPoint(name, s["series"], block[rate_key], block["psnr"], block["ms_ssim"]))
    write_bytes_atomic(root / paths.RD_CSV, rd_csv(points).encode())
    by_series = curves(points)
    tables: dict[str, Any] = {}
    text = f"# Rate–distortion of the codecs (LFW faces, rate = {rate_key})\n\n"
    if cfg.anchor in by_series:
        tables = {m: bd_table(points, cfg.anchor, m, cfg.method) for m in ("psnr", "ms_ssim")}
        text += bd_markdown(tables, cfg.anchor)
    else:
        text += f"No points of the anchor series {cfg.anchor!r}: no Bjøntegaard deltas.\n"
    text += "\n| codec | bpp | PSNR (dB) | MS-SSIM |\n|---|---|---|---|\n"
    text += "".join(f"| {p.codec} | {p.bpp:.3f} | {p.psnr:.2f} | {p.ms_ssim:.4f} |\n" for p in points)
    if not_run:
        text += "\n## Not run\n\n" + "".join(f"- {c}: not run: {why}\n" for c, why in not_run.items())
    write_bytes_atomic(root / paths.RD_REPORT, text.encode())
    with results_dir(root, paths.RD_METRICS) as staging:
        for series, pts in by_series.items():
            psnr, ssim = tables.get("psnr", {}).get(series, {}), tables.get("ms_ssim", {}).get(series, {})
            metrics = {
                "bd_rate_psnr": psnr.get("bd_rate"),
                "bd_psnr": psnr.get("bd_psnr"),
                "bd_rate_ms_ssim": ssim.get("bd_rate"),
                "bd_ms_ssim": ssim.get("bd_ms_ssim"),
            }
            details = {
                "series": series,
                "anchor": cfg.anchor,
                "rate": rate_key,
                "method": cfg.method,
                "codecs": [p.codec for p in pts],
            }
            write_results(staging, paths.rd_json(series), RD_KIND, metrics, details)
    return {
        "anchor": cfg.anchor,
        "rate": rate_key,
        "bd": tables,
        "points": len(points),
        "series": len(by_series),
        "not_run": len(not_run),
    }
