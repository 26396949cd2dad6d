"""Li et al. 2019 streams: feature coding (quantise + range-code + decode) and HEVC intra of 160x160 crops.

    .venv/bin/python benchmarks/bench_tfqi.py [--rounds 3] [--features 2000] [--crops 64]

Configurations, each in its own fresh process, alternating A B C ... ``--rounds`` times (drifting machine
load hits every configuration alike); medians reported:

* ``feature:<QP>`` — ``--features`` L2-normalised 128-d Gaussian vectors (dlib-sized) through
  :func:`cdfv.tfqi.stage.code_features` (quantise, :func:`encode_levels`, :func:`decode_levels` with the
  equality check, dequantise): ms per feature, bytes per feature, and the overhead of the bytes over
  the bins' information content -sum log2 p (the coder's 32-bit words).
* ``texture:<preset>`` — ``--crops`` 160x160 centre crops of the LFW-mini photos (tiled to the count)
  through ``code_chunk`` with ``HEVC_QP32`` (one ffmpeg encode + one decode process per chunk, as the
  tfqi_texture stage): ms per crop and bpp, x265 preset ultrafast (smoke) vs medium (params.yaml).

Prints one JSON object with /proc/loadavg before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def feature_child(qp: int, n: int) -> dict[str, float]:
    import numpy as np

    from cdfv.tfqi.bitstream import adaptive_probabilities, binarise
    from cdfv.tfqi.quantise import l2_normalise, quantise
    from cdfv.tfqi.stage import code_features

    x = l2_normalise(np.random.default_rng(0).normal(size=(n, 128))).astype(np.float32)
    code_features(x[:10], qp)  # warm-up (imports)
    t = time.perf_counter()
    blobs, _, _ = code_features(x, qp)
    s = time.perf_counter() - t
    info = []
    for levels in quantise(x[:200].astype(np.float64), qp):
        bins, ctx = binarise(levels)
        p = adaptive_probabilities(bins, ctx)
        info.append(float(-np.sum(np.log2(np.where(bins == 1, p, 1 - p)))))
    bytes_mean = float(np.mean([len(b) for b in blobs]))
    payload_bits = float(np.mean([8 * (len(b) - 1) for b in blobs[:200]]))
    return {
        "ms_per_item": 1000 * s / n,
        "bytes_per_feature": bytes_mean,
        "bpp_160": 8 * bytes_mean / 160**2,
        "overhead_bits_over_information": payload_bits - float(np.mean(info)),
    }


def texture_child(preset: str, n: int, images: Path) -> dict[str, float]:
    import numpy as np

    from cdfv.codecs.registry import get_codec
    from cdfv.config import EncodeParams
    from cdfv.encode.loop import code_chunk
    from cdfv.io import read_rgb

    files = sorted(images.glob("*/*.jpg")) or sorted(images.glob("*/*.png"))
    crops = []
    for f in files:
        im = read_rgb(f)
        h, w = im.shape[:2]
        crops.append(np.ascontiguousarray(im[(h - 160) // 2 : (h + 160) // 2, (w - 160) // 2 : (w + 160) // 2]))
    crops = (crops * (n // len(crops) + 1))[:n]
    settings = EncodeParams().model_copy(update={"hevc": EncodeParams().hevc.model_copy(update={"preset": preset})})
    codec = get_codec("HEVC_QP32", settings)
    pads = [(0, 0, 0, 0)] * n
    ids = [str(i) for i in range(n)]
    code_chunk(codec, crops[:2], pads[:2], ids[:2])  # warm-up
    t = time.perf_counter()
    coded, _ = code_chunk(codec, crops, pads, ids)
    s = time.perf_counter() - t
    return {"ms_per_item": 1000 * s / n, "bpp_160": float(np.mean([8 * c.n_bytes / 160**2 for c in coded if c]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--features", type=int, default=2000)
    ap.add_argument("--crops", type=int, default=64)
    ap.add_argument("--images", type=Path, default=REPO.parent / "shared" / "fixtures" / "lfw-mini" / "lfw")
    ap.add_argument("--configs", default="feature:4,feature:22,feature:51,texture:ultrafast,texture:medium")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        kind, value = a.child.split(":")
        r = feature_child(int(value), a.features) if kind == "feature" else texture_child(value, a.crops, a.images)
        print(json.dumps(r))
        return
    configs = a.configs.split(",")
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    for _ in range(a.rounds):
        for c in configs:
            cmd = [sys.executable, __file__, "--child", c, "--features", str(a.features), "--crops", str(a.crops)]
            cmd += ["--images", str(a.images)]
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            runs[c].append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {
        "rounds": a.rounds,
        "features": a.features,
        "crops": a.crops,
        "median": {c: {k: round(statistics.median(r[k] for r in rs), 4) for k in rs[0]} for c, rs in runs.items()},
        "ms_per_item_runs": {c: [round(r["ms_per_item"], 3) for r in rs] for c, rs in runs.items()},
        "loadavg_before": load_before,
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        "cpus": os.cpu_count(),
    }
    m = result["median"]
    if "texture:ultrafast" in m and "texture:medium" in m:
        result["medium_over_ultrafast_time"] = round(
            m["texture:medium"]["ms_per_item"] / m["texture:ultrafast"]["ms_per_item"], 2
        )
        result["medium_over_ultrafast_bpp"] = round(
            m["texture:medium"]["bpp_160"] / m["texture:ultrafast"]["bpp_160"], 3
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
