"""Stages ``encode_lfw@<codec>`` and ``latents_vggface2@<codec>`` (issue 4).

``encode_lfw``: every aligned 224^2 face (``faces.parquet``) -> 16 px black border (256^2 codec input)
-> codec -> real bitstream -> decode -> border removed -> 224^2 decoded face (pipeline B2), with bpp
over 256^2 and 224^2, PSNR and MS-SSIM on the 224^2 face. Learned codecs with ``latents: true`` also
store entropy-decoded ŷ crops (N x 14 x 14, pipeline C) as latent shards. Everything is written to a
temporary folder renamed onto ``data/processed/lfw/<codec>`` at the end (atomic).

``latents_vggface2``: the cResNet39 training inputs: VGGFace2 112^2 -> 256 bilinear -> crop 224
(variant 0 = centre; 1..K-1 = random crop + grey with prob. p) -> pad 256 -> encoder -> ŷ -> 14x14.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from cdfv.errors import CdfvError
from cdfv import paths
from cdfv.align import codec_input, load_face, strip_border, vggface2_view
from cdfv.codecs import Codec, CodecError, codec_from_params, get_codec, parse_codec_name
from cdfv.config import Params, ParamsError
from cdfv.io import atomic_path, encode_png, read_parquet, read_rgb, write_json_atomic, write_parquet_atomic
from cdfv.rd import bpp, ms_ssim_batch, psnr
from cdfv.schemas import CODEC_INDEX
from cdfv.shards import LatentShardWriter, centre_crop

LATENT_CROP = 14


class EncodeError(CdfvError, RuntimeError):
    """An image the codec could not encode (names image and codec; fails the stage)."""


@dataclass
class Encoded:
    """Bitstreams (None where failed, with the reason in ``errors``) and optional ŷ of one batch."""

    blobs: list[bytes | None]
    errors: list[str | None]
    latents: list[np.ndarray | None] | None = None


def _encode_all(codec: Codec, images: Sequence[np.ndarray], latents: bool, workers: int) -> Encoded:
    n = len(images)
    if latents:
        blobs, lat = codec.encode_with_latents(images)  # type: ignore[attr-defined]
        return Encoded(list(blobs), [None] * n, list(lat))
    if workers > 1 and codec.spec.family in ("jpeg", "jpeg2000"):
        with ThreadPoolExecutor(workers) as pool:  # Pillow and OpenJPEG release the GIL
            return Encoded(list(pool.map(codec.encode, images)), [None] * n)
    return Encoded(list(codec.encode_batch(images)), [None] * n)


def encode_robust(codec: Codec, images: Sequence[np.ndarray], ids: Sequence[str], on_error: str = "fail",
                  latents: bool = False, workers: int = 1) -> Encoded:  # fmt: skip
    """Encode a batch; when it fails, retry image by image to name the culprit.

    ``on_error='fail'`` raises :class:`EncodeError` naming the image and codec; ``'skip'`` records the
    message for that image and keeps the others.
    """
    try:
        return _encode_all(codec, images, latents, workers)
    except CodecError:
        pass
    out = Encoded([], [], [] if latents else None)
    for image, image_id in zip(images, ids, strict=True):
        try:
            one = _encode_all(codec, [image], latents, 1)
            out.blobs.append(one.blobs[0])
            out.errors.append(None)
            if out.latents is not None and one.latents is not None:
                out.latents.append(one.latents[0])
        except CodecError as err:
            msg = f"{codec.name} failed on image {image_id}: {err}"
            if on_error == "fail":
                raise EncodeError(f"{msg} (set encode.on_error: skip to record it and go on)") from None
            out.blobs.append(None)
            out.errors.append(msg)
            if out.latents is not None:
                out.latents.append(None)
    return out


def _decode_robust(codec: Codec, blobs: list[bytes], ids: Sequence[str], on_error: str) -> list[np.ndarray | None]:
    try:
        return list(codec.decode_batch(blobs))
    except CodecError:
        pass
    out: list[np.ndarray | None] = []
    for b, image_id in zip(blobs, ids, strict=True):
        try:
            out.append(codec.decode(b))
        except CodecError as err:
            if on_error == "fail":
                raise EncodeError(f"{codec.name} could not decode its bitstream of image {image_id}: {err}") from None
            out.append(None)
    return out


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _probe_ids(root: Path) -> set[str] | None:
    pairs_path = root / paths.LFW_PAIRS
    if not pairs_path.is_file():
        return None
    return set(read_parquet(pairs_path).column("left_id").to_pylist())


def _mean(values: Sequence[float]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def rate_summary(rows: Sequence[dict[str, Any]], probes: set[str] | None) -> dict[str, Any]:
    """Mean rate/distortion over all ok images and over probe images (the paper reports probes)."""
    ok = [r for r in rows if r["status"] == "ok"]

    def block(sel: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {
            "n": len(sel),
            "bpp_256": _mean([r["bpp_256"] for r in sel]),
            "bpp_224": _mean([r["bpp_224"] for r in sel]),
            "psnr": _mean([r["psnr"] for r in sel]),
            "ms_ssim": _mean([r["ms_ssim"] for r in sel]),
        }

    out = {"all": block(ok), "n_images": len(rows), "n_failed": sum(r["status"] == "error" for r in rows)}
    out["n_no_input"] = sum(r["status"] == "no_input" for r in rows)
    if probes is not None:
        out["probes"] = block([r for r in ok if r["image_id"] in probes])
    return out


def run_encode_lfw(params: Params, codec_name: str, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Stage ``encode_lfw@<codec_name>``; returns the rate summary written to ``rate/<codec>.json``."""
    root = Path(root)
    codec = codec_from_params(codec_name, params)
    entry = params.codecs[codec_name]
    settings = params.encode
    pad = params.align.codec_pad
    faces = read_parquet(root / paths.LFW_FACES, "aligned faces", stage="align_lfw").to_pylist()
    out_dir = root / paths.codec_dir(codec_name)
    rel_dir = paths.codec_dir(codec_name)
    want_latents = entry.latents
    workers = settings.workers or os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    with atomic_path(out_dir) as tmp:
        (tmp / "bitstreams").mkdir(parents=True)
        (tmp / "decoded").mkdir()
        writer = (
            LatentShardWriter(tmp / "latents", codec_name, codec.spec.quality, settings.shards.shard_rows,
                              settings.shards.zstd_level)  # fmt: skip
            if want_latents
            else None
        )
        todo = [f for f in faces if f.get("path")]
        for f in faces:
            if not f.get("path"):
                rows.append(_row(f, codec_name, "no_input", f"face status {f.get('status')}: no aligned face"))
        for sl in tqdm(_chunks(len(todo), settings.chunk_size), desc=f"encode {codec_name}", unit="chunk"):
            part = todo[sl]
            ids = [f["image_id"] for f in part]
            face224 = [load_face(root / f["path"]) for f in part]
            inputs = [codec_input(face, pad) for face in face224]
            enc = encode_robust(codec, inputs, ids, settings.on_error, want_latents, workers)
            ok = [i for i, b in enumerate(enc.blobs) if b is not None]
            decoded = _decode_robust(codec, [enc.blobs[i] for i in ok], [ids[i] for i in ok], settings.on_error)
            dec_by = dict(zip(ok, decoded, strict=True))
            good = [i for i in ok if dec_by[i] is not None]
            ssim = (ms_ssim_batch(np.stack([face224[i] for i in good]),
                                  np.stack([strip_border(dec_by[i], pad) for i in good]))  # fmt: skip
                    if good else [])  # fmt: skip
            ssim_by = dict(zip(good, ssim, strict=True))
            for i, f in enumerate(part):
                blob, dec = enc.blobs[i], dec_by.get(i)
                if blob is None or dec is None:
                    rows.append(_row(f, codec_name, "error", enc.errors[i] or "decode failed"))
                    continue
                stem = f["image_id"]
                bs_rel = rel_dir / "bitstreams" / f"{stem}{codec.extension}"
                dec_rel = rel_dir / "decoded" / f"{stem}.png"
                _write(tmp / "bitstreams" / f"{stem}{codec.extension}", blob)
                dec224 = np.ascontiguousarray(strip_border(dec, pad))
                _write(tmp / "decoded" / f"{stem}.png", encode_png(dec224))
                n_bytes = codec.rate_bytes(blob)
                h, w = inputs[i].shape[:2]
                row = _row(f, codec_name, "ok", None)
                row.update(
                    bytes=n_bytes,
                    bpp_256=bpp(n_bytes, h * w),
                    bpp_224=bpp(n_bytes, (h - 2 * pad) * (w - 2 * pad)),
                    psnr=psnr(face224[i], dec224),
                    ms_ssim=float(ssim_by[i]),
                    psnr_256=psnr(inputs[i], dec),
                    bitstream=bs_rel.as_posix(),
                    decoded=dec_rel.as_posix(),
                )
                rows.append(row)
                if writer is not None and enc.latents is not None and enc.latents[i] is not None:
                    writer.add(stem, centre_crop(enc.latents[i], LATENT_CROP), image_id=stem,
                               identity=f.get("identity") or "", bpp=row["bpp_256"])  # fmt: skip
        if writer is not None:
            writer.close()
        rows.sort(key=lambda r: r["image_id"])
        write_parquet_atomic(tmp / "index.parquet", pa.Table.from_pylist(rows, schema=CODEC_INDEX), CODEC_INDEX)
    spec = codec.spec
    summary = {
        "codec": codec_name,
        "series": spec.series,
        "family": spec.family,
        "quality": spec.quality,
        "target_bpp": getattr(codec, "target_bpp", None),
        **rate_summary(rows, _probe_ids(root)),
    }
    if writer is not None:
        summary["latent_storage_bytes"] = writer.stored_bytes
        summary["latent_storage_vs_bitstream"] = writer.stored_bytes / max(1, sum(r["bytes"] or 0 for r in rows))
    write_json_atomic(root / paths.rate_json(codec_name), summary)
    return summary


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)  # inside the temporary stage folder, published by one rename


