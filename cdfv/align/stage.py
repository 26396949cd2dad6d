"""Alignment stages: ``align_lfw`` (aligned 224x224 faces + ``faces.parquet`` + a contact sheet) and
``align_lfw_full@<codec>`` (pipeline B1).

``align_lfw`` reads ``images.parquet`` and ``detections.parquet``; for every readable image crops the
chosen box (or the recorded fallback box), levels the eyes, additive-resizes and pads
(:func:`cdfv.align.geometry.align_face`) and writes ``data/interim/lfw/faces/<image_id>.png``. The
face folder is built next to its final place and renamed in one step, so a killed run leaves the
previous output intact.

``align_lfw_full`` (thesis ch. 5, "decode then crop") puts the decoded whole images of
``encode_lfw_full@<codec>`` through the same crop / eye-levelling / resize / pad, with the detections
made on the ORIGINAL images, so the codec changes the pixels, never the geometry.

``align_lfw_mtcnn@<set>`` (Bian et al. §3.2) maps the MTCNN landmarks of ``detect_lfw_mtcnn`` onto a
5-point template of ``align.references`` by a least-squares similarity transform
(:mod:`cdfv.align.similarity`): 96x112 SphereFace/CosFace faces for ``sphereface_96x112``.

:func:`align_records` is the chunk-level worker the Prefect flow fans out over.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from cdfv import paths, schemas
from cdfv.align.geometry import align_face
from cdfv.chunks import ChunkMapper, chunked, map_sequential
from cdfv.config import AlignParams, Params, ParamsError
from cdfv.detect.base import LANDMARK_COLUMNS, landmarks_of
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

log = logging.getLogger(__name__)

#: declared metrics of ``align_lfw_mtcnn@<reference>`` (counts and timing in the details)
ALIGN_MTCNN_KIND = MetricKind("align_lfw_mtcnn", ("aligned_share", "landmark_rms_px"))


def align_records(
    dets: Sequence[dict[str, Any]],
    image_paths: dict[str, str],
    params: AlignParams,
    out_dir: Path,
    root: Path = Path("."),
    progress: bool = False,
    faces_dir: Path = paths.LFW_FACES_DIR,
) -> list[dict[str, Any]]:
    """Align each detection row's image; write PNGs under ``out_dir``; return faces rows.

    Row ``path`` values are ``faces_dir/<image_id>.png`` (final location, relative to the workspace
    root; default ``paths.LFW_FACES_DIR``) whatever ``out_dir`` is, so a temporary folder can be
    renamed into place. Pipeline B1 passes decoded images in ``image_paths`` and its own ``faces_dir``.
    """
    rows: list[dict[str, Any]] = []
    for det in tqdm(dets, desc="align", unit="img", disable=not progress):
        row: dict[str, Any] = {name: None for name in schemas.LFW_FACES.names}
        row.update(image_id=det["image_id"], identity=det["identity"], status=det["status"], fallback=det["fallback"])
        if det["status"] == "unreadable":
            rows.append(row)
            continue
        image = read_rgb(root / image_paths[det["image_id"]])
        a = align_face(
            image,
            (det["x1"], det["y1"], det["x2"], det["y2"]),
            landmarks_of(det),
            size=params.size,
            interpolation=params.interpolation,
            rotate_interpolation=params.rotate_interpolation,
        )
        png = encode_png(a.image)
        target = out_dir / f"{det['image_id']}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
        row.update(
            path=str(Path(faces_dir) / f"{det['image_id']}.png"),
            pad_top=a.pad[0],
            pad_bottom=a.pad[1],
            pad_left=a.pad[2],
            pad_right=a.pad[3],
            angle=a.angle,
            sha256=sha256_bytes(png),
        )
        if a.landmarks is not None:
            row.update(dict(zip(LANDMARK_COLUMNS, a.landmarks.reshape(-1).tolist())))
        rows.append(row)
    return rows


def write_faces(rows: Sequence[dict[str, Any]], out: Path) -> pa.Table:
    table = pa.Table.from_pylist(list(rows), schema=schemas.LFW_FACES)
    write_parquet_atomic(out, table, schemas.LFW_FACES)
    return table


def detections_and_images(root: Path, detections: Path, stage: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The detection rows written by ``stage`` and image_id -> PNG path; stale detections fail naming ``stage``."""
    images = read_parquet(root / paths.LFW_IMAGES, "LFW image index", stage="ingest_lfw").to_pylist()
    dets = read_parquet(root / detections, "LFW detections", stage=stage).to_pylist()
    image_paths = {r["image_id"]: r["path"] for r in images}
    missing = [d["image_id"] for d in dets if d["image_id"] not in image_paths]
    if missing:
        raise FileNotFoundError(
            f"{root / detections}: {len(missing)} image(s) not in images.parquet (e.g. {missing[0]}); "
            f"it is stale: run `dvc repro {stage}`."
        )
    return dets, image_paths


