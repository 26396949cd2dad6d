"""Prefect flow for the model group: ResNet50, then every cResNet39@<codec>, plus complexity.

    .venv/bin/python -m pipelines.train [--params params.yaml] [--codec Balle2018_mse_Q1 ...]

The tasks call the same functions as ``cdfv train-resnet50`` / ``cdfv train-cresnet39`` /
``cdfv complexity`` (no logic here). cResNet39 runs need the ResNet50 phase-2 FC, so they start
after ResNet50; they run one at a time (each uses the whole GPU). A failed or killed task is
retried once: the trainer resumes from its newest valid checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, task

from cdfv import paths
from cdfv.complexity import run_complexity
from cdfv.config import load_params
from cdfv.train.stage import run_train_cresnet39, run_train_resnet50


@task(name="train-resnet50", retries=1, retry_delay_seconds=5)
def train_resnet50_task(params_path: str, root: str) -> str:
    run_train_resnet50(load_params(params_path), Path(root))
    return str(paths.model_file("resnet50"))


@task(name="train-cresnet39", retries=1, retry_delay_seconds=5)
def train_cresnet39_task(params_path: str, root: str, codec: str) -> str:
    run_train_cresnet39(load_params(params_path), codec, Path(root))
    return str(paths.model_file("cresnet39", codec))


@task(name="complexity")
def complexity_task(params_path: str, root: str) -> dict:
    return run_complexity(load_params(params_path), Path(root))


@flow(name="train")
def train_flow(
    params_path: str = "params.yaml", root: str = ".", codecs: list[str] | None = None, complexity: bool = True
) -> list[str]:
    """Train ResNet50 then cResNet39 for ``codecs`` (default: train.cresnet39.codecs + online_codecs)."""
    path = str(Path(root) / params_path) if not Path(params_path).is_absolute() else params_path
    params = load_params(path)
    outs = [train_resnet50_task(path, root)]
    c = params.train.cresnet39
    for codec in codecs or [*c.codecs, *c.online_codecs]:
        outs.append(train_cresnet39_task(path, root, codec))
    if complexity:
        complexity_task(path, root)
    return outs


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--codec", action="append", default=None)
    ap.add_argument("--no-complexity", action="store_true")
    a = ap.parse_args()
    train_flow(a.params, ".", a.codec, not a.no_complexity)