def _row(face: dict[str, Any], codec: str, status: str, error: str | None) -> dict[str, Any]:
    return dict(image_id=face["image_id"], identity=face.get("identity"), codec=codec, status=status, error=error,
                bytes=None, bpp_256=None, bpp_224=None, psnr=None, ms_ssim=None, psnr_256=None,
                bitstream=None, decoded=None)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# VGGFace2 latent shards for cResNet39 training
# ---------------------------------------------------------------------------------------------
def variant_rng(seed: int, image_id: str, variant: int) -> np.random.Generator:
    """Deterministic RNG of one augmented variant (independent of processing order)."""
    return np.random.default_rng([seed, zlib.crc32(image_id.encode()), variant])


def run_latents_vggface2(params: Params, codec_name: str, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Stage ``latents_vggface2@<codec_name>``: shards of ŷ crops for every VGGFace2 image x variant."""
    root = Path(root)
    spec = parse_codec_name(codec_name)
    if spec.architecture != "bmshj2018-hyperprior":
        raise ParamsError(f"latents_vggface2@{codec_name}: latent shards need a Balle2018 (hyperprior) codec")
    codec = get_codec(codec_name, params.encode)
    cfg, settings = params.encode.vggface2, params.encode
    pad = params.align.codec_pad
    images = read_parquet(root / paths.VGGFACE2_IMAGES, "VGGFace2 images", stage="ingest_vggface2").to_pylist()
    index_path = root / paths.vggface2_latent_index(codec_name)
    jobs = [(img, k) for img in images for k in range(cfg.variants)]
    bit_bytes = 0
    with atomic_path(index_path.parent) as tmp:
        writer = LatentShardWriter(tmp, codec_name, spec.quality, settings.shards.shard_rows, settings.shards.zstd_level)
        for sl in tqdm(_chunks(len(jobs), settings.learned.batch_size * 4), desc=f"latents {codec_name}", unit="chunk"):
            part = jobs[sl]
            inputs, keys = [], []
            for img, k in part:
                src = read_rgb(root / img["path"])
                rng = None if k == 0 else variant_rng(cfg.seed, img["image_id"], k)
                view = vggface2_view(src, rng, cfg.resize, cfg.crop, cfg.grayscale_p)
                inputs.append(codec_input(view, pad))
                keys.append(f"{img['image_id']}#{k}")
            enc = encode_robust(codec, inputs, keys, settings.on_error, latents=True)
            for (img, k), key, blob, lat, im in zip(part, keys, enc.blobs, enc.latents or [], inputs, strict=True):
                if blob is None or lat is None:
                    continue
                n_bytes = codec.rate_bytes(blob)
                bit_bytes += n_bytes
                writer.add(key, centre_crop(lat, LATENT_CROP), image_id=img["image_id"], identity=img["identity"],
                           bpp=bpp(n_bytes, im.shape[0] * im.shape[1]), label=int(img["label"]),
                           split=img["split"], variant=k)  # fmt: skip
        writer.close()
        n_rows = len(writer)
    summary = {
        "codec": codec_name,
        "images": len(images),
        "variants": cfg.variants,
        "latents": n_rows,
        "failed": len(jobs) - n_rows,
        "mean_bpp_256": bit_bytes * 8 / max(1, n_rows) / (cfg.crop + 2 * pad) ** 2,
        "storage_bytes": writer.stored_bytes,
        "storage_vs_bitstream": writer.stored_bytes / max(1, bit_bytes),
    }
    write_json_atomic(root / paths.METRICS / "latents_vggface2" / f"{codec_name}.json", summary)
    return summary


# ---------------------------------------------------------------------------------------------
# rd_report: RD curves (dvc plots) and Bjøntegaard deltas between codec series
# ---------------------------------------------------------------------------------------------
def run_rd_report(params: Params, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Collect ``rate/<codec>.json`` of every listed codec into per-series CSVs and a BD table."""
    import csv
    import json

    from cdfv.rd import RdPoint, bd_markdown, bd_table, curves

    root = Path(root)
    cfg = params.encode.report
    rate_key = cfg.rate
    points: list[RdPoint] = []
    for name in params.codecs:
        path = root / paths.rate_json(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing. Run `dvc repro encode_lfw@{name}` first.")
        s = json.loads(path.read_text())
        block = s.get("probes") or s["all"]
        if block["n"] == 0 or block[rate_key] is None:
            continue
        points.append(RdPoint(name, s["series"], block[rate_key], block["psnr"], block["ms_ssim"]))
    out_dir = root / paths.RD_PLOTS
    with atomic_path(out_dir) as tmp:
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
    from cdfv.io import write_bytes_atomic

    write_bytes_atomic(root / paths.RD_REPORT, text.encode())
    metrics = {"anchor": cfg.anchor, "rate": rate_key, "bd": tables, "points": len(points)}
    write_json_atomic(root / paths.RD_METRICS, metrics)
    return metrics
