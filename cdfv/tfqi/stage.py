"""DVC entry points of the joint texture + feature coding system (Li et al. 2019).

``tfqi_faces``        the 160x160 crops of every LFW View-2 pair image (detections -> box + margin -> resize)
``tfqi_embed``        the L2-normalised deep feature of each *lossless* crop (§II)
``tfqi_texture@<QP>`` HEVC intra of each crop at QP1 (real access units through the codec registry and the
                      encode loop); D1 = MSE; features of the decoded texture give the texture-only
                      ("compress then analyse") accuracy
``tfqi_feature@<QP>`` the features quantised at QP2 (eqs. 1-2), range-coded to real bytes, decoded,
                      dequantised; D2 = 1 - 10-fold accuracy on LFW View 2 with the decoded features
``tfqi_fit``          the R-D models of eq. 9 fitted to those points
``tfqi_allocate``     the working-condition allocation (eqs. 4-8) at each budget vs the (QP1, QP2) grid
``tfqi_report``       ``reports/table_tfqi.md`` (ours beside the paper's), the figure and the plot CSVs

Every image of the pairs is transmitted (both sides of a pair are coded); rates are means over those
images, in bits per crop pixel. Each stage writes its declared metrics (a few numbers) and an
undeclared details JSON (counts, timings, settings).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from cdfv import paths, schemas
from cdfv.chunks import chunked
from cdfv.config import Params
from cdfv.errors import CdfvError
from cdfv.evaluate import metrics as M
from cdfv.evaluate.score import score_pairs
from cdfv.io import (
    atomic_path,
    encode_png,
    read_parquet,
    read_rgb,
    sha256_bytes,
    write_json_atomic,
    write_parquet_atomic,
)
from cdfv.results import MetricKind, write_results
from cdfv.tfqi import allocate as A
from cdfv.tfqi.bitstream import decode_levels, encode_levels
from cdfv.tfqi.quantise import dequantise, q_step, quantise

#: the verification numbers every tfqi result declares (10-fold accuracy, D2 = 1 - accuracy, AUC, EER)
VERIFY_KEYS = ("accuracy", "error_rate", "auc", "eer")
EMBED_KIND = MetricKind("tfqi_embed", VERIFY_KEYS)
TEXTURE_KIND = MetricKind("tfqi_texture", ("bpp", "mse", "psnr", *VERIFY_KEYS))
FEATURE_KIND = MetricKind("tfqi_feature", ("bpp", "bits_per_component", *VERIFY_KEYS))
#: eq. 9 fitted: D_t = a1 e^(b1 R_t), D_f = a2 e^(b2 R_f) + c2 e^(d2 R_f) (absent when a fit failed)
FIT_KIND = MetricKind(
    "tfqi_fit",
    ("texture_fit_ok", "feature_fit_ok", "texture_a1", "texture_b1", "texture_r2")
    + ("feature_a2", "feature_b2", "feature_c2", "feature_d2", "feature_r2"),
)
#: the model-based allocation vs the brute-force grid over every (w1, budget)
ALLOCATE_KIND = MetricKind("tfqi_allocate", ("mean_tfqi_lost", "max_tfqi_lost", "grid_optimum_share"))


class TfqiError(CdfvError, RuntimeError):
    """A tfqi stage that cannot run (missing upstream metrics, a self-check failure)."""


# ------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------
def pair_images(root: Path) -> tuple[pa.Table, list[str]]:
    """The View-2 pairs and the sorted ids of every image they use."""
    pairs = read_parquet(root / paths.LFW_PAIRS, "LFW View-2 pairs", "ingest_lfw")
    ids = sorted(set(pairs.column("left_id").to_pylist()) | set(pairs.column("right_id").to_pylist()))
    return pairs, ids


def verify(pairs: pa.Table, features: dict[str, np.ndarray]) -> dict[str, float]:
    """Verification metrics of the pairs scored by cosine similarity of ``features`` (both sides)."""
    left, right = pairs.column("left_id").to_pylist(), pairs.column("right_id").to_pylist()
    scores = score_pairs(left, right, features, features, pairs.column("pair_id").to_pylist())
    labels = np.asarray(pairs.column("same").to_pylist(), dtype=bool)
    folds = np.asarray(pairs.column("fold").to_pylist())
    return M.verification_metrics(labels, scores, folds)


def _verification_block(m: dict[str, float]) -> dict[str, float]:
    """The declared verification numbers (:data:`VERIFY_KEYS`)."""
    return {"accuracy": m["accuracy"], "error_rate": 1.0 - m["accuracy"], "auc": m["auc"], "eer": m["eer"]}


def read_features(path: Path, what: str, stage: str) -> dict[str, np.ndarray]:
    t = read_parquet(path, what, stage)
    return {
        i: np.asarray(v, dtype=np.float32)
        for i, v in zip(t.column("image_id").to_pylist(), t.column("embedding").to_pylist())
    }


def _features_table(ids: Sequence[str], feats: np.ndarray) -> pa.Table:
    return pa.Table.from_pylist(
        [{"image_id": i, "embedding": v.tolist()} for i, v in zip(ids, feats)], schema=schemas.TFQI_EMBEDDINGS
    )


def ok_faces(root: Path) -> list[dict[str, Any]]:
    """Rows of ``faces.parquet`` with a crop; an image without one fails naming it (its pairs need it)."""
    faces = read_parquet(root / paths.TFQI_FACES, "160x160 face crops", "tfqi_faces").to_pylist()
    missing = [f["image_id"] for f in faces if not f["path"]]
    if missing:
        raise TfqiError(
            f"{root / paths.TFQI_FACES}: {len(missing)} pair image(s) have no crop (unreadable: {missing[:5]}); "
            "re-ingest LFW (`dvc repro ingest_lfw`)"
        )
    return faces


# ------------------------------------------------------------------------------------------------
# tfqi_faces
# ------------------------------------------------------------------------------------------------
def run_tfqi_faces(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``tfqi_faces``: the crop (``tfqi.faces``) of each pair image from its MTCNN detection."""
    from cdfv.tfqi.faces import box_crop, detection_landmarks, similarity_crop

    fp = params.tfqi.faces
    ref = params.align.references[fp.reference] if fp.crop == "similarity" else None
    t0 = time.perf_counter()
    _, ids = pair_images(root)
    images = read_parquet(root / paths.LFW_IMAGES, "LFW image index", "ingest_lfw").to_pylist()
    dets = read_parquet(root / paths.LFW_MTCNN_DETECTIONS, "MTCNN detections", "detect_lfw_mtcnn").to_pylist()
    image_path = {r["image_id"]: r["path"] for r in images}
    det_of = {d["image_id"]: d for d in dets}
    missing = [i for i in ids if i not in det_of or i not in image_path]
    if missing:
        raise TfqiError(
            f"{root / paths.LFW_MTCNN_DETECTIONS}: {len(missing)} pair image(s) without a detection or image row "
            f"(e.g. {missing[0]}); rerun `dvc repro detect_lfw_mtcnn`"
        )
    rows: list[dict[str, Any]] = []
    with atomic_path(root / paths.TFQI_FACES_DIR) as tmp:
        tmp.mkdir(parents=True)
        for image_id in tqdm(ids, desc=f"tfqi_faces ({fp.crop})", unit="img"):
            det = det_of[image_id]
            row: dict[str, Any] = {name: None for name in schemas.TFQI_FACES.names}
            row.update(image_id=image_id, identity=det["identity"], status=det["status"])
            if det["status"] == "unreadable" or det["x1"] is None:
                rows.append(row)
                continue
            image = read_rgb(root / image_path[image_id])
            box = (det["x1"], det["y1"], det["x2"], det["y2"])
            if ref is None:
                crop, window = box_crop(image, box, fp.size, fp.margin, fp.interpolation)
            else:
                crop, window = similarity_crop(image, detection_landmarks(det), box, ref, fp.interpolation)
            png = encode_png(crop)
            target = tmp / f"{image_id}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png)
            row.update(
                path=(paths.TFQI_FACES_DIR / f"{image_id}.png").as_posix(),
                x1=window[0],
                y1=window[1],
                x2=window[2],
                y2=window[3],
                sha256=sha256_bytes(png),
            )
            rows.append(row)
        write_parquet_atomic(
            root / paths.TFQI_FACES, pa.Table.from_pylist(rows, schema=schemas.TFQI_FACES), schemas.TFQI_FACES
        )
    summary = {
        "images": len(rows),
        "cropped": sum(r["path"] is not None for r in rows),
        "from_fallback_box": sum(r["status"] == "no_face" for r in rows),
        "crop": fp.crop,
        "size": fp.size,
        "seconds": time.perf_counter() - t0,
    }
    write_json_atomic(root / paths.TFQI_FACES_DETAILS, summary)
    return summary


