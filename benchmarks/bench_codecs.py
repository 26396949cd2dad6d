"""Codec throughput vs CompressAI's bench conventions (one process / file round trip per image).

    .venv/bin/python benchmarks/bench_codecs.py [--faces DIR] [--repeat N]

Same 256^2 faces (lfw-mini centre crops + 16 px border, written as PNG like the bench's inputs):

* JPEG: ``compressai.utils.bench.codecs.JPEG`` (Pillow, per image: load PNG, encode, decode; its
  ``_run_impl``, i.e. without the bench's metric computation)
  vs ``cdfv`` JpegCodec batch (threads); bytes must be identical at the same quality.
* JPEG2000: ``compressai.utils.bench.codecs.JPEG2000`` (two ffmpeg/libopenjpeg processes per image)
  vs ``cdfv`` Jpeg2000Codec (in-process OpenJPEG via glymur, threads) at the rate the bench reached.
* HEVC: one ffmpeg/libx265 process per image (encode) + one (decode), the bench's BinaryCodec pattern,
  vs ``cdfv`` HevcCodec (one process per batch); every access unit must have the same size
  (the bytes differ only where x265 codes the picture order count of the sequence position).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cdfv.align import centre_crop, codec_input
from cdfv.codecs import get_codec
from cdfv.codecs.hevc import HevcCodec
from cdfv.config import EncodeParams
from cdfv.io import encode_png, read_rgb

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lfw-mini" / "lfw"


def faces(folder: Path) -> list[np.ndarray]:
    return [codec_input(np.ascontiguousarray(centre_crop(read_rgb(f), 224))) for f in sorted(folder.glob("*/*.jpg"))]


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=Path, default=SHARED)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from compressai.utils.bench.codecs import JPEG, JPEG2000

    imgs = faces(a.faces)
    n = len(imgs)
    tmp = Path(tempfile.mkdtemp(prefix="bench-codecs-"))
    pngs = []
    for i, im in enumerate(imgs):
        p = tmp / f"{i:03d}.png"
        p.write_bytes(encode_png(im))
        pngs.append(str(p))
    workers = 2
    rows = []

    # JPEG --------------------------------------------------------------------------------------
    for q in (1, 25):
        base = JPEG(argparse.Namespace())
        tb, infos = timed(lambda: [base._run_impl(p, q)[0] for p in pngs], a.repeat)  # no metrics: codec only
        c = get_codec(f"JPEG_Q{q}")

        def ours(c=c):
            with ThreadPoolExecutor(workers) as pool:
                blobs = list(pool.map(c.encode, imgs))
                return blobs, list(pool.map(c.decode, blobs))

        to, (blobs, _) = timed(ours, a.repeat)
        same = all(abs(b * 65536 / 8 - len(x)) < 1e-6 for b, x in zip([i["bpp"] for i in infos], blobs))
        rows.append((f"JPEG_Q{q}", n / tb, n / to, np.mean([i["bpp"] for i in infos]), np.mean([len(x) * 8 / 65536 for x in blobs]), same))

    # JPEG2000 ----------------------------------------------------------------------------------
    base = JPEG2000(argparse.Namespace())
    tb, infos = timed(lambda: [base._run_impl(p, 100)[0] for p in pngs], 1)  # ffmpeg -compression_level 100
    target = float(np.mean([i["bpp"] for i in infos]))
    c = get_codec("JPEG2000_mse_Q1", EncodeParams(), target_bpp=target)

    def ours_j2k():
        with ThreadPoolExecutor(workers) as pool:
            blobs = list(pool.map(c.encode, imgs))
            return blobs, list(pool.map(c.decode, blobs))

    to, (blobs, _) = timed(ours_j2k, a.repeat)
    got = float(np.mean([len(x) * 8 / 65536 for x in blobs]))
    rows.append(("JPEG2000 (rate of ffmpeg cl=100)", n / tb, n / to, target, got, abs(got - target) / target < 0.03))

    # HEVC --------------------------------------------------------------------------------------
    for qp in (35, 26):
        c: HevcCodec = get_codec(f"HEVC_QP{qp}")  # type: ignore[assignment]

        def per_image():
            out = []
            for im in imgs:
                au = subprocess.run(c.encode_cmd(256, 256), input=c._planes(im), capture_output=True, check=True).stdout
                subprocess.run(c.decode_cmd(), input=au, capture_output=True, check=True)
                out.append(au)
            return out

        tb, base_aus = timed(per_image, 1)
        to, aus = timed(lambda: (lambda b: (b, c.decode_batch(b)))(c.encode_batch(imgs))[0], a.repeat)
        rows.append((f"HEVC_QP{qp} (yuv444p, medium)", n / tb, n / to, np.mean([len(x) * 8 / 65536 for x in base_aus]),
                     np.mean([len(x) * 8 / 65536 for x in aus]),
                     [len(x) for x in base_aus] == [len(x) for x in aus]))

    print(f"{n} faces 256x256, encode+decode round trips, best of {a.repeat}; machine: {workers}-core CPU")
    print("| codec | bench img/s | cdfv img/s | speed-up | bench bpp | cdfv bpp | same bytes/rate |")
    print("|---|---|---|---|---|---|---|")
    for name, b, o, bb, ob, same in rows:
        print(f"| {name} | {b:.1f} | {o:.1f} | {o / b:.1f}x | {bb:.4f} | {ob:.4f} | {same} |")


if __name__ == "__main__":
    main()