def run_align_lfw(params: Params, root: Path = Path("."), map_chunks: ChunkMapper | None = None) -> dict[str, Any]:
    """The ``align_lfw`` stage. Returns the counts it wrote to its details file (no declared metrics: what
    alignment changes shows in the evaluation). ``map_chunks``: see :mod:`cdfv.detect.stage`."""
    from cdfv.align.contact_sheet import write_contact_sheet

    ap: AlignParams = params.align
    dets, image_paths = detections_and_images(root, paths.LFW_DETECTIONS, "detect_lfw")
    chunks = chunked(dets, params.detect.chunk_size)
    t0 = time.perf_counter()
    with atomic_path(root / paths.LFW_FACES_DIR) as tmp:
        tmp.mkdir(parents=True)
        worker = functools.partial(align_records, image_paths=image_paths, params=ap, out_dir=tmp, root=root)
        results = map_sequential(worker, chunks, desc="align") if map_chunks is None else map_chunks(worker, chunks)
        rows = [r for chunk_rows in results for r in chunk_rows]
        seconds = time.perf_counter() - t0
        write_faces(rows, root / paths.LFW_FACES)
    write_contact_sheet(root, dets, rows, image_paths, ap.contact_sheet, ap.seed, root / paths.ALIGN_CONTACT_SHEET)
    aligned = sum(r["path"] is not None for r in rows)
    metrics = {
        "images": len(rows),
        "aligned": aligned,
        "no_face_fallback": sum(r["status"] == "no_face" for r in rows),
        "unreadable": sum(r["status"] == "unreadable" for r in rows),
        "ms_per_image": round(1000 * seconds / aligned, 3) if aligned else None,  # incl. PNG read/encode/write
        "size": ap.size,
    }
    write_json_atomic(root / paths.ALIGN_LFW_DETAILS, metrics)
    log.info("align_lfw: %s", metrics)
    return metrics


