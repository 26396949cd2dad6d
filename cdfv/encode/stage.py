"""Codec stages: ``encode_lfw@<codec>`` (B2 / C), ``encode_lfw_full@<codec>`` (B1), ``latents_vggface2@<codec>``.

``encode_lfw`` (thesis §6.2): every aligned 224^2 face (``faces.parquet``) -> 16 px black border
(256^2 codec input) -> codec -> real bitstream -> decode -> border removed -> 224^2 decoded face
(pipeline B2), with bpp over 256^2 and 224^2, PSNR and MS-SSIM on the 224^2 face. Learned codecs with
``latents: true`` also store entropy-decoded ŷ crops (N x 14 x 14, pipeline C) as latent shards.

``encode_lfw_full`` (thesis ch. 5, "decode then crop"): each View-2 probe image (250^2 original PNG)
padded uniformly to the next multiple of 64 (250 -> 256, 3 px each side, §5.6) -> learned codec ->
decode -> cropped back to 250^2. Rate over the padded input (bpp_256) and the original (bpp_orig).
Only probes are encoded: in B1 the reference is the original image and the rate counts probes only.

``latents_vggface2`` (thesis §6.3.2): the cResNet39 training inputs: VGGFace2 112^2 -> 256 bilinear
-> crop 224 (variant 0 = centre; 1..K-1 = random crop + grey with prob. p) -> pad 256 -> encoder
-> ŷ -> 14x14.

Every stage writes into a temporary folder renamed onto its output at the end (atomic).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from cdfv import paths, schemas
from cdfv.align.views import vggface2_view
from cdfv.chunks import chunked
from cdfv.codecs.names import parse_codec_name
from cdfv.codecs.registry import codec_from_params, codec_with_weights
from cdfv.config import Params, ParamsError
from cdfv.encode.border import codec_input, pad_to_multiple, uniform_pads
from cdfv.encode.loop import code_chunk, encode_robust, probe_ids, rate_summary, write_coded
from cdfv.io import atomic_path, read_parquet, read_rgb, write_parquet_atomic
from cdfv.rd.metrics import bpp
from cdfv.results import MetricKind, write_results
from cdfv.shards import LATENT_CROP, LatentShardWriter, centre_crop

#: ``rate/<codec>.json`` and ``rate_full/<codec>.json``: probe means (the paper reports probes) of the
#: rate over the 256^2 codec input (paper eq. 7) and of PSNR / MS-SSIM; counts and other rates in the details
RATE_KIND = MetricKind("rate", ("bpp", "psnr", "ms_ssim"))
#: ``latents_vggface2/<codec>.json``: mean bpp of the stored latents and shard bytes per bitstream byte
LATENT_KIND = MetricKind("latents", ("bpp", "storage_vs_bitstream"))


def rate_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The declared rate metrics from a :func:`cdfv.encode.loop.rate_summary` (probes, else all images)."""
    block = summary.get("probes") or summary["all"]
    return {"bpp": block["bpp_256"], "psnr": block["psnr"], "ms_ssim": block["ms_ssim"]}


def _row(schema: pa.Schema, item: dict[str, Any], codec: str, status: str, error: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schema.names}
    row.update(image_id=item["image_id"], identity=item.get("identity"), codec=codec, status=status, error=error)
    return row


