"""Pipeline B1 of the thesis (ch. 5, "decode then crop"): stages ``encode_lfw_full@<codec>`` and
``align_lfw_full@<codec>``.

``encode_lfw_full``: each probe image of LFW View 2 (the 250x250 original PNG) is padded with black,
uniformly on both sides, to the next multiple of 64 (250 -> 256: 3 px each side, thesis §5.6) ->
learned codec (real range-coded bitstream) -> decode -> cropped back to 250x250 -> PNG. Rate = y + z
string bits over the padded input (bpp_256, paper eq. 7) and over the original 250^2 (bpp_orig).
Only probes are encoded: in B1 the reference is the original image and the rate counts probes only.

``align_lfw_full``: the decoded 250^2 images go through the same crop / eye-levelling / additive
resize / pad as the originals (:func:`cdfv.align_stage.align_records`), with the detections made on
the ORIGINAL image (``detections.parquet``), so the codec changes the pixels, never the geometry.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
from tqdm import tqdm

from cdfv import paths, schemas
from cdfv.codecs import get_codec, parse_codec_name
from cdfv.config import Params, ParamsError
from cdfv.encode import _decode_robust, encode_robust
from cdfv.io import atomic_path, encode_png, read_parquet, read_rgb, write_json_atomic, write_parquet_atomic
from cdfv.rd import bpp, ms_ssim_batch, psnr

#: Learned codecs need H and W multiples of 64 (CompressAI, thesis §5.6).
CODEC_MULTIPLE = 64

Pads = tuple[int, int, int, int]  # top, bottom, left, right


def pad_to_multiple(height: int, width: int, multiple: int = CODEC_MULTIPLE) -> Pads:
    """Black border ``(top, bottom, left, right)`` bringing ``height x width`` to multiples of ``multiple``.

    Split uniformly over both sides (thesis §5.6); an odd pixel goes to the bottom/right.
    """
    if height <= 0 or width <= 0 or multiple <= 0:
        raise ValueError(f"bad size {height}x{width} / multiple {multiple}")
    dh = math.ceil(height / multiple) * multiple - height
    dw = math.ceil(width / multiple) * multiple - width
    return dh // 2, dh - dh // 2, dw // 2, dw - dw // 2


def pad_image(image: np.ndarray, pads: Pads) -> np.ndarray:
    """Add the black border ``pads`` (uint8 HxWx3)."""
    top, bottom, left, right = pads
    return cv2.copyMakeBorder(np.ascontiguousarray(image), top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def crop_padding(image: np.ndarray, pads: Pads) -> np.ndarray:
    """Inverse of :func:`pad_image`: the original ``H x W`` window of a padded (decoded) image."""
    top, bottom, left, right = pads
    h, w = image.shape[:2]
    if top + bottom >= h or left + right >= w:
        raise ValueError(f"cannot remove a {pads} border from a {h}x{w} image")
    return np.ascontiguousarray(image[top : h - bottom, left : w - right])


def _check_codec(params: Params, codec_name: str) -> None:
    if codec_name not in params.eval.b1_codecs:
        raise ParamsError(
            f"codec {codec_name!r} is not listed in eval.b1_codecs (pipeline B1); listed: {params.eval.b1_codecs or 'none'}"
        )
    if parse_codec_name(codec_name).family != "learned":  # also validated by the params model
        raise ParamsError(f"{codec_name}: pipeline B1 takes learned codecs only")


def _probe_ids(root: Path) -> list[str]:
    pairs = read_parquet(root / paths.LFW_PAIRS, "LFW View-2 pairs", stage="ingest_lfw")
    return sorted(set(pairs.column("left_id").to_pylist()))


def _mean(values: Sequence[float | None]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def _row(img: dict[str, Any], codec: str, status: str, error: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schemas.LFW_FULL_INDEX.names}
    row.update(image_id=img["image_id"], identity=img.get("identity"), codec=codec, status=status, error=error)
    return row


def run_encode_lfw_full(params: Params, codec_name: str, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Stage ``encode_lfw_full@<codec_name>``; returns the rate summary written to ``rate_full/<codec>.json``."""
    root = Path(root)
    _check_codec(params, codec_name)
    codec = get_codec(codec_name, params.encode)
    settings = params.encode
    images = read_parquet(root / paths.LFW_IMAGES, "LFW image index", stage="ingest_lfw").to_pylist()
    by_id = {r["image_id"]: r for r in images}
    probes = _probe_ids(root)
    missing = [i for i in probes if i not in by_id]
    if missing:
        raise FileNotFoundError(
            f"{root / paths.LFW_PAIRS}: {len(missing)} probe image(s) not in images.parquet (e.g. {missing[0]}); "
            "rerun `dvc repro ingest_lfw`."
        )
    todo = sorted((by_id[i] for i in probes), key=lambda r: (r["height"], r["width"], r["image_id"]))
    rel_dir = paths.full_codec_dir(codec_name)
    rows: list[dict[str, Any]] = []
    with atomic_path(root / rel_dir) as tmp:
        (tmp / "bitstreams").mkdir(parents=True)
        (tmp / "decoded").mkdir()
        chunks = [todo[i : i + settings.chunk_size] for i in range(0, len(todo), settings.chunk_size)]
        for part in tqdm(chunks, desc=f"encode_full {codec_name}", unit="chunk"):
            originals = [read_rgb(root / r["path"]) for r in part]
            pads = [pad_to_multiple(*o.shape[:2]) for o in originals]
            inputs = [pad_image(o, p) for o, p in zip(originals, pads, strict=True)]
            ids = [r["image_id"] for r in part]
            # a batch holds one input size (sorted above); mixed sizes are encoded per size
            for shape in sorted({x.shape for x in inputs}):
                sel = [i for i, x in enumerate(inputs) if x.shape == shape]
                enc = encode_robust(codec, [inputs[i] for i in sel], [ids[i] for i in sel], settings.on_error)
                ok = [k for k, b in enumerate(enc.blobs) if b is not None]
                dec = _decode_robust(codec, [enc.blobs[k] for k in ok], [ids[sel[k]] for k in ok], settings.on_error)
                dec_by = dict(zip(ok, dec, strict=True))
                good = [k for k in ok if dec_by[k] is not None]
                crops = {k: crop_padding(dec_by[k], pads[sel[k]]) for k in good}
                ssim = ms_ssim_batch(np.stack([originals[sel[k]] for k in good]), np.stack([crops[k] for k in good])) if good else []
                ssim_by = dict(zip(good, ssim, strict=True))
                for k, i in enumerate(sel):
                    img = part[i]
                    if k not in crops:
                        rows.append(_row(img, codec_name, "error", enc.errors[k] or "decode failed"))
                        continue
                    blob = enc.blobs[k]
                    assert blob is not None
                    stem = img["image_id"]
                    bs_rel = rel_dir / "bitstreams" / f"{stem}{codec.extension}"
                    dec_rel = rel_dir / "decoded" / f"{stem}.png"
                    for target, data in ((tmp / "bitstreams" / f"{stem}{codec.extension}", blob),
                                         (tmp / "decoded" / f"{stem}.png", encode_png(crops[k]))):  # fmt: skip
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
                    n_bytes = codec.rate_bytes(blob)
                    (h, w), (ph, pw) = originals[i].shape[:2], inputs[i].shape[:2]
                    row = _row(img, codec_name, "ok", None)
                    row.update(
                        width=w, height=h, pad_top=pads[i][0], pad_bottom=pads[i][1], pad_left=pads[i][2],
                        pad_right=pads[i][3], bytes=n_bytes, bpp_256=bpp(n_bytes, ph * pw), bpp_orig=bpp(n_bytes, h * w),
                        psnr=psnr(originals[i], crops[k]), ms_ssim=float(ssim_by[k]),
                        bitstream=bs_rel.as_posix(), decoded=dec_rel.as_posix(),
                    )  # fmt: skip
                    rows.append(row)
        rows.sort(key=lambda r: r["image_id"])
        table = pa.Table.from_pylist(rows, schema=schemas.LFW_FULL_INDEX)
        write_parquet_atomic(tmp / "index.parquet", table, schemas.LFW_FULL_INDEX)
    ok_rows = [r for r in rows if r["status"] == "ok"]
    spec = codec.spec
    summary = {
        "codec": codec_name,
        "pipeline": "B1",
        "series": spec.series,
        "quality": spec.quality,
        "n_probes": len(rows),
        "n_failed": len(rows) - len(ok_rows),
        "probes": {k: _mean([r[k] for r in ok_rows]) for k in ("bpp_256", "bpp_orig", "psnr", "ms_ssim")},
    }
    write_json_atomic(root / paths.full_rate_json(codec_name), summary)
    return summary


def run_align_lfw_full(params: Params, codec_name: str, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Stage ``align_lfw_full@<codec_name>``: align the decoded images with the original detections."""
    from cdfv.align_stage import align_records

    root = Path(root)
    _check_codec(params, codec_name)
    index = read_parquet(root / paths.full_codec_index(codec_name), f"B1 decoded images of {codec_name}",
                         stage=f"encode_lfw_full@{codec_name}").to_pylist()  # fmt: skip
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
        rows = align_records([det_of[i] for i in sorted(decoded)], decoded, params.align, tmp / "faces", root,
                             progress=True, faces_dir=out_dir / "faces")  # fmt: skip
        write_parquet_atomic(tmp / "faces.parquet", pa.Table.from_pylist(rows, schema=schemas.LFW_FACES), schemas.LFW_FACES)
    return {
        "codec": codec_name,
        "faces": sum(r["path"] is not None for r in rows),
        "no_face_fallback": sum(r["status"] == "no_face" for r in rows),
    }
