"""LFW-sized ingest throughput: 13,233 images (real fixture JPEGs repeated) -> PNG + Parquet.

    .venv/bin/python benchmarks/bench_ingest.py [--images 13233] [--workers 0]

Target: >= 300 images/s on 2 cores, using both cores.
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
import time
from pathlib import Path

from cdfv.config import LfwParams
from cdfv.data.lfw import ingest_lfw

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lfw-mini"


def build_archive(dst: Path, n_images: int) -> None:
    """An LFW-layout .tgz with ``n_images`` real JPEGs (the fixture's 25 faces, repeated)."""
    sources = sorted((SHARED / "lfw").glob("*/*.jpg"))
    with tarfile.open(dst, "w:gz") as tar:
        for i in range(n_images):
            src = sources[i % len(sources)]
            ident = src.parent.name
            idx = i // len(sources) * 100 + int(src.stem.rsplit("_", 1)[1])
            data = src.read_bytes()
            info = tarfile.TarInfo(f"lfw/{ident}/{ident}_{idx:04d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=13233)
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        build_archive(tmp / "lfw.tgz", a.images)
        cfg = LfwParams(archive_url=str(tmp / "lfw.tgz"), pairs_url=str(SHARED / "pairs.txt"), workers=a.workers)
        t0 = time.perf_counter()
        c0 = os.times()
        images, _ = ingest_lfw(cfg, tmp / "cache", tmp / "out")
        wall = time.perf_counter() - t0
        c1 = os.times()
        cpu = (
            (c1.user - c0.user)
            + (c1.system - c0.system)
            + (c1.children_user - c0.children_user)
            + (c1.children_system - c0.children_system)
        )
        print(
            f"ingest_lfw: {images.num_rows} images in {wall:.2f} s = {images.num_rows / wall:.0f} images/s "
            f"(cpu {cpu:.1f} s -> {cpu / wall:.2f} cores busy, {os.cpu_count()} available)"
        )


if __name__ == "__main__":
    main()