def run_encode_lfw(params: Params, codec_name: str, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Stage ``encode_lfw@<codec_name>``; returns the rate summary (``rate/<codec>.json`` + its details)."""
    root = Path(root)
    codec = codec_from_params(codec_name, params)
    entry = params.codecs[codec_name]
    settings = params.encode
    pads = uniform_pads(params.align.codec_pad)
    faces = read_parquet(root / paths.LFW_FACES, "aligned faces", stage="align_lfw").to_pylist()
    rel_dir = paths.codec_dir(codec_name)
    want_latents = entry.latents
    workers = settings.workers or os.cpu_count() or 1
    rows = [
        _row(schemas.CODEC_INDEX, f, codec_name, "no_input", f"face status {f.get('status')}: no aligned face")
        for f in faces
        if not f.get("path")
    ]
    writer: LatentShardWriter | None = None
    with atomic_path(root / rel_dir) as tmp:
        tmp.mkdir(parents=True)
        if want_latents:
            shards = settings.shards
            writer = LatentShardWriter(
                tmp / "latents", codec_name, codec.spec.quality, shards.shard_rows, shards.zstd_level
            )
        todo = [f for f in faces if f.get("path")]
        for part in tqdm(chunked(todo, settings.chunk_size), desc=f"encode {codec_name}", unit="chunk"):
            ids = [f["image_id"] for f in part]
            originals = [read_rgb(root / f["path"]) for f in part]
            coded, errors = code_chunk(
                codec, originals, [pads] * len(part), ids, settings.on_error, want_latents, workers
            )
            for f, c, err in zip(part, coded, errors, strict=True):
                if c is None:
                    rows.append(_row(schemas.CODEC_INDEX, f, codec_name, "error", err))
                    continue
                bitstream, decoded = write_coded(tmp, rel_dir, f["image_id"], codec, c)
                face_pixels = c.decoded.shape[0] * c.decoded.shape[1]
                row = _row(schemas.CODEC_INDEX, f, codec_name, "ok", None)
                row.update(
                    bytes=c.n_bytes,
                    bpp_256=bpp(c.n_bytes, c.coded_pixels),
                    bpp_224=bpp(c.n_bytes, face_pixels),
                    psnr=c.psnr,
                    ms_ssim=c.ms_ssim,
                    psnr_256=c.psnr_coded,
                    bitstream=bitstream,
                    decoded=decoded,
                )
                rows.append(row)
                if writer is not None and c.latent is not None:
                    writer.add(
                        f["image_id"],
                        centre_crop(c.latent, LATENT_CROP),
                        image_id=f["image_id"],
                        identity=f.get("identity") or "",
                        bpp=row["bpp_256"],
                    )
        if writer is not None:
            writer.close()
        rows.sort(key=lambda r: r["image_id"])
        write_parquet_atomic(
            tmp / "index.parquet", pa.Table.from_pylist(rows, schema=schemas.CODEC_INDEX), schemas.CODEC_INDEX
        )
    spec = codec.spec
    summary = {
        "codec": codec_name,
        "series": spec.series,
        "family": spec.family,
        "quality": spec.quality,
        "target_bpp": getattr(codec, "target_bpp", None),
        **rate_summary(rows, ("bpp_256", "bpp_224", "psnr", "ms_ssim"), probe_ids(root)),
    }
    if writer is not None:
        summary["latent_storage_bytes"] = writer.stored_bytes
        summary["latent_storage_vs_bitstream"] = writer.stored_bytes / max(1, sum(r["bytes"] or 0 for r in rows))
    return write_results(root, paths.rate_json(codec_name), RATE_KIND, rate_metrics(summary), summary)


# ---------------------------------------------------------------------------------------------
# Pipeline B1 (thesis ch. 5): whole images through a learned codec
# ---------------------------------------------------------------------------------------------
def run_encode_lfw_full(params: Params, codec_name: str, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Stage ``encode_lfw_full@<codec_name>``; returns the rate summary (``rate_full/<codec>.json`` + details)."""
    root = Path(root)
    params.eval.b1_codec(codec_name)
    codec = codec_with_weights(codec_name, params)
    settings = params.encode
    images = read_parquet(root / paths.LFW_IMAGES, "LFW image index", stage="ingest_lfw").to_pylist()
    by_id = {r["image_id"]: r for r in images}
    probes = probe_ids(root)
    if probes is None:
        raise FileNotFoundError(f"{root / paths.LFW_PAIRS}: missing. Run `dvc repro ingest_lfw` first.")
    missing = sorted(i for i in probes if i not in by_id)
    if missing:
        raise FileNotFoundError(
            f"{root / paths.LFW_PAIRS}: {len(missing)} probe image(s) not in images.parquet (e.g. {missing[0]}); "
            "rerun `dvc repro ingest_lfw`."
        )
    # sorted by size so a chunk holds one padded input size (learned codecs batch equal sizes)
    todo = sorted((by_id[i] for i in probes), key=lambda r: (r["height"], r["width"], r["image_id"]))
    rel_dir = paths.full_codec_dir(codec_name)
    rows: list[dict[str, Any]] = []
    with atomic_path(root / rel_dir) as tmp:
        tmp.mkdir(parents=True)
        for part in tqdm(chunked(todo, settings.chunk_size), desc=f"encode_full {codec_name}", unit="chunk"):
            originals = [read_rgb(root / r["path"]) for r in part]
            pads = [pad_to_multiple(*o.shape[:2]) for o in originals]
            coded, errors = code_chunk(codec, originals, pads, [r["image_id"] for r in part], settings.on_error)
            for img, original, pad, c, err in zip(part, originals, pads, coded, errors, strict=True):
                if c is None:
                    rows.append(_row(schemas.LFW_FULL_INDEX, img, codec_name, "error", err))
                    continue
                bitstream, decoded = write_coded(tmp, rel_dir, img["image_id"], codec, c)
                h, w = original.shape[:2]
                row = _row(schemas.LFW_FULL_INDEX, img, codec_name, "ok", None)
                row.update(
                    width=w,
                    height=h,
                    pad_top=pad[0],
                    pad_bottom=pad[1],
                    pad_left=pad[2],
                    pad_right=pad[3],
                    bytes=c.n_bytes,
                    bpp_256=bpp(c.n_bytes, c.coded_pixels),
                    bpp_orig=bpp(c.n_bytes, h * w),
                    psnr=c.psnr,
                    ms_ssim=c.ms_ssim,
                    bitstream=bitstream,
                    decoded=decoded,
                )
                rows.append(row)
        rows.sort(key=lambda r: r["image_id"])
        table = pa.Table.from_pylist(rows, schema=schemas.LFW_FULL_INDEX)
        write_parquet_atomic(tmp / "index.parquet", table, schemas.LFW_FULL_INDEX)
    spec = codec.spec
    summary = rate_summary(rows, ("bpp_256", "bpp_orig", "psnr", "ms_ssim"), probes)
    out = {
        "codec": codec_name,
        "pipeline": "B1",
        "series": spec.series,
        "quality": spec.quality,
        "n_probes": len(rows),
        "n_failed": summary["n_failed"],
        "probes": summary["probes"],
    }
    return write_results(root, paths.full_rate_json(codec_name), RATE_KIND, rate_metrics(summary), out)


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
    if not spec.has_latents:
        raise ParamsError(f"latents_vggface2@{codec_name}: latent shards need a codec with integer latents (Balle2018)")
    codec = codec_with_weights(codec_name, params)
    cfg, settings = params.encode.vggface2, params.encode
    pad = params.align.codec_pad
    images = read_parquet(root / paths.VGGFACE2_IMAGES, "VGGFace2 images", stage="ingest_vggface2").to_pylist()
    index_path = root / paths.vggface2_latent_index(codec_name)
    jobs = [(img, k) for img in images for k in range(cfg.variants)]
    bit_bytes = 0
    with atomic_path(index_path.parent) as tmp:
        writer = LatentShardWriter(
            tmp, codec_name, spec.quality, settings.shards.shard_rows, settings.shards.zstd_level
        )
        for part in tqdm(chunked(jobs, settings.learned.batch_size * 4), desc=f"latents {codec_name}", unit="chunk"):
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
                writer.add(
                    key,
                    centre_crop(lat, LATENT_CROP),
                    image_id=img["image_id"],
                    identity=img["identity"],
                    bpp=bpp(n_bytes, im.shape[0] * im.shape[1]),
                    label=int(img["label"]),
                    split=img["split"],
                    variant=k,
                )
        writer.close()
        n_rows = len(writer)
    metrics = {
        "bpp": bit_bytes * 8 / max(1, n_rows) / (cfg.crop + 2 * pad) ** 2,  # over the 256^2 codec input
        "storage_vs_bitstream": writer.stored_bytes / max(1, bit_bytes),
    }
    details = {
        "codec": codec_name,
        "images": len(images),
        "variants": cfg.variants,
        "latents": n_rows,
        "failed": len(jobs) - n_rows,
        "storage_bytes": writer.stored_bytes,
    }
    return write_results(root, paths.vggface2_latent_json(codec_name), LATENT_KIND, metrics, details)
