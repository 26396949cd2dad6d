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

from cdfv.align.views import centre_crop
from cdfv.codecs.hevc import HevcCodec
from cdfv.codecs.registry import get_codec
from cdfv.config import EncodeParams
from cdfv.encode.border import codec_input
from cdfv.io import encode_png, read_rgb

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lfw-mini" / "lfw"


def faces(folder: Path) -> list[np.ndarray]:
    return [codec_input(np.ascontiguousarray(centre_crop(read_rgb(f), 224))) for f in sorted(folder.glob("*/*.jpg"))]


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` runs (the machine is shared: medians, not best-of) and the last output."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def interleaved(fns: dict[str, object], repeat: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median wall time per function, the functions run alternately in each repeat so a busy shared
    machine slows all of them alike; and each one's last output."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, object] = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            outs[k] = fn()  # type: ignore[operator]
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}, outs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=Path, default=SHARED)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--codecs", default="jpeg,jpeg2000,hevc", help="comma list of families to run")
    ap.add_argument("--tile", type=int, default=8, help="JPEG: each face this many times (more images per run)")
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

    fams = set(a.codecs.split(","))
    if "jpeg" in fams:
        # JPEG --------------------------------------------------------------------------------------
        # ``--tile`` x the faces per run (distinct PNG files); cdfv with a persistent pool of 2 threads
        # (as in encode_lfw) and with 1 thread (per-core comparison: the bench is one process).
        jpngs = [p for p in pngs for _ in range(a.tile)]
        jimgs = [im for im in imgs for _ in range(a.tile)]
        for k, p in enumerate(jpngs):
            if k % a.tile:
                jpngs[k] = str(tmp / f"{k:05d}.png")
                Path(jpngs[k]).write_bytes(Path(p).read_bytes())
        nj = len(jimgs)
        with ThreadPoolExecutor(workers) as pool:
            for q in (1, 25):
                base = JPEG(argparse.Namespace())
                c = get_codec(f"JPEG_Q{q}")

                def ours(c=c):
                    blobs = list(pool.map(c.encode, jimgs))
                    return blobs, list(pool.map(c.decode, blobs))

                def ours1(c=c):
                    blobs = [c.encode(im) for im in jimgs]
                    return blobs, [c.decode(b) for b in blobs]

                def bench(base=base, q=q):
                    return [base._run_impl(p, q)[0] for p in jpngs]  # no metrics: codec only

                t, out = interleaved({"bench": bench, "ours": ours, "ours1": ours1}, a.repeat)
                tb, to, t1, infos, (blobs, _) = t["bench"], t["ours"], t["ours1"], out["bench"], out["ours"]
                same = all(abs(i["bpp"] * 65536 / 8 - len(x)) < 1e-6 for i, x in zip(infos, blobs))
                bpp_b, bpp_o = np.mean([i["bpp"] for i in infos]), np.mean([len(x) * 8 / 65536 for x in blobs])
                rows.append((f"JPEG_Q{q} (2 threads)", nj / tb, nj / to, bpp_b, bpp_o, same))
                rows.append((f"JPEG_Q{q} (1 thread)", nj / tb, nj / t1, bpp_b, bpp_o, same))

    if "jpeg2000" in fams:
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
        rows.append(
            ("JPEG2000 (rate of ffmpeg cl=100)", n / tb, n / to, target, got, abs(got - target) / target < 0.03)
        )

    if "hevc" in fams:
        # HEVC --------------------------------------------------------------------------------------
        for qp in (35, 26):
            c: HevcCodec = get_codec(f"HEVC_QP{qp}")  # type: ignore[assignment]

            def per_image():
                out = []
                for im in imgs:
                    au = subprocess.run(
                        c.encode_cmd(256, 256), input=c._planes(im), capture_output=True, check=True
                    ).stdout
                    subprocess.run(c.decode_cmd(), input=au, capture_output=True, check=True)
                    out.append(au)
                return out

            tb, base_aus = timed(per_image, 1)
            to, aus = timed(lambda: (lambda b: (b, c.decode_batch(b)))(c.encode_batch(imgs))[0], a.repeat)
            rows.append(
                (
                    f"HEVC_QP{qp} (yuv444p, medium)",
                    n / tb,
                    n / to,
                    np.mean([len(x) * 8 / 65536 for x in base_aus]),
                    np.mean([len(x) * 8 / 65536 for x in aus]),
                    [len(x) for x in base_aus] == [len(x) for x in aus],
                )
            )

    print(
        f"{n} faces 256x256 (JPEG: x{a.tile} = {n * a.tile} images), encode+decode round trips, median of "
        f"{a.repeat} runs; machine: {workers}-core shared CPU"
    )
    print("| codec | bench img/s | cdfv img/s | speed-up | bench bpp | cdfv bpp | same bytes/rate |")
    print("|---|---|---|---|---|---|---|")
    for name, b, o, bb, ob, same in rows:
        print(f"| {name} | {b:.1f} | {o:.1f} | {o / b:.1f}x | {bb:.4f} | {ob:.4f} | {same} |")


if __name__ == "__main__":
    main()
