"""``detect_lfw`` stage: detect once per image, apply the centre heuristic, write detections.

Reads ``data/interim/lfw/images.parquet`` (+ its PNGs), writes ``data/interim/lfw/detections.parquet``
(:data:`cdfv.schemas.LFW_DETECTIONS`), ``reports/metrics/detect_lfw.json`` (:data:`DETECT_KIND`) and its
details (counts, forward passes, timing). Unreadable images
become ``status=unreadable`` rows and one warning summary, never a crash.

:func:`detect_records` is the chunk-level worker the Prefect flow fans out over.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from cdfv import paths, schemas
from cdfv.chunks import ChunkMapper, chunked, map_sequential
from cdfv.config import DetectParams, Params
from cdfv.detect import make_detector, schedule
from cdfv.detect.base import LANDMARK_COLUMNS, Detector, clip_box
from cdfv.detect.heuristic import choose_face, fallback_box
from cdfv.io import ImageReadError, read_parquet, read_rgb, write_parquet_atomic
from cdfv.results import MetricKind, write_results
from cdfv.weights import retinaface_path

log = logging.getLogger(__name__)

#: ``detect_lfw.json``: shares of the readable images with a face (at any threshold / at the first
#: threshold of the walk-down) and the mean threshold at which the chosen face was accepted
DETECT_KIND = MetricKind("detect_lfw", ("detected", "detected_at_start", "mean_threshold"))


def _empty_row(rec: dict[str, Any], backend: str) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schemas.LFW_DETECTIONS.names}
    row.update(image_id=rec["image_id"], identity=rec.get("identity"), backend=backend, n_candidates=0, n_containing=0)
    return row


def detection_row(
    rec: dict[str, Any], image: np.ndarray, faces: Sequence[Any], params: DetectParams, backend: str
) -> dict[str, Any]:
    """One detections.parquet row from an image's candidates (pure)."""
    h, w = image.shape[:2]
    sched = schedule(params)
    choice = choose_face(faces, w, h, sched.start, sched.stop, sched.step)
    row = _empty_row(rec, backend)
    row.update(width=w, height=h, n_candidates=len(faces), n_containing=choice.n_containing, status=choice.status)
    box = None
    if choice.status == "ok":
        f = faces[choice.index]
        box = clip_box(f.box, w, h)
        if box[2] <= box[0] or box[3] <= box[1]:  # degenerate after clipping: treat as no face
            row.update(status="no_face", n_containing=0)
            box = None
        else:
            row.update(score=f.score, threshold_used=choice.threshold_used)
            row.update(dict(zip(LANDMARK_COLUMNS, f.landmarks.reshape(-1).tolist())))
    if box is None:
        row["fallback"] = params.fallback
        box = fallback_box(w, h, params.fallback, params.fallback_fraction)
    row.update(x1=box[0], y1=box[1], x2=box[2], y2=box[3])
    return row


def _read(
    records: Iterable[dict[str, Any]], root: Path
) -> Iterable[tuple[dict[str, Any], np.ndarray | None, str | None]]:
    for rec in records:
        try:
            yield rec, read_rgb(root / rec["path"]), None
        except (ImageReadError, FileNotFoundError, OSError) as err:
            yield rec, None, str(err)


