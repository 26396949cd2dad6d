"""The one encode → decode → measure loop every codec stage runs (thesis §5.6, §6.2).

A chunk of original images is padded to the codec's input size, encoded to real bitstreams,
decoded, cropped back to the original window and measured (PSNR and MS-SSIM on the original
window, bpp from the bytes the codec counts). Failures are isolated per image: a batch that fails
is retried image by image so the culprit is named; ``on_error: skip`` records it and goes on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cdfv import paths
from cdfv.codecs.base import Codec, CodecError, LatentCheckError
from cdfv.encode.border import Pads, crop_padding, pad_image
from cdfv.errors import CdfvError
from cdfv.io import read_parquet
from cdfv.rd.metrics import ms_ssim, psnr

#: MS-SSIM's five dyadic scales with an 11-px window need sides > 160 px (e.g. not 112x96 faces)
MS_SSIM_MIN = 160


class EncodeError(CdfvError, RuntimeError):
    """An image the codec could not encode or decode (names image and codec; fails the stage)."""


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


def encode_robust(
    codec: Codec,
    images: Sequence[np.ndarray],
    ids: Sequence[str],
    on_error: str = "fail",
    latents: bool = False,
    workers: int = 1,
) -> Encoded:
    """Encode a batch; when it fails, retry image by image to name the culprit.

    ``on_error='fail'`` raises :class:`EncodeError` naming the image and codec; ``'skip'`` records the
    message for that image and keeps the others. A latent self-check mismatch
    (:class:`~cdfv.codecs.LatentCheckError`) is never retried or skipped: it fails naming the images.
    """
    try:
        return _encode_all(codec, images, latents, workers)
    except LatentCheckError as err:
        named = ", ".join(ids[i] for i in err.indices)
        raise EncodeError(
            f"{codec.name}: {err} (image(s) {named}); the latents would not match the bitstreams"
        ) from None
    except CodecError:
        pass
    out = Encoded([], [], [] if latents else None)
    for image, image_id in zip(images, ids, strict=True):
        try:
            one = _encode_all(codec, [image], latents, 1)
        except LatentCheckError as err:
            raise EncodeError(f"{codec.name}: {err} (image {image_id})") from None
        except CodecError as err:
            msg = f"{codec.name} failed on image {image_id}: {err}"
            if on_error == "fail":
                raise EncodeError(f"{msg} (set encode.on_error: skip to record it and go on)") from None
            out.blobs.append(None)
            out.errors.append(msg)
            if out.latents is not None:
                out.latents.append(None)
            continue
        out.blobs.append(one.blobs[0])
        out.errors.append(None)
        if out.latents is not None and one.latents is not None:
            out.latents.append(one.latents[0])
    return out


def decode_robust(codec: Codec, blobs: Sequence[bytes], ids: Sequence[str], on_error: str) -> list[np.ndarray | None]:
    """Decode a batch; on failure decode one by one, raising (``fail``) or recording None (``skip``)."""
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


@dataclass
class Coded:
    """One image through the codec: bitstream, reconstruction of the original window, measures."""

    blob: bytes
    n_bytes: int  # what bpp counts (:meth:`Codec.rate_bytes`)
    coded_pixels: int  # pixels of the padded codec input
    decoded: np.ndarray  # decoded image cropped back to the original window
    psnr: float  # on the original window
    psnr_coded: float  # over the whole padded codec input
    ms_ssim: float  # on the original window (NaN when a side is <= 160 px: MS-SSIM's 5 scales need more)
    latent: np.ndarray | None = None  # entropy-decoded ŷ (latents=True)


def code_chunk(
    codec: Codec,
    originals: Sequence[np.ndarray],
    pads: Sequence[Pads],
    ids: Sequence[str],
    on_error: str = "fail",
    latents: bool = False,
    workers: int = 1,
) -> tuple[list[Coded | None], list[str | None]]:
    """Pad, encode, decode, crop back and measure a chunk of images.

    Returns per image a :class:`Coded` (None where it failed) and the failure message. Images of
    different padded sizes are encoded in separate batches (learned codecs batch equal sizes).
    MS-SSIM is ``nan`` for windows of :data:`MS_SSIM_MIN` px or less (its five scales do not fit).
    """
    inputs = [pad_image(o, p) for o, p in zip(originals, pads, strict=True)]
    coded: list[Coded | None] = [None] * len(inputs)
    errors: list[str | None] = [None] * len(inputs)
    jobs: list[tuple[int, int, bytes, np.ndarray, np.ndarray | None]] = []  # (index, rate bytes, blob, decoded, ŷ)
    for shape in sorted({x.shape for x in inputs}):
        sel = [i for i, x in enumerate(inputs) if x.shape == shape]
        enc = encode_robust(codec, [inputs[i] for i in sel], [ids[i] for i in sel], on_error, latents, workers)
        ok = [k for k, b in enumerate(enc.blobs) if b is not None]
        decoded = decode_robust(codec, [enc.blobs[k] for k in ok], [ids[sel[k]] for k in ok], on_error)  # type: ignore[misc]
        dec_by = dict(zip(ok, decoded, strict=True))
        for k, i in enumerate(sel):
            blob, dec = enc.blobs[k], dec_by.get(k)
            if blob is None or dec is None:
                errors[i] = enc.errors[k] or "decode failed"
            else:
                latent = enc.latents[k] if enc.latents is not None else None
                jobs.append((i, codec.rate_bytes(blob), blob, dec, latent))

    # PSNR and MS-SSIM on every core: OpenCV's filters and NumPy's kernels release the GIL
    def measure(job: tuple[int, int, bytes, np.ndarray, np.ndarray | None]) -> Coded:
        i, n_bytes, blob, dec, latent = job
        window = crop_padding(dec, pads[i])
        return Coded(
            blob=blob,
            n_bytes=n_bytes,
            coded_pixels=inputs[i].shape[0] * inputs[i].shape[1],
            decoded=window,
            psnr=psnr(originals[i], window),
            psnr_coded=psnr(inputs[i], dec),
            ms_ssim=ms_ssim(originals[i], window) if min(window.shape[:2]) > MS_SSIM_MIN else math.nan,
            latent=latent,
        )

    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(min(workers, len(jobs))) as pool:
            measured = list(pool.map(measure, jobs))
    else:
        measured = [measure(job) for job in jobs]
    for job, c in zip(jobs, measured, strict=True):
        coded[job[0]] = c
    return coded, errors


def write_coded(tmp: Path, rel_dir: Path, stem: str, codec: Codec, c: Coded) -> tuple[str, str]:
    """Write one bitstream and its decoded PNG inside the stage's temporary folder ``tmp``.

    Returns their paths as recorded in the index (``rel_dir/...``, the folder's final place).
    """
    from cdfv.io import encode_png

    bs_name, dec_name = f"bitstreams/{stem}{codec.extension}", f"decoded/{stem}.png"
    for name, data in ((bs_name, c.blob), (dec_name, encode_png(c.decoded))):
        target = tmp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)  # inside the temporary stage folder, published by one rename
    return (rel_dir / bs_name).as_posix(), (rel_dir / dec_name).as_posix()


# ---------------------------------------------------------------------------------------------
# Summaries (rates are reported over probe images, paper §IV.C)
# ---------------------------------------------------------------------------------------------
def probe_ids(root: Path) -> set[str] | None:
    """Image ids of the View-2 probes (first image of each pair), None without ``pairs.parquet``."""
    pairs_path = root / paths.LFW_PAIRS
    if not pairs_path.is_file():
        return None
    return set(read_parquet(pairs_path).column("left_id").to_pylist())


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the finite values, None when there are none."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def rate_summary(rows: Sequence[dict[str, Any]], keys: Sequence[str], probes: set[str] | None) -> dict[str, Any]:
    """Means of ``keys`` over all ok images and over probe images (the paper reports probes)."""
    ok = [r for r in rows if r["status"] == "ok"]

    def block(sel: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"n": len(sel), **{k: mean([r[k] for r in sel]) for k in keys}}

    out: dict[str, Any] = {
        "all": block(ok),
        "n_images": len(rows),
        "n_failed": sum(r["status"] == "error" for r in rows),
    }
    out["n_no_input"] = sum(r["status"] == "no_input" for r in rows)
    if probes is not None:
        out["probes"] = block([r for r in ok if r["image_id"] in probes])
    return out
