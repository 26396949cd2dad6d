"""Benchmark: scoring + metrics for 6,000 LFW pairs (target < 1 s) and recogniser throughput.

    .venv/bin/python benchmarks/bench_eval.py [--faces N] [--device cpu|cuda]

1. Cosine scoring of 6,000 pairs of 2048-d embeddings + ROC, AUC, TAR@FAR (1e-3, 1e-2), EER and
   10-fold accuracy (the work of one eval_lfw stage after embedding).
2. Embedding throughput (images/s) of the dlib recogniser and of ResNet50 / cResNet39 (random
   weights; same compute as trained ones) on this machine, and ms/pair for pipeline A vs C
   (2 forward passes per pair, batches of 64 pairs as in the paper; detection/encoding excluded).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from cdfv.evaluate.metrics import verification_metrics
from cdfv.evaluate.score import score_pairs


def bench_scoring(repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    n_img, dim = 7701, 2048  # distinct images in LFW View 2
    ids = [f"img{i}" for i in range(n_img)]
    table = dict(zip(ids, rng.normal(size=(n_img, dim)).astype(np.float32)))
    left = [ids[i] for i in rng.integers(0, n_img, 6000)]
    right = [ids[i] for i in rng.integers(0, n_img, 6000)]
    labels = np.repeat([True, False], 3000)
    folds = np.tile(np.repeat(np.arange(10), 300), 2)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        s = score_pairs(left, right, table, table) + labels * 0.1
        verification_metrics(labels, s, folds)
        best = min(best, time.perf_counter() - t)
    return best


def bench_dlib(n: int) -> float:
    from cdfv.evaluate.recognisers import DlibRecogniser

    rec = DlibRecogniser()
    faces = np.random.default_rng(0).integers(0, 255, (n, 224, 224, 3), dtype=np.uint8)
    t = time.perf_counter()
    rec.embed(faces, rec.geometry(faces))
    return n / (time.perf_counter() - t)


def bench_torch(device: str, pairs_per_batch: int, batches: int) -> dict[str, float]:
    import torch

    from cdfv.models import cresnet39, resnet50_caffe, resnet50_input

    dev = torch.device(device)
    out: dict[str, float] = {}
    for name, model, make in (
        (
            "ResNet50",
            resnet50_caffe(num_classes=None, embedding=True),
            lambda b: resnet50_input(np.random.default_rng(0).integers(0, 255, (b, 224, 224, 3), dtype=np.uint8), dev),
        ),
        ("cResNet39_N192", cresnet39(192), lambda b: torch.randn(b, 192, 14, 14, device=dev)),
    ):
        model = model.to(dev).eval()
        x = make(2 * pairs_per_batch)
        with torch.inference_mode():
            model.embed(x)  # warm-up
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(batches):
                model.embed(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / batches
        out[f"{name}_ms_per_pair"] = 1000 * dt / pairs_per_batch
        out[f"{name}_images_per_s"] = 2 * pairs_per_batch / dt
    out["A_over_C_ms_per_pair"] = out["ResNet50_ms_per_pair"] / out["cResNet39_N192_ms_per_pair"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=32, help="faces for the dlib throughput")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pairs-per-batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=2)
    args = ap.parse_args()
    res = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPU cores",
        "score_and_metrics_6000_pairs_s": bench_scoring(),
        "dlib_images_per_s": bench_dlib(args.faces),
        **bench_torch(args.device, args.pairs_per_batch, args.batches),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