def detect_records(
    records: Sequence[dict[str, Any]],
    detector: Detector,
    params: DetectParams,
    root: Path = Path("."),
    batch_size: int = 8,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Detection rows for ``records`` (dicts with ``image_id``, ``identity``, ``path``).

    Images are read and sent to the detector in batches; the network runs once per image at the
    schedule's lowest threshold and the heuristic filters those candidates.
    """
    min_score = schedule(params).stop
    rows: list[dict[str, Any]] = []
    batch: list[tuple[dict[str, Any], np.ndarray]] = []
    bar = tqdm(total=len(records), desc=f"detect ({detector.name})", unit="img", disable=not progress)

    def flush() -> None:
        if not batch:
            return
        cands = detector.detect_batch([img for _, img in batch], min_score)
        for (rec, img), faces in zip(batch, cands):
            rows.append(detection_row(rec, img, faces, params, detector.name))
        bar.update(len(batch))
        batch.clear()

    for rec, img, err in _read(records, root):
        if img is None:
            row = _empty_row(rec, detector.name)
            row.update(status="unreadable", error=err)
            rows.append(row)
            bar.update(1)
            continue
        batch.append((rec, img))
        if len(batch) >= batch_size:
            flush()
    flush()
    bar.close()
    order = {r["image_id"]: i for i, r in enumerate(records)}
    return sorted(rows, key=lambda r: order[r["image_id"]])


def summarise(
    rows: Sequence[dict[str, Any]], backend: str, seconds: float, forward_passes: int, start: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(declared metrics, details) of ``detect_lfw``: shares and mean threshold; counts and timing."""
    status = [r["status"] for r in rows]
    ok_thr = [r["threshold_used"] for r in rows if r["status"] == "ok"]
    readable = len(rows) - status.count("unreadable")
    at_start = int(sum(t == start for t in ok_thr))  # passed the first threshold
    metrics = {
        "detected": status.count("ok") / readable if readable else None,
        "detected_at_start": at_start / readable if readable else None,
        "mean_threshold": float(np.mean(ok_thr)) if ok_thr else None,
    }
    details = {
        "backend": backend,
        "images": len(rows),
        "ok": status.count("ok"),
        "no_face": status.count("no_face"),
        "unreadable": status.count("unreadable"),
        "accepted_at_start": at_start,
        "forward_passes": forward_passes,
        "forward_passes_per_image": forward_passes / readable if readable else 0.0,
        "seconds": round(seconds, 3),
        "images_per_s": round(readable / seconds, 2) if seconds > 0 else None,
    }
    return metrics, details


def warn_unreadable(rows: Sequence[dict[str, Any]], stage: str) -> None:
    bad = [r for r in rows if r["status"] == "unreadable"]
    if bad:
        listing = "\n  ".join(f"{r['image_id']}: {r['error']}" for r in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        msg = f"{stage}: {len(bad)} unreadable image(s) recorded with status=unreadable:\n  {listing}{more}"
        warnings.warn(msg, stacklevel=2)
        log.warning(msg)


def write_detections(rows: Sequence[dict[str, Any]], out: Path) -> pa.Table:
    table = pa.Table.from_pylist(list(rows), schema=schemas.LFW_DETECTIONS)
    write_parquet_atomic(out, table, schemas.LFW_DETECTIONS)
    return table


def load_image_records(root: Path = Path(".")) -> list[dict[str, Any]]:
    """Rows of ``images.parquet`` (image_id, identity, path) in file order."""
    table = read_parquet(root / paths.LFW_IMAGES, "LFW image index", stage="ingest_lfw")
    return table.select(["image_id", "identity", "path"]).to_pylist()


_local = threading.local()


def cached_detector(params: DetectParams, weights: Path | None) -> Detector:
    """One detector per thread and configuration (models load once, not once per chunk)."""
    store = getattr(_local, "detectors", None)
    if store is None:
        store = _local.detectors = {}
    key = (params.model_dump_json(), str(weights))
    if key not in store:
        store[key] = make_detector(params, weights)
    return store[key]


def detect_chunk(
    records: Sequence[dict[str, Any]], params: DetectParams, weights: Path | None, root: Path
) -> tuple[list[dict[str, Any]], int]:
    """Chunk worker: detection rows + the number of network forward passes it used."""
    detector = cached_detector(params, weights)
    before = detector.forward_passes
    bs = {"retinaface": params.retinaface.batch_size, "mtcnn": params.mtcnn.batch_size}.get(params.backend, 1)
    rows = detect_records(records, detector, params, root, batch_size=bs)
    return rows, detector.forward_passes - before


def run_detect_lfw(
    params: Params,
    root: Path = Path("."),
    map_chunks: ChunkMapper | None = None,
    detect: DetectParams | None = None,
    out: Path = paths.LFW_DETECTIONS,
    metrics_out: Path = paths.DETECT_LFW_METRICS,
) -> dict[str, Any]:
    """The ``detect_lfw`` stage. Returns its details merged with the metrics it wrote.

    ``detect``/``out``/``metrics_out``: another backend's detection stage (``detect_lfw_mtcnn``).
    """
    dp: DetectParams = detect or params.detect
    records = load_image_records(root)
    weights = retinaface_path(params)  # weights.retinaface: fetched once, verified on every use (None for dlib)
    cached_detector(dp, weights)  # fail fast (weights, models) before any work
    chunks = chunked(records, dp.chunk_size)
    worker = functools.partial(detect_chunk, params=dp, weights=weights, root=root)
    t0 = time.perf_counter()
    if map_chunks is None:
        results = map_sequential(worker, chunks, desc=f"detect ({dp.backend})")
    else:
        results = map_chunks(worker, chunks)
    seconds = time.perf_counter() - t0
    rows = [r for chunk_rows, _ in results for r in chunk_rows]
    passes = sum(n for _, n in results)
    write_detections(rows, root / out)
    metrics, details = summarise(rows, dp.backend, seconds, passes, schedule(dp).start)
    result = write_results(root, metrics_out, DETECT_KIND, metrics, details)
    warn_unreadable(rows, "detect_lfw")
    log.info("detect_lfw: %s", json.dumps(result))
    return result


def run_detect_lfw_mtcnn(
    params: Params, root: Path = Path("."), map_chunks: ChunkMapper | None = None
) -> dict[str, Any]:
    """Stage ``detect_lfw_mtcnn``: MTCNN (Bian et al. §3.2) + the centre heuristic on every LFW image,
    into its own detections Parquet (pipelines A–C keep ``detect.backend``)."""
    dp = params.detect.model_copy(update={"backend": "mtcnn"})
    return run_detect_lfw(
        params, root, map_chunks, detect=dp, out=paths.LFW_MTCNN_DETECTIONS, metrics_out=paths.DETECT_LFW_MTCNN_METRICS
    )
