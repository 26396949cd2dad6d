"""Prefect flow for the codec stage group: every ``codecs:`` entry, then the RD report.

    .venv/bin/python -m pipelines.encode [--params params.yaml] [--codec JPEG_Q1 ...] [--vggface2]

Tasks call the same functions as ``cdfv encode-lfw`` / ``cdfv latents-vggface2`` / ``cdfv rd-report``
(no logic here). Conventional codecs run concurrently (threads: Pillow/OpenJPEG release the GIL and
x265 is a subprocess); learned codecs run one at a time (they already use every core / the GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from cdfv.config import load_params
from cdfv.encode.stage import run_encode_lfw, run_latents_vggface2
from cdfv.rd.stage import run_rd_report


@task(name="encode-lfw", tags=["codec"])
def encode_lfw_task(params_path: str, root: str, codec: str) -> dict:
    return run_encode_lfw(load_params(params_path), codec, Path(root))


@task(name="latents-vggface2", tags=["codec"])
def latents_vggface2_task(params_path: str, root: str, codec: str) -> dict:
    return run_latents_vggface2(load_params(params_path), codec, Path(root))


@task(name="rd-report")
def rd_report_task(params_path: str, root: str) -> dict:
    return run_rd_report(load_params(params_path), Path(root))


@flow(name="encode", task_runner=ThreadPoolTaskRunner(max_workers=2))
def encode_flow(
    params_path: str = "params.yaml", root: str = ".", codecs: list[str] | None = None, vggface2: bool = False
) -> dict:
    """Encode LFW with ``codecs`` (default: all listed), optionally build VGGFace2 shards, then report."""
    path = str(Path(root) / params_path) if not Path(params_path).is_absolute() else params_path
    params = load_params(path)  # validated up front
    names = codecs or list(params.codecs)
    learned = [c for c in names if params.codecs[c].family == "learned"] if names else []
    futures = [encode_lfw_task.submit(path, root, c) for c in names if c not in learned]
    results = {c: encode_lfw_task(path, root, c) for c in learned}  # sequential: each uses all cores
    results.update({f.result()["codec"]: f.result() for f in futures})
    if vggface2:
        train = getattr(params, "train", None)
        for c in getattr(getattr(train, "cresnet39", None), "codecs", []) or []:
            latents_vggface2_task(path, root, c)
    if codecs is None:
        rd_report_task(path, root)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--codec", action="append", help="codec to encode (repeatable); default all listed")
    ap.add_argument("--vggface2", action="store_true", help="also build latents_vggface2 shards")
    a = ap.parse_args()
    encode_flow(a.params, ".", a.codec, a.vggface2)