# ------------------------------------------------------------------------------------------------
# tfqi_embed
# ------------------------------------------------------------------------------------------------
def _extractor(params: Params):  # type: ignore[no-untyped-def]
    from cdfv.tfqi.features import build_extractor

    return build_extractor(params.tfqi.feature, params.tfqi.faces)


def run_tfqi_embed(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``tfqi_embed``: the normalised feature of every lossless crop, and its verification accuracy."""
    from cdfv.tfqi.features import embed_images

    t0 = time.perf_counter()
    pairs, _ = pair_images(root)
    faces = ok_faces(root)
    extractor = _extractor(params)
    ids: list[str] = []
    feats: list[np.ndarray] = []
    for part in tqdm(chunked(faces, params.tfqi.feature.batch_size), desc=f"tfqi_embed {extractor.name}"):
        crops = [read_rgb(root / f["path"]) for f in part]
        feats.append(embed_images(extractor, crops))
        ids.extend(f["image_id"] for f in part)
    matrix = np.concatenate(feats) if feats else np.zeros((0, extractor.dim), np.float32)
    write_parquet_atomic(root / paths.TFQI_EMBEDDINGS, _features_table(ids, matrix), schemas.TFQI_EMBEDDINGS)
    m = verify(pairs, dict(zip(ids, matrix)))
    metrics = _verification_block(m)
    details = {
        "extractor": extractor.name,
        "dim": int(matrix.shape[1]),
        "images": len(ids),
        "pairs": pairs.num_rows,
        "folds": int(m["n_folds"]),
        "accuracy_std": m["accuracy_std"],
        "seconds": time.perf_counter() - t0,
    }
    return write_results(root, paths.TFQI_EMBED_JSON, EMBED_KIND, metrics, details)


# ------------------------------------------------------------------------------------------------
# tfqi_texture@<QP1>
# ------------------------------------------------------------------------------------------------
def texture_codec_name(qp: int) -> str:
    """The registry name of the texture codec at ``qp`` (HEVC intra, chroma format ``encode.hevc.pix_fmt``)."""
    return f"HEVC_QP{qp}"


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """D1: mean squared error over every RGB sample, 8-bit scale."""
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def run_tfqi_texture(params: Params, qp: int, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``tfqi_texture@<qp>``: HEVC intra of every crop; D1; the texture-only verification accuracy."""
    from cdfv.codecs.registry import get_codec
    from cdfv.encode.loop import EncodeError, code_chunk, write_coded
    from cdfv.tfqi.features import embed_images

    _check_qp(qp, params.tfqi.texture_qps, "tfqi.texture_qps", "tfqi_texture")
    t0 = time.perf_counter()
    pairs, _ = pair_images(root)
    faces = ok_faces(root)
    codec = get_codec(texture_codec_name(qp), params.encode)
    extractor = _extractor(params)
    rel_dir = paths.tfqi_texture_dir(qp)
    rows: list[dict[str, Any]] = []
    ids: list[str] = []
    feats: list[np.ndarray] = []
    no_pad = (0, 0, 0, 0)
    with atomic_path(root / rel_dir) as tmp:
        tmp.mkdir(parents=True)
        for part in tqdm(chunked(faces, params.encode.chunk_size), desc=f"tfqi_texture QP{qp}", unit="chunk"):
            part_ids = [f["image_id"] for f in part]
            crops = [read_rgb(root / f["path"]) for f in part]
            coded, errors = code_chunk(codec, crops, [no_pad] * len(part), part_ids, "fail")
            decoded = []
            for image_id, crop, c, err in zip(part_ids, crops, coded, errors, strict=True):
                if c is None:  # on_error "fail" raises first; kept for a clear message if that changes
                    raise EncodeError(f"{codec.name} failed on {image_id}: {err}")
                bitstream, dec_path = write_coded(tmp, rel_dir, image_id, codec, c)
                pixels = crop.shape[0] * crop.shape[1]
                rows.append(
                    {
                        "image_id": image_id,
                        "qp": qp,
                        "bytes": c.n_bytes,
                        "bpp": 8.0 * c.n_bytes / pixels,
                        "mse": mse(crop, c.decoded),
                        "psnr": c.psnr,
                        "bitstream": bitstream,
                        "decoded": dec_path,
                    }
                )
                decoded.append(c.decoded)
            feats.append(embed_images(extractor, decoded, crops))
            ids.extend(part_ids)
        write_parquet_atomic(
            tmp / "index.parquet",
            pa.Table.from_pylist(rows, schema=schemas.TFQI_TEXTURE_INDEX),
            schemas.TFQI_TEXTURE_INDEX,
        )
        matrix = np.concatenate(feats) if feats else np.zeros((0, extractor.dim), np.float32)
        write_parquet_atomic(tmp / "embeddings.parquet", _features_table(ids, matrix), schemas.TFQI_EMBEDDINGS)
    m = verify(pairs, dict(zip(ids, matrix)))
    metrics = {
        "bpp": float(np.mean([r["bpp"] for r in rows])),
        "mse": float(np.mean([r["mse"] for r in rows])),
        "psnr": float(np.mean([r["psnr"] for r in rows if math.isfinite(r["psnr"])] or [math.inf])),
        **_verification_block(m),
    }
    details = {
        "codec": codec.name,
        "hevc": params.encode.hevc.model_dump(),
        "extractor": extractor.name,
        "images": len(rows),
        "bytes_total": int(sum(r["bytes"] for r in rows)),
        "seconds": time.perf_counter() - t0,
    }
    return write_results(root, paths.tfqi_texture_json(qp), TEXTURE_KIND, metrics, details)


def _check_qp(qp: int, grid: Sequence[int], key: str, stage: str) -> None:
    if qp not in grid:
        from cdfv.config import ParamsError

        raise ParamsError(f"{stage}@{qp}: QP {qp} is not in {key} {list(grid)}")


# ------------------------------------------------------------------------------------------------
# tfqi_feature@<QP2>
# ------------------------------------------------------------------------------------------------
def code_features(features: np.ndarray, qp: int) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """(bitstreams, entropy-decoded levels, dequantised features) of L2-normalised ``features`` at ``qp``.

    Every bitstream is decoded back and must give the encoder's levels and QP (a coder defect otherwise).
    """
    x = np.asarray(features, dtype=np.float64)
    levels = quantise(x, qp)
    blobs: list[bytes] = []
    decoded = np.empty_like(levels)
    for k in tqdm(range(levels.shape[0]), desc=f"feature coding QP{qp}", unit="feat", leave=False):
        blob = encode_levels(levels[k], qp)
        got_qp, got = decode_levels(blob, levels.shape[1])
        if got_qp != qp or not np.array_equal(got, levels[k]):
            raise TfqiError(f"feature bitstream {k} (QP {qp}) decodes to other levels: range coder defect")
        blobs.append(blob)
        decoded[k] = got
    return blobs, decoded, dequantise(decoded, qp)


def run_tfqi_feature(params: Params, qp: int, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``tfqi_feature@<qp>``: quantise, range-code, decode; D2 from the decoded features."""
    _check_qp(qp, params.tfqi.feature.qps, "tfqi.feature.qps", "tfqi_feature")
    t0 = time.perf_counter()
    pairs, _ = pair_images(root)
    feats = read_features(root / paths.TFQI_EMBEDDINGS, "lossless-crop features", "tfqi_embed")
    ids = sorted(feats)
    matrix = np.stack([feats[i] for i in ids]) if ids else np.zeros((0, 0), np.float32)
    blobs, levels, decoded = code_features(matrix, qp)
    pixels = params.tfqi.faces.size**2
    rows = [
        {
            "image_id": i,
            "qp": qp,
            "bytes": len(b),
            "bpp": 8.0 * len(b) / pixels,
            "bitstream": b,
            "levels": lv.tolist(),
            "decoded": d.astype(np.float32).tolist(),
        }
        for i, b, lv, d in zip(ids, blobs, levels, decoded)
    ]
    with atomic_path(root / paths.tfqi_feature_dir(qp)) as tmp:
        tmp.mkdir(parents=True)
        write_parquet_atomic(
            tmp / "index.parquet",
            pa.Table.from_pylist(rows, schema=schemas.TFQI_FEATURE_INDEX),
            schemas.TFQI_FEATURE_INDEX,
        )
    m = verify(pairs, dict(zip(ids, decoded)))
    dim = matrix.shape[1]
    mean_bytes = float(np.mean([len(b) for b in blobs]))
    metrics = {
        "bpp": mean_bytes * 8.0 / pixels,
        "bits_per_component": mean_bytes * 8.0 / dim,
        **_verification_block(m),
    }
    details = {
        "q_step": q_step(qp),
        "dim": dim,
        "images": len(ids),
        "bytes_total": int(sum(len(b) for b in blobs)),
        "max_abs_level": int(np.abs(levels).max()) if levels.size else 0,
        "max_dequantisation_error": float(np.abs(decoded - matrix).max()) if matrix.size else 0.0,
        "seconds": time.perf_counter() - t0,
    }
    return write_results(root, paths.tfqi_feature_json(qp), FEATURE_KIND, metrics, details)


# ------------------------------------------------------------------------------------------------
# tfqi_fit
# ------------------------------------------------------------------------------------------------
def _load_points(root: Path, kind: str, qps: Sequence[int]) -> list[dict[str, Any]]:
    path_of = paths.tfqi_texture_json if kind == "texture" else paths.tfqi_feature_json
    out = []
    for qp in qps:
        p = root / path_of(qp)
        if not p.is_file():
            raise TfqiError(f"{p}: missing. Run `dvc repro tfqi_{kind}@{qp}` first.")
        out.append({"qp": qp, **json.loads(p.read_text())})
    return out


def run_tfqi_fit(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``tfqi_fit``: D_t(R_t) and D_f(R_f) of eq. 9 fitted to the measured points."""
    from cdfv.tfqi.rd_models import PAPER_FEATURE_FIT, PAPER_TEXTURE_FIT, fit_feature, fit_texture

    tex = _load_points(root, "texture", params.tfqi.texture_qps)
    fea = _load_points(root, "feature", params.tfqi.feature.qps)
    maxfev = params.tfqi.fit.maxfev
    ft = fit_texture([p["bpp"] for p in tex], [p["mse"] for p in tex], maxfev)
    ff = fit_feature([p["bpp"] for p in fea], [p["error_rate"] for p in fea], maxfev)
    record = {
        "texture": _fit_record(ft, tex, "mse", PAPER_TEXTURE_FIT),
        "feature": _fit_record(ff, fea, "error_rate", PAPER_FEATURE_FIT),
    }
    write_json_atomic(root / paths.TFQI_FIT_RECORD, record)
    metrics: dict[str, Any] = dict.fromkeys(FIT_KIND.keys)
    metrics.update(texture_fit_ok=int(ft.ok), feature_fit_ok=int(ff.ok))
    for prefix, fit in (("texture", ft), ("feature", ff)):
        if fit.ok:
            metrics.update({f"{prefix}_{k}": v for k, v in fit.params.items()})
            metrics[f"{prefix}_r2"] = fit.r2
    details = {k: {"status": v["status"], "points": len(v["points"])} for k, v in record.items()}
    write_results(root, paths.TFQI_FIT_JSON, FIT_KIND, metrics, details)
    return record


def _fit_record(fit: Any, points: Sequence[dict[str, Any]], key: str, paper: dict[str, float]) -> dict[str, Any]:
    return {
        "status": fit.status,
        "params": fit.params,
        "r2": fit.r2,
        "points": [{"qp": p["qp"], "bpp": p["bpp"], "distortion": p[key]} for p in points],
        "paper": paper,
    }


def fit_from_record(kind: str, rec: dict[str, Any]) -> Any:
    """The :class:`~cdfv.tfqi.rd_models.Fit` a fit record describes."""
    from cdfv.tfqi.rd_models import Fit

    ok = rec["status"] == "ok"
    reason = "" if ok else rec["status"].removeprefix("fit failed: ")
    return Fit(kind, ok, dict(rec["params"]), rec["r2"], len(rec["points"]), reason)


# ------------------------------------------------------------------------------------------------
# tfqi_allocate
# ------------------------------------------------------------------------------------------------
def allocation_rows(
    texture: Sequence[A.GridPoint],
    feature: Sequence[A.GridPoint],
    texture_only: Sequence[dict[str, Any]],
    acc_feature: dict[int, float],
    texture_fit: Any,
    feature_fit: Any,
    w1s: Sequence[float],
    budgets: Sequence[float],
) -> list[dict[str, Any]]:
    """One row per (w1, budget): model-based choice, grid optimum, their TFQI gap, texture-only at the same rate.

    ``texture_only``: per QP1 ``{"bpp", "mse", "error_rate"}`` with D2 from features of the decoded texture.
    """
    rt_range = (min(t.rate for t in texture), max(t.rate for t in texture))
    rf_range = (min(f.rate for f in feature), max(f.rate for f in feature))
    models_ok = texture_fit.ok and feature_fit.ok
    cta_rates = [p["bpp"] for p in texture_only]
    rows = []
    for w1 in w1s:
        cta_tfqi = [A.tfqi(p["mse"], p["error_rate"], w1) for p in texture_only]
        cta_acc = [1.0 - p["error_rate"] for p in texture_only]
        for budget in budgets:
            row: dict[str, Any] = {"w1": w1, "budget": budget}
            grid = A.grid_optimum(texture, feature, budget, w1)
            model = None
            if not models_ok:
                row["model_note"] = "fit failed: " + "; ".join(
                    f"{f.model} {f.reason}" for f in (texture_fit, feature_fit) if not f.ok
                )
            else:
                alloc = A.working_condition_allocation(texture_fit, feature_fit, w1, budget, rt_range, rf_range)
                if alloc is None:
                    row["model_note"] = "budget outside the fitted rate ranges"
                else:
                    row.update(
                        model_rate_t=alloc.rate_t,
                        model_rate_f=alloc.rate_f,
                        model_tfqi_predicted=alloc.model_tfqi,
                        model_on_boundary=alloc.on_boundary,
                    )
                    model = A.grid_pair(texture, feature, budget, alloc.rate_t, feature_fit, w1)
                    if model is None:
                        row["model_note"] = "no grid pair within the budget"
            if grid is None:
                row["grid_note"] = "no grid pair within the budget"
            for name, choice in (("model", model), ("grid", grid)):
                if choice is None:
                    continue
                row.update(
                    {
                        f"{name}_qp1": choice.qp1,
                        f"{name}_qp2": choice.qp2,
                        f"{name}_rate": choice.rate,
                        f"{name}_d1": choice.d1,
                        f"{name}_d2": choice.d2,
                        f"{name}_tfqi": choice.tfqi,
                        f"{name}_accuracy": acc_feature[choice.qp2],
                    }
                )
                cta = A.curve_at(cta_rates, cta_tfqi, choice.rate)
                if cta is not None:
                    row[f"texture_only_tfqi_at_{name}_rate"] = cta
                    row[f"texture_only_accuracy_at_{name}_rate"] = A.curve_at(cta_rates, cta_acc, choice.rate)
                    row[f"{name}_minus_texture_only"] = choice.tfqi - cta
            if model is not None and grid is not None:
                row["tfqi_lost"] = grid.tfqi - model.tfqi
            rows.append(row)
    return rows


def summarise(rows: Sequence[dict[str, Any]], w1: float) -> dict[str, Any]:
    """Per-w1 summary: TFQI lost by the model (mean, max) and the comparison with texture-only at equal rate."""
    sel = [r for r in rows if r["w1"] == w1]
    lost = [r["tfqi_lost"] for r in sel if "tfqi_lost" in r]
    out: dict[str, Any] = {
        "budgets": len(sel),
        "model_budgets": len(lost),
        "mean_tfqi_lost": float(np.mean(lost)) if lost else None,
        "max_tfqi_lost": float(np.max(lost)) if lost else None,
        "model_is_grid_optimum": sum(x <= 1e-12 for x in lost),
    }
    for name in ("model", "grid"):
        key = f"{name}_minus_texture_only"
        series = sorted((r for r in sel if key in r), key=lambda r: r[f"{name}_rate"])
        if series:
            low = series[0]
            out[f"{name}_low_rate"] = low[f"{name}_rate"]
            out[f"{name}_low_rate_gain"] = low[key]
            out[f"{name}_wins"] = sum(r[key] > 0 for r in series)
            out[f"{name}_compared"] = len(series)
    return out


def run_tfqi_allocate(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``tfqi_allocate``: model-based vs brute-force (QP1, QP2) at every budget and w1; texture-only beside."""
    import csv
    import io

    tp = params.tfqi
    tex = _load_points(root, "texture", tp.texture_qps)
    fea = _load_points(root, "feature", tp.feature.qps)
    fit_path = root / paths.TFQI_FIT_RECORD
    if not fit_path.is_file():
        raise TfqiError(f"{fit_path}: missing. Run `dvc repro tfqi_fit` first.")
    record = json.loads(fit_path.read_text())
    texture = [A.GridPoint(p["qp"], p["bpp"], p["mse"]) for p in tex]
    feature = [A.GridPoint(p["qp"], p["bpp"], p["error_rate"]) for p in fea]
    budgets = A.budget_grid(texture, feature, tp.n_budgets, tp.budgets)
    rows = allocation_rows(
        texture,
        feature,
        tex,
        {p["qp"]: p["accuracy"] for p in fea},
        fit_from_record("texture", record["texture"]),
        fit_from_record("feature", record["feature"]),
        tp.w1,
        budgets,
    )
    summaries = {f"w1={w}": summarise(rows, w) for w in tp.w1}
    write_json_atomic(root / paths.TFQI_ALLOCATION_RECORD, {"rows": rows, "summary": summaries, "budgets": budgets})
    fields = sorted({k for r in rows for k in r}, key=_column_order)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    from cdfv.io import write_bytes_atomic

    write_bytes_atomic(root / paths.TFQI_ALLOCATION, buf.getvalue().encode())
    lost = [r["tfqi_lost"] for r in rows if "tfqi_lost" in r]
    metrics = {
        "mean_tfqi_lost": float(np.mean(lost)) if lost else None,
        "max_tfqi_lost": float(np.max(lost)) if lost else None,
        "grid_optimum_share": sum(x <= 1e-12 for x in lost) / len(lost) if lost else None,
    }
    write_results(root, paths.TFQI_ALLOCATE_JSON, ALLOCATE_KIND, metrics, {"per_w1": summaries})
    return {"rows": rows, "summary": summaries}


def _column_order(name: str) -> tuple[int, str]:
    """CSV columns: w1, budget, the model's choice, the grid's, the gap, texture-only, the differences."""
    if "_minus_" in name:
        return (6, name)
    for k, prefix in enumerate(("w1", "budget", "model_", "grid_", "tfqi_lost", "texture_only_")):
        if name == prefix or name.startswith(prefix):
            return (k, name)
    return (7, name)


# ------------------------------------------------------------------------------------------------
# tfqi_report
# ------------------------------------------------------------------------------------------------
def run_tfqi_report(params: Params, root: Path = Path(".")) -> dict[str, Path]:
    """Stage ``tfqi_report``: table_tfqi.md, the figure and the rate-TFQI / rate-accuracy plot CSVs."""
    from cdfv.tfqi.report import write_tfqi_report

    tp = params.tfqi
    tex = _load_points(root, "texture", tp.texture_qps)
    fea = _load_points(root, "feature", tp.feature.qps)
    for p in (paths.TFQI_FIT_RECORD, paths.TFQI_ALLOCATION_RECORD, paths.TFQI_EMBED_JSON):
        if not (root / p).is_file():
            raise TfqiError(f"{root / p}: missing. Run `dvc repro tfqi_allocate` first.")
    fit = json.loads((root / paths.TFQI_FIT_RECORD).read_text())
    alloc = json.loads((root / paths.TFQI_ALLOCATION_RECORD).read_text())
    lossless = json.loads((root / paths.TFQI_EMBED_JSON).read_text())
    extractor = "FaceNet (InceptionResnetV1, VGGFace2)" if tp.feature.extractor == "facenet" else "dlib 128-d"
    return write_tfqi_report(root, tex, fea, lossless, fit, alloc, tp.w1, extractor)