def run_align_lfw_full(params: Params, codec_name: str, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Stage ``align_lfw_full@<codec_name>``: align the decoded images with the original detections."""
    root = Path(root)
    params.eval.b1_codec(codec_name)
    index = read_parquet(
        root / paths.full_codec_index(codec_name),
        f"B1 decoded images of {codec_name}",
        stage=f"encode_lfw_full@{codec_name}",
    ).to_pylist()
    dets = read_parquet(root / paths.LFW_DETECTIONS, "LFW detections", stage="detect_lfw").to_pylist()
    decoded = {r["image_id"]: r["decoded"] for r in index if r["status"] == "ok"}
    det_of = {d["image_id"]: d for d in dets}
    missing = sorted(set(decoded) - set(det_of))
    if missing:
        raise FileNotFoundError(
            f"{root / paths.LFW_DETECTIONS}: no detection for {len(missing)} decoded image(s) (e.g. {missing[0]}); "
            "it is stale: run `dvc repro detect_lfw`."
        )
    out_dir = paths.full_faces_dir(codec_name)
    with atomic_path(root / out_dir) as tmp:
        tmp.mkdir(parents=True)
        rows = align_records(
            [det_of[i] for i in sorted(decoded)],
            decoded,
            params.align,
            tmp / "faces",
            root,
            progress=True,
            faces_dir=out_dir / "faces",
        )
        write_faces(rows, tmp / "faces.parquet")
    return {
        "codec": codec_name,
        "faces": sum(r["path"] is not None for r in rows),
        "no_face_fallback": sum(r["status"] == "no_face" for r in rows),
    }


def align_mtcnn_records(
    dets: Sequence[dict[str, Any]],
    image_paths: dict[str, str],
    ref_name: str,
    params: AlignParams,
    out_dir: Path,
    root: Path = Path("."),
) -> list[dict[str, Any]]:
    """Similarity-align each detection's image to template ``ref_name``; write PNGs; return faces rows.

    ``no_face`` rows are aligned from their fallback box (:func:`cdfv.align.similarity.box_landmarks`).
    Row ``path`` values point at the final folder (``paths.mtcnn_faces_dir(ref_name)/faces``).
    """
    from cdfv.align.similarity import align_to_reference, box_landmarks

    ref = params.references[ref_name]
    final = paths.mtcnn_faces_dir(ref_name) / "faces"
    rows: list[dict[str, Any]] = []
    for det in dets:
        row: dict[str, Any] = {name: None for name in schemas.LFW_FACES.names}
        row.update(image_id=det["image_id"], identity=det["identity"], status=det["status"], fallback=det["fallback"])
        if det["status"] == "unreadable":
            rows.append(row)
            continue
        image = read_rgb(root / image_paths[det["image_id"]])
        lm = landmarks_of(det)
        if lm is None:
            lm = box_landmarks((det["x1"], det["y1"], det["x2"], det["y2"]), ref)
        a = align_to_reference(image, lm, ref, params.interpolation)
        png = encode_png(a.image)
        target = out_dir / f"{det['image_id']}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
        row.update(
            path=str(final / f"{det['image_id']}.png"),
            pad_top=0,
            pad_bottom=0,
            pad_left=0,
            pad_right=0,
            angle=a.angle,
            sha256=sha256_bytes(png),
            **dict(zip(LANDMARK_COLUMNS, a.landmarks.reshape(-1).tolist())),
        )
        row["_residual"] = a.residual if det["status"] == "ok" else None
        rows.append(row)
    return rows


def run_align_lfw_mtcnn(
    params: Params, ref_name: str, root: Path = Path("."), map_chunks: ChunkMapper | None = None
) -> dict[str, Any]:
    """Stage ``align_lfw_mtcnn@<ref_name>``: MTCNN landmarks → least-squares similarity → template-size faces."""
    ap: AlignParams = params.align
    if ref_name not in ap.references:
        raise ParamsError(f"reference set {ref_name!r} is not in align.references ({sorted(ap.references)})")
    ref = ap.references[ref_name]
    dets, image_paths = detections_and_images(root, paths.LFW_MTCNN_DETECTIONS, "detect_lfw_mtcnn")
    out = paths.mtcnn_faces_dir(ref_name)
    t0 = time.perf_counter()
    with atomic_path(root / out) as tmp:
        tmp.mkdir(parents=True)
        worker = functools.partial(
            align_mtcnn_records, image_paths=image_paths, ref_name=ref_name, params=ap, out_dir=tmp / "faces", root=root
        )
        chunks = chunked(dets, params.detect.chunk_size)
        results = (
            map_sequential(worker, chunks, desc=f"align {ref_name}")
            if map_chunks is None
            else map_chunks(worker, chunks)
        )
        rows = [r for chunk_rows in results for r in chunk_rows]
        residuals = [r.pop("_residual") for r in rows if "_residual" in r]
        seconds = time.perf_counter() - t0
        write_faces(rows, tmp / "faces.parquet")
    aligned = sum(r["path"] is not None for r in rows)
    ok_res = [v for v in residuals if v is not None]
    metrics = {
        "aligned_share": aligned / len(rows) if rows else None,
        "landmark_rms_px": float(sum(ok_res) / len(ok_res)) if ok_res else None,
    }
    details = {
        "reference": ref_name,
        "width": ref.width,
        "height": ref.height,
        "images": len(rows),
        "aligned": aligned,
        "no_face_fallback": sum(r["status"] == "no_face" for r in rows),
        "unreadable": sum(r["status"] == "unreadable" for r in rows),
        "ms_per_image": round(1000 * seconds / aligned, 3) if aligned else None,
    }
    result = write_results(root, paths.align_mtcnn_json(ref_name), ALIGN_MTCNN_KIND, metrics, details)
    log.info("align_lfw_mtcnn %s: %s", ref_name, result)
    return result
