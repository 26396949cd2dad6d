"""Prefect flow for the ingestion stage group: LFW and VGGFace2 run concurrently.

    .venv/bin/python -m pipelines.ingest [--params params.yaml]

The tasks call the same functions as ``cdfv ingest-lfw`` / ``cdfv ingest-vggface2`` (no logic here).
Downloads are retried (transient network errors); bad data fails the flow with the stage's message.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from cdfv.config import load_params
from cdfv.data.lfw import run_ingest_lfw
from cdfv.data.vggface2 import run_ingest_vggface2


@task(name="ingest-lfw", retries=2, retry_delay_seconds=10)
def ingest_lfw_task(params_path: str, root: str) -> None:
    run_ingest_lfw(load_params(params_path), Path(root))


@task(name="ingest-vggface2")
def ingest_vggface2_task(params_path: str, root: str) -> None:
    run_ingest_vggface2(load_params(params_path), Path(root))


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=2))
def ingest_flow(params_path: str = "params.yaml", root: str = ".", vggface2: bool = True) -> None:
    """Ingest LFW (+ VGGFace2 when ``vggface2``) under ``root``; params validated up front."""
    params = load_params(Path(root) / params_path if not Path(params_path).is_absolute() else params_path)
    futures = [ingest_lfw_task.submit(str(Path(root) / params_path), root)]
    if vggface2 and params.vggface2 is not None:
        futures.append(ingest_vggface2_task.submit(str(Path(root) / params_path), root))
    for f in futures:
        f.result()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--no-vggface2", action="store_true")
    a = ap.parse_args()
    ingest_flow(a.params, ".", not a.no_vggface2)
