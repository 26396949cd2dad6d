"""Stage ``rd_report``: RD curves per codec series (``dvc plots``) and Bjøntegaard deltas.

Reads ``reports/metrics/rate/<codec>.json`` of every codec under ``codecs:`` (probe means, as the
paper reports rates over probes only) and writes one CSV per series, ``reports/rd.md`` and
``reports/metrics/rd.json``. It builds from the rate metrics that exist: a codec whose
``encode_lfw@<codec>`` wrote none (skipped or failed) is listed as "not run".
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from cdfv import paths
from cdfv.config import Params
from cdfv.io import atomic_path, write_bytes_atomic, write_json_atomic
from cdfv.rd.curves import RdPoint, bd_markdown, bd_table, curves


def run_rd_report(params: Params, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Collect ``rate/<codec>.json`` of every listed codec into per-series CSVs and a BD table."""
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
        s = json.loads(path.read_text())
        block = s.get("probes") or s["all"]
        if block["n"] == 0 or block[rate_key] is None:
            continue
        points.append(RdPoint(name, s["series"], block[rate_key], block["psnr"], block["ms_ssim"]))
    with atomic_path(root / paths.RD_PLOTS) as tmp:
        tmp.mkdir()
        for series, pts in curves(points).items():
            with open(tmp / f"{series}.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["codec", "bpp", "psnr", "ms_ssim"])
                for p in pts:
                    w.writerow([p.codec, f"{p.bpp:.6f}", f"{p.psnr:.4f}", f"{p.ms_ssim:.6f}"])
    tables: dict[str, Any] = {}
    text = f"# Rate–distortion of the codecs (LFW faces, rate = {rate_key})\n\n"
    if any(p.series == cfg.anchor for p in points):
        tables = {m: bd_table(points, cfg.anchor, m, cfg.method) for m in ("psnr", "ms_ssim")}
        text += bd_markdown(tables, cfg.anchor)
    else:
        text += f"No points of the anchor series {cfg.anchor!r}: no Bjøntegaard deltas.\n"
    text += "\n| codec | bpp | PSNR (dB) | MS-SSIM |\n|---|---|---|---|\n"
    text += "".join(f"| {p.codec} | {p.bpp:.3f} | {p.psnr:.2f} | {p.ms_ssim:.4f} |\n" for p in points)
    if not_run:
        text += "\n## Not run\n\n" + "".join(f"- {c}: not run: {why}\n" for c, why in not_run.items())
    write_bytes_atomic(root / paths.RD_REPORT, text.encode())
    metrics = {"anchor": cfg.anchor, "rate": rate_key, "bd": tables, "points": len(points), "not_run": len(not_run)}
    write_json_atomic(root / paths.RD_METRICS, metrics)
    return metrics
