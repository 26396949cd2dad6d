"""MTCNN (facenet-pytorch, the ``mtcnn`` detector backend) throughput on CPU or GPU, images/s.

    .venv/bin/python benchmarks/bench_mtcnn.py [--images DIR] [--rounds 3] [--repeat 4] [--device cpu]

Each configuration (batch 1 = one image per cascade call, batch 16 = LFW's equal-size images stacked)
runs in its own fresh process, alternating A B A B ... ``--rounds`` times; a process loads the
networks, warms up on one batch, then times ``--repeat`` passes over the images (default the 25
LFW-mini photos, 250x250) through ``MtcnnDetector.detect_batch`` at the schedule's lowest threshold
(what ``detect_lfw_mtcnn`` does, PNG decoding excluded). Prints one JSON object: per-config medians,
the ratio, /proc/loadavg before and after, torch threads.
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


def child(images: Path, batch: int, repeat: int, device: str) -> dict[str, float]:
    import torch

    from cdfv.detect.mtcnn_backend import MtcnnDetector
    from cdfv.io import read_rgb

    files = sorted(images.glob("*/*.jpg")) or sorted(images.glob("*/*.png"))
    imgs = [read_rgb(f) for f in files]
    det = MtcnnDetector(device=device, batch_size=batch)
    det.detect_batch(imgs[:batch], 0.7)  # warm-up
    if det.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeat):
        det.detect_batch(imgs, 0.7)
    if det.device.type == "cuda":
        torch.cuda.synchronize()
    s = time.perf_counter() - t
    return {"images_per_s": len(imgs) * repeat / s, "images": len(imgs), "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=REPO.parent / "shared" / "fixtures" / "lfw-mini" / "lfw")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        print(json.dumps(child(a.images, a.child, a.repeat, a.device)))
        return
    batches = [int(b) for b in a.batches.split(",")]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    runs: dict[int, list[float]] = {b: [] for b in batches}
    threads = None
    for _ in range(a.rounds):
        for b in batches:  # A B A B: drifting machine load hits every configuration alike
            cmd = [sys.executable, __file__, "--child", str(b), "--images", str(a.images)]
            cmd += ["--repeat", str(a.repeat), "--device", a.device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
            r = json.loads(out.stdout.strip().splitlines()[-1])
            runs[b].append(r["images_per_s"])
            threads = r["threads"]
    med = {b: statistics.median(v) for b, v in runs.items()}
    result = {
        "device": a.device,
        "images": str(a.images),
        "rounds": a.rounds,
        "repeat": a.repeat,
        "torch_threads": threads,
        "images_per_s_median": {f"batch_{b}": round(v, 2) for b, v in med.items()},
        "images_per_s_runs": {f"batch_{b}": [round(x, 2) for x in v] for b, v in runs.items()},
        "loadavg_before": load_before,
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
    }
    if len(batches) == 2:
        result[f"ratio_batch_{batches[1]}_vs_{batches[0]}"] = round(med[batches[1]] / med[batches[0]], 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
