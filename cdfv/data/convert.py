"""Parallel image -> PNG conversion shared by the LFW and VGGFace2 ingest stages.

Workers decode (normalising to RGB), optionally resize, write the PNG and return its metadata;
the parent only schedules work and collects rows, so both cores are busy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cdfv.errors import CdfvError
from cdfv.io import ImageReadError, encode_png, read_rgb, sha256_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    image_id: str
    source: bytes | str  # encoded bytes or a file path
    out_path: str  # absolute PNG path to write
    size: int | None = None  # square output size (None = keep)


@dataclass(frozen=True)
class Converted:
    image_id: str
    width: int
    height: int
    sha256: str
    error: str | None = None


def to_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square on the short side, then bilinear-resize to ``size`` (no-op if already)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    sq = rgb[top : top + s, left : left + s]
    return np.asarray(Image.fromarray(sq).resize((size, size), Image.BILINEAR))


def convert_one(job: Job) -> Converted:
    try:
        rgb = read_rgb(job.source, name=job.image_id)
    except ImageReadError as err:
        return Converted(job.image_id, 0, 0, "", str(err))
    if job.size is not None:
        rgb = to_square(rgb, job.size)
    data = encode_png(rgb)
    Path(job.out_path).parent.mkdir(parents=True, exist_ok=True)
    with open(job.out_path, "wb") as f:
        f.write(data)
    return Converted(job.image_id, rgb.shape[1], rgb.shape[0], sha256_bytes(data))


class CorruptImagesError(CdfvError, ValueError):
    """Some images could not be decoded and the stage's ``on_corrupt`` param is ``fail``."""


def handle_errors(errors: list[str], where: str, on_corrupt: str, param: str) -> None:
    """Fail (listing the first files) or warn-and-skip, as ``<param> = on_corrupt`` says."""
    if not errors:
        return
    summary = f"{len(errors)} unreadable image(s) in {where}:\n  " + "\n  ".join(errors[:10])
    if on_corrupt == "fail":
        raise CorruptImagesError(summary + f"\nSet {param}: skip to report and skip them.")
    log.warning("%s\n(skipped: %s = skip)", summary, param)
    print(f"warning: skipped {len(errors)} unreadable image(s) in {where} ({param} = skip)")


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else (os.cpu_count() or 1)


def convert_all(jobs: Iterable[Job], total: int | None, workers: int, desc: str) -> Iterator[Converted]:
    """Convert jobs in a process pool (``workers`` = 1 runs inline), yielding results in order."""
    n = resolve_workers(workers)
    bar = tqdm(total=total, unit="img", desc=desc, smoothing=0.1)
    try:
        if n == 1:
            for job in jobs:
                yield convert_one(job)
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=n) as pool:
            for res in pool.map(convert_one, jobs, chunksize=32):
                yield res
                bar.update()
    finally:
        bar.close()
