"""Throughput of detection and alignment (target: alignment <= 0.5 ms/image).

    .venv/bin/python benchmarks/bench_detect_align.py [--images DIR] [--retinaface-images 4] [--device auto]

Measures on real face photos (default: ../shared/fixtures/lfw-mini):
* ``align_face`` alone (crop + eye-line rotation + additive resize + pad), ms/image, on the boxes and
  landmarks the dlib backend found — the paper's 0.28 ms figure covers this step;
* dlib HOG detection (+ 68-pt landmarks), images/s, upsample 0 and 1;
* RetinaFace-ResNet50 network + retina-face post-processing, images/s, batched, at the paper's
  setting (allow_upscaling: 250 px → 1024 px) and at native size. Weights are random when
  retinaface.pth is absent: the network cost is identical, only NMS sees fewer boxes.
Prints one JSON object (figures for the README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from cdfv.align.geometry import align_face
from cdfv.detect.dlib_backend import DlibDetector
from cdfv.detect.heuristic import choose_face
from cdfv.io import read_rgb

REPO = Path(__file__).resolve().parents[1]


def _timeit(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def bench_align(images: list[np.ndarray], det: DlibDetector, repeat: int) -> dict[str, float]:
    jobs = []
    for img in images:
        faces = det.detect(img, -0.5)
        c = choose_face(faces, img.shape[1], img.shape[0], 1.0, -0.5, 0.05)
        if c.status == "ok":
            jobs.append((img, faces[c.index].box, faces[c.index].landmarks))
    out = {}
    for rot in ("nearest", "bilinear", "bicubic"):
        per_round = _timeit(lambda: [align_face(i, b, lm, rotate_interpolation=rot) for i, b, lm in jobs], repeat)
        out[f"align_ms_per_image_rotate_{rot}"] = round(1000 * per_round / len(jobs), 4)
    return out


def bench_dlib(images: list[np.ndarray]) -> dict[str, float]:
    out = {}
    for up in (0, 1):
        det = DlibDetector(upsample=up)
        s = _timeit(lambda: det.detect_batch(images, -0.5), 2)
        out[f"dlib_hog_upsample{up}_images_per_s"] = round(len(images) / s, 2)
    return out


def bench_retinaface(images: list[np.ndarray], device: str, batch: int) -> dict[str, object]:
    from cdfv.config import load_params
    from cdfv.detect.retinaface_backend import RetinaFaceDetector
    from cdfv.errors import CdfvError
    from cdfv.weights import resolve, retinaface

    out: dict[str, object] = {}
    for upscale in (True, False):
        try:  # weights.retinaface of params.yaml: cached / downloaded and verified
            p = load_params()
            weights = resolve(retinaface(p), p.cache_path / "weights")
            det = RetinaFaceDetector(weights, allow_upscaling=upscale, device=device, batch_size=batch)
            out["retinaface_weights"] = "pretrained"
        except CdfvError:
            det = RetinaFaceDetector(allow_upscaling=upscale, device=device, batch_size=batch, pretrained=False)
            out["retinaface_weights"] = "random (retinaface.pth absent)"
        s = _timeit(lambda: det.detect_batch(images, 0.7), 1)
        if det.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        key = "retinaface_upscale1024" if upscale else "retinaface_native"
        out[f"{key}_images_per_s"] = round(len(images) / s, 3)
        out["retinaface_device"] = str(det.device)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=Path, default=REPO.parent / "shared/fixtures/lfw-mini/lfw")
    ap.add_argument("--repeat", type=int, default=200, help="alignment rounds over all images")
    ap.add_argument("--retinaface-images", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-retinaface", action="store_true")
    a = ap.parse_args()

    images = [read_rgb(p) for p in sorted(a.images.rglob("*")) if p.suffix.lower() in (".jpg", ".png")]
    import cv2

    res: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "opencv_threads": cv2.getNumThreads(),
        "images": len(images),
    }
    res.update(bench_align(images, DlibDetector(), a.repeat))
    res.update(bench_dlib(images))
    if not a.skip_retinaface:
        res.update(bench_retinaface(images[: a.retinaface_images], a.device, a.batch))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
