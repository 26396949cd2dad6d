"""Coding the MTCNN-aligned LFW faces of Bian et al.: one coded set (point) per stage (see :mod:`cdfv.bian.stage`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from cdfv import paths, schemas
from cdfv.bian.models import dequantise, quantise, to_pixels, to_unit
from cdfv.bian.png import decode_map, encode_map
from cdfv.bian.points import MODELS, ORIGINAL, BianError, compnet_point
from cdfv.chunks import chunked
from cdfv.config import Params, ParamsError
from cdfv.io import (
    atomic_path,
    encode_png,
    read_parquet,
    read_rgb,
    write_parquet_atomic,
)


def _faces(params: Params, root: Path) -> list[dict[str, Any]]:
    ref = params.bian.reference
    return read_parquet(
        root / paths.mtcnn_faces_index(ref), f"LFW faces aligned to {ref}", f"align_lfw_mtcnn@{ref}"
    ).to_pylist()


def _device(params: Params) -> torch.device:
    from cdfv.bian.train import pick_device

    return pick_device(params.bian.device)


# ---------------------------------------------------------------------------------------------
# Coding the LFW faces
# ---------------------------------------------------------------------------------------------
def _row(face: dict[str, Any], point: str, status: str, error: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schemas.BIAN_CODED.names}
    row.update(image_id=face["image_id"], identity=face["identity"], point=point, status=status, error=error)
    return row


def _summary(rows: list[dict[str, Any]], point: str, seconds: float) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    total = sum(r["bytes"] for r in ok)
    psnrs = [r["psnr"] for r in ok if r["psnr"] is not None and np.isfinite(r["psnr"])]
    return {
        "point": point,
        "images": len(ok),
        "failed": len(rows) - len(ok),
        "size_mb": total / 1e6,
        "bpp": float(np.mean([r["bpp"] for r in ok])) if ok else None,
        "psnr": float(np.mean(psnrs)) if psnrs else None,
        "seconds": round(seconds, 3),
    }


def _publish(root: Path, point: str, tmp: Path, rows: list[dict[str, Any]], t0: float) -> dict[str, Any]:
    write_parquet_atomic(tmp / "index.parquet", pa.Table.from_pylist(rows, schema=schemas.BIAN_CODED))
    summary = _summary(rows, point, time.perf_counter() - t0)
    (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def run_bian_code_original(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``bian_code_original``: each aligned face as a PNG at ``bian.png_level`` (Table 1, row 1)."""
    faces, point, t0 = _faces(params, root), ORIGINAL, time.perf_counter()
    rel = paths.bian_point_dir(point)
    rows = []
    with atomic_path(root / rel) as tmp:
        (tmp / "bitstreams").mkdir(parents=True)
        for f in tqdm(faces, desc="Original PNG", unit="img"):
            if not f.get("path"):
                rows.append(_row(f, point, "no_input", f"face status {f.get('status')}"))
                continue
            img = read_rgb(root / f["path"])
            data = encode_png(img, params.bian.png_level)
            name = f"bitstreams/{f['image_id']}.png"
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
            row = _row(f, point, "ok")
            row.update(bytes=len(data), bpp=8.0 * len(data) / (img.shape[0] * img.shape[1]))
            row.update(bitstream=(rel / name).as_posix(), decoded=(rel / name).as_posix())
            rows.append(row)
        return _publish(root, point, tmp, rows, t0)


@torch.no_grad()
def code_faces_compnet(
    net: Any, images: list[np.ndarray], level: int, device: torch.device
) -> list[tuple[bytes, np.ndarray, np.ndarray]]:
    """(PNG bytes of the quantised map, the map, the decoded face) of each uint8 HxWx3 face.

    The decoder starts from the PNG bytes only: decode → dequantise → RecNet (the real bitstream path).
    """
    x = to_unit(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(device))
    q = quantise(net.compnet(x)).cpu().numpy()
    blobs = [encode_map(m, level) for m in q]
    c, h, w = q.shape[1:]
    decoded_maps = np.stack([decode_map(b, c, h, w) for b in blobs])
    if not np.array_equal(decoded_maps, q):  # PNG is lossless: anything else is a bug
        raise BianError("PNG round trip of the compact map is not lossless")
    z = dequantise(torch.from_numpy(decoded_maps).to(device))
    rec = to_pixels(net.recnet(z)).permute(0, 2, 3, 1).cpu().numpy()
    return [(b, m, r) for b, m, r in zip(blobs, q, rec)]


