"""Encode stage throughput as a user sees it: whole processes, side by side, on the same faces.

Builds a DVC workspace (smoke profile) whose aligned LFW faces are N varied copies (crop shift, flip,
colour gain) of the lfw-mini faces, then times, alternating A B A B (medians):

* ours: ``dvc repro -f -s encode_lfw@<codec>`` (DVC start-up, reading the PNGs, coding, decoding, PSNR +
  MS-SSIM, writing bitstreams, decoded PNGs, the Parquet index and the metrics);
* CompressAI's bench on the same 256² codec inputs (PNG files), with both cores
  (``python -m compressai.utils.bench jpeg|jpeg2000 DIR -q Q -j 2``: codec + PSNR/MS-SSIM);
* HEVC: two ffmpeg processes per image (libx265 intra encode, decode), two images at a time.

    python benchmarks/bench_stage_throughput.py --faces 2000 --rounds 2

Prints the ratios (reference seconds / ours); targets: JPEG ≥ 3×, JPEG 2000 ≥ 5×, HEVC ≥ 4×.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from cdfv.encode.border import pad_image, uniform_pads  # noqa: E402
from cdfv.io import encode_png, read_rgb, sha256_bytes  # noqa: E402


def sh(cmd: list[str], cwd: Path | None = None) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def vary(face: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A distinct 224² face from a real one: shift (edge-padded), optional flip, per-channel gain."""
    dy, dx = rng.integers(-6, 7, size=2)
    out = np.roll(face, (int(dy), int(dx)), axis=(0, 1))
    if k % 2:
        out = out[:, ::-1]
    gain = rng.uniform(0.9, 1.1, size=3)
    return np.clip(out.astype(np.float64) * gain, 0, 255).astype(np.uint8)


def build(ws: Path, n: int, inputs: Path) -> None:
    """The smoke workspace up to align_lfw, its faces replaced by ``n`` varied copies; the 256² inputs as PNGs."""
    sh([str(BIN / "cdfv"), "workspace", str(ws), "--profile", "smoke"])
    sh([str(BIN / "dvc"), "repro", "align_lfw"], cwd=ws)
    table = pq.read_table(ws / "data/interim/lfw/faces.parquet")
    rows = [r for r in table.to_pylist() if r["path"]]
    faces = [read_rgb(ws / r["path"]) for r in rows]
    rng = np.random.default_rng(0)
    out_rows = []
    inputs.mkdir(parents=True)
    for k in range(n):
        src = rows[k % len(rows)]
        img = vary(faces[k % len(faces)], k, rng)
        png = encode_png(img)
        rel = f"data/interim/lfw/faces/bench/{k:05d}.png"
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(png)
        out_rows.append({**src, "image_id": f"bench_{k:05d}", "path": rel, "sha256": sha256_bytes(png)})
        (inputs / f"{k:05d}.png").write_bytes(encode_png(pad_image(img, uniform_pads(16))))
    pq.write_table(pa.Table.from_pylist(out_rows, schema=table.schema), ws / "data/interim/lfw/faces.parquet")


def hevc_per_image(inputs: Path, qp: int, out: Path) -> None:
    """Two ffmpeg processes per image (x265 intra at ``qp``, then decode), two images at a time."""
    out.mkdir(exist_ok=True)

    def one(p: Path) -> None:
        stream, dec = out / f"{p.stem}.hevc", out / f"{p.stem}.png"
        base = ["ffmpeg", "-loglevel", "error", "-y"]
        subprocess.run(
            [*base, "-i", str(p), "-c:v", "libx265", "-x265-params", f"qp={qp}:keyint=1:log-level=error"]
            + ["-pix_fmt", "yuv420p", str(stream)],
            check=True,
        )
        subprocess.run([*base, "-i", str(stream), str(dec)], check=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, sorted(inputs.glob("*.png"))))


def reference(codec: str, inputs: Path, scratch: Path, bench: list[str]):  # type: ignore[no-untyped-def]
    """The reference command for ``codec`` on the 256² inputs (a callable)."""
    if codec.startswith("JPEG2000"):
        # the bench's JPEG 2000 is ffmpeg's encoder at a quality; ours targets the Ballé rate of Q1
        return lambda: sh([*bench, "jpeg2000", str(inputs), "-q", "100", "-j", "2"])
    if codec.startswith("JPEG"):
        return lambda: sh([*bench, "jpeg", str(inputs), "-q", codec.split("_Q")[1], "-j", "2"])
    return lambda: hevc_per_image(inputs, int(codec.split("QP")[1]), scratch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--codecs", default="JPEG_Q25,JPEG2000_mse_Q1,HEVC_QP35")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stage-"))
    ws, inputs = tmp / "ws", tmp / "inputs"
    build(ws, a.faces, inputs)
    bench = [sys.executable, "-m", "compressai.utils.bench"]
    results = {}
    for codec in a.codecs.split(","):
        ours = [str(BIN / "dvc"), "repro", "-f", "-s", f"encode_lfw@{codec}"]
        ref = reference(codec, inputs, tmp / "hevc", bench)
        times: dict[str, list[float]] = {"ours": [], "reference": []}
        for _ in range(a.rounds):  # A B A B
            times["ours"].append(sh(ours, cwd=ws))
            t = time.perf_counter()
            ref()
            times["reference"].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        results[codec] = {
            "faces": a.faces,
            "ours_s": round(med["ours"], 2),
            "reference_s": round(med["reference"], 2),
            "ratio": round(med["reference"] / med["ours"], 2),
            "runs": times,
        }
        print(f"{codec}: ours {med['ours']:.1f} s, reference {med['reference']:.1f} s -> {results[codec]['ratio']}x")
    print(json.dumps({"loadavg": Path("/proc/loadavg").read_text().split()[:3], "results": results}, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
