"""Stages ``eval_lfw_*`` (one solution: embeddings -> scores -> metrics) and ``report``."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cdfv import paths, schemas
from cdfv.config import Params
from cdfv.evaluate import metrics as M
from cdfv.evaluate.embed import embed_solution, probe_sources
from cdfv.evaluate.recognisers import build_recogniser
from cdfv.evaluate.report import write_report
from cdfv.evaluate.score import score_pairs
from cdfv.evaluate.solutions import Solution, parse_solution
from cdfv.io import read_parquet, write_bytes_atomic, write_parquet_atomic
from cdfv.results import MetricKind, write_results

#: ``eval/<model>.json``: the Fig. 4 / Table 7 numbers of one solution (bpp: probe mean, None for anchors);
#: counts, the other rates, thresholds, settings and timings are in its details
EVAL_KIND = MetricKind("eval", ("tar_far_1e-3", "tar_far_1e-2", "eer", "auc", "accuracy", "bpp"))


def allowed_models(params: Params) -> list[str]:
    """Every solution the params ask for (the union of the eval_lfw_* stages)."""
    e = params.eval
    return [
        "ResNet50_Original_Anchor",
        "Dlib_Original_Anchor",
        *(f"ResNet50_{c}" for c in e.resnet50_decoded),
        *(f"Dlib_{c}" for c in e.dlib_decoded),
        *(f"cResNet39_{c}" for c in e.cresnet39),
        *(f"ResNet50_B1_{c}" for c in e.resnet50_b1),
        *(f"Dlib_B1_{c}" for c in e.dlib_b1),
    ]


def probe_rate(sol: Solution, root: Path, probes: list[str]) -> tuple[float | None, float | None]:
    """Mean (bpp unpadded, bpp_256) over the distinct probe images (paper: rate of probes only).

    Unpadded = the 224^2 face (B2, C) or the 250^2 original image (B1).
    """
    if sol.codec is None:
        return None, None
    _, bpp = probe_sources(root, sol)
    ids = sorted(set(probes))
    missing = [i for i in ids if i not in bpp]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} probe image(s) have no rate in the {sol.codec} index: {missing[:10]}. "
            f"Rerun `dvc repro {'encode_lfw_full' if sol.pipeline == 'B1' else 'encode_lfw'}@{sol.codec}`."
        )
    b224 = np.mean([bpp[i][0] for i in ids])
    b256 = np.mean([bpp[i][1] for i in ids])
    return float(b224), float(b256)


def roc_csv(labels: np.ndarray, scores: np.ndarray) -> str:
    """``far,tar,threshold`` rows of the ROC (collinear points dropped: same curve, smaller file)."""
    from sklearn.metrics import roc_curve

    far, tar, thr = roc_curve(labels, scores, drop_intermediate=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["far", "tar", "threshold"])
    for f, t, h in zip(far, tar, thr):
        w.writerow([f"{f:.6g}", f"{t:.6g}", f"{h:.6g}" if np.isfinite(h) else "inf"])
    return buf.getvalue()


def run_eval_lfw(params: Params, model: str, root: Path = Path(".")) -> dict[str, Any]:
    """Evaluate one solution on LFW View 2; write scores, embeddings, metrics + details JSON and ROC CSV.

    Returns the details merged with the declared metrics.
    """
    sol = parse_solution(model)
    if model not in allowed_models(params):
        raise ValueError(
            f"model {model!r} is not configured in params.yaml eval: (choose from {allowed_models(params)})"
        )
    e = params.eval
    t0 = time.perf_counter()
    pairs = read_parquet(root / paths.LFW_PAIRS, "LFW View-2 pairs", "ingest_lfw")
    faces = read_parquet(root / paths.LFW_FACES, "aligned LFW faces", "align_lfw")
    left = pairs.column("left_id").to_pylist()
    right = pairs.column("right_id").to_pylist()
    status = dict(zip(faces.column("image_id").to_pylist(), faces.column("status").to_pylist()))

    rec = build_recogniser(sol.recogniser, sol.codec, root, e.device)
    t_embed = time.perf_counter()
    probe_emb, ref_emb = embed_solution(sol, rec, root, faces, left, right, e.batch_size, e.verify_shards)
    t_embed = time.perf_counter() - t_embed
    scores = score_pairs(left, right, probe_emb, ref_emb, pairs.column("pair_id").to_pylist())

    labels = np.asarray(pairs.column("same").to_pylist(), dtype=bool)
    folds = np.asarray(pairs.column("fold").to_pylist())
    fallback = np.array([status.get(a) != "ok" or status.get(b) != "ok" for a, b in zip(left, right)])
    out = M.verification_metrics(labels, scores, folds, rule=e.tar_rule)
    b224, b256 = probe_rate(sol, root, left)
    _, bpp_probe = probe_sources(root, sol) if sol.codec else (None, {})
    n_images = len(set(probe_emb) | set(ref_emb)) if probe_emb is not ref_emb else len(probe_emb)
    metrics = {k: out.pop(k) for k in EVAL_KIND.keys if k in out}
    metrics["bpp"] = b256 if e.rate_denominator == 256 else b224
    details: dict[str, Any] = {
        "model": model,
        "series": sol.series,
        "pipeline": sol.pipeline,
        "recogniser": sol.recogniser,
        "codec": sol.codec,
        "tar_rule": e.tar_rule,
        "rate_denominator": e.rate_denominator,
        "n_pairs": int(labels.size),
        "n_genuine": int(labels.sum()),
        "n_fallback_pairs": int(fallback.sum()),
        "bpp_224": None if sol.pipeline == "B1" else b224,
        **({"bpp_orig": b224} if sol.pipeline == "B1" else {}),  # B1: over the whole 250^2 original
        "bpp_256": b256,
        "embed_ms_per_image": 1000.0 * t_embed / max(n_images, 1),
        "seconds": time.perf_counter() - t0,
        **out,  # eer_threshold, accuracy_std, n_folds
    }

    d = root / paths.eval_dir(model)
    table = pa.table(
        {
            "pair_id": pairs.column("pair_id"),
            "fold": pairs.column("fold"),
            "left_id": left,
            "right_id": right,
            "same": labels,
            "score": scores,
            "fallback": fallback,
            "probe_bpp": [bpp_probe[i][1 if e.rate_denominator == 256 else 0] if sol.codec else None for i in left],
        }
    )
    write_parquet_atomic(d / "scores.parquet", table, schemas.LFW_SCORES)
    rows = [(i, "probe", v) for i, v in probe_emb.items()]
    if probe_emb is not ref_emb:
        rows += [(i, "reference", v) for i, v in ref_emb.items()]
    emb = pa.table(
        {
            "image_id": [r[0] for r in rows],
            "role": [r[1] for r in rows],
            "embedding": [np.asarray(r[2], np.float32).tolist() for r in rows],
        }
    )
    write_parquet_atomic(d / "embeddings.parquet", emb, schemas.LFW_EMBEDDINGS)
    write_bytes_atomic(root / paths.ROC_PLOTS / f"{model}.csv", roc_csv(labels, scores).encode())
    return write_results(root, paths.eval_json(model), EVAL_KIND, metrics, details)


def run_report(params: Params, root: Path = Path(".")) -> dict[str, Path]:
    """Fig. 4 (PNG + per-line CSVs for dvc plots), table7.md with BD deltas, from the eval metrics that
    exist; every other solution params.yaml asks for is marked "not run" with :func:`why_not_run`."""
    return write_report(root, params.eval.bd_anchor, params.eval.bd_method, allowed_models(params), why_not_run)


def why_not_run(model: str) -> str:
    """Why a configured solution may have no metrics: its eval stage and, for a trained recogniser, the
    training stage and data it waits for (a trained network needs VGGFace2, thesis §5.5)."""
    sol = parse_solution(model)
    stage = stage_name(model)
    if sol.recogniser == "ResNet50":
        return (
            f"{stage} needs the trained ResNet50 ({paths.model_file('resnet50')} from train_resnet50, "
            "which needs VGGFace2)"
        )
    if sol.recogniser == "cResNet39":
        return (
            f"{stage} needs the trained cResNet39 ({paths.model_file('cresnet39', sol.codec)} from "
            f"train_cresnet39@{sol.codec} or train_cresnet39_online@{sol.codec}, which need VGGFace2)"
        )
    return f"{stage} wrote no metrics (skipped or failed: see the summary of `cdfv repro`)"


def stage_name(model: str) -> str:
    """The dvc.yaml stage that evaluates ``model`` (``eval_lfw_resnet50@JPEG_Q1`` ...)."""
    sol = parse_solution(model)
    group = f"eval_lfw_{sol.recogniser.lower()}{'_b1' if sol.pipeline == 'B1' else ''}"
    return f"{group}_anchor" if sol.codec is None else f"{group}@{sol.codec}"