def run_bian_code_compnet(params: Params, channels: int, model: str, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``bian_code_compnet@<C>-<model>``: CompNet → PNG → RecNet on every LFW face."""
    from cdfv.bian.train import load_net
    from cdfv.rd.metrics import psnr

    if channels not in params.bian.channels or model not in MODELS:
        raise ParamsError(f"CompNet C={channels} {model}: channels must be in bian.channels, model in {MODELS}")
    net, _ = load_net(root / paths.bian_model_dir(model, channels) / "model.pt", params)
    device = _device(params)
    net.to(device)
    faces, point, t0 = _faces(params, root), compnet_point(channels, model), time.perf_counter()
    rel = paths.bian_point_dir(point)
    rows = [_row(f, point, "no_input", f"face status {f.get('status')}") for f in faces if not f.get("path")]
    todo = [f for f in faces if f.get("path")]
    with atomic_path(root / rel) as tmp:
        for d in ("bitstreams", "decoded"):
            (tmp / d).mkdir(parents=True)
        for part in tqdm(chunked(todo, params.bian.batch_size), desc=f"code {point}", unit="batch"):
            imgs = [read_rgb(root / f["path"]) for f in part]
            for f, img, (blob, _, rec) in zip(part, imgs, code_faces_compnet(net, imgs, params.bian.png_level, device)):
                bs, dec = f"bitstreams/{f['image_id']}.png", f"decoded/{f['image_id']}.png"
                for name, data in ((bs, blob), (dec, encode_png(rec))):
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / name).write_bytes(data)
                row = _row(f, point, "ok")
                row.update(
                    bytes=len(blob),
                    bpp=8.0 * len(blob) / (img.shape[0] * img.shape[1]),
                    psnr=psnr(img, rec),
                    bitstream=(rel / bs).as_posix(),
                    decoded=(rel / dec).as_posix(),
                )
                rows.append(row)
        return _publish(root, point, tmp, rows, t0)


def run_bian_code_codec(params: Params, codec_name: str, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``bian_code_codec@<codec>``: the 112x96 faces through :func:`cdfv.encode.loop.code_chunk`."""
    from cdfv.codecs.registry import get_codec
    from cdfv.encode.border import pad_to_multiple
    from cdfv.encode.loop import code_chunk, write_coded

    if codec_name not in params.bian.codecs:
        raise ParamsError(f"codec {codec_name!r} is not listed in bian.codecs {params.bian.codecs}")
    entry = params.codecs.get(codec_name)
    codec = get_codec(codec_name, params.encode, entry.target_bpp if entry else None)
    faces, point, t0 = _faces(params, root), codec_name, time.perf_counter()
    ref = params.align.references[params.bian.reference]
    # learned codecs: sides multiples of 64 (112x96 -> 128x128); the others code the face as is (multiples of 8)
    pads = pad_to_multiple(ref.height, ref.width, 64 if codec.spec.family == "learned" else 8)
    workers = params.encode.workers or os.cpu_count() or 1
    rel = paths.bian_point_dir(point)
    rows = [_row(f, point, "no_input", f"face status {f.get('status')}") for f in faces if not f.get("path")]
    todo = [f for f in faces if f.get("path")]
    with atomic_path(root / rel) as tmp:
        tmp.mkdir(parents=True)
        for part in tqdm(chunked(todo, params.bian.batch_size), desc=f"code {point}", unit="batch"):
            ids = [f["image_id"] for f in part]
            originals = [read_rgb(root / f["path"]) for f in part]
            coded, errors = code_chunk(
                codec, originals, [pads] * len(part), ids, params.encode.on_error, False, workers
            )
            for f, img, c, err in zip(part, originals, coded, errors):
                if c is None:
                    rows.append(_row(f, point, "error", err))
                    continue
                bs, dec = write_coded(tmp, rel, f["image_id"], codec, c)
                row = _row(f, point, "ok")
                row.update(
                    bytes=c.n_bytes,
                    bpp=8.0 * c.n_bytes / (img.shape[0] * img.shape[1]),
                    psnr=c.psnr,
                    bitstream=bs,
                    decoded=dec,
                )
                rows.append(row)
        return _publish(root, point, tmp, rows, t0)
