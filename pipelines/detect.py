"""Prefect flow for detection + alignment: fans out over chunks of ``detect.chunk_size`` images.

    .venv/bin/python -m pipelines.detect [--params params.yaml] [--runner threads|dask|ray] [--workers 2]

The tasks call the same functions as ``cdfv detect-lfw`` / ``cdfv align-lfw``: the stage functions
take a ``map_chunks`` hook and this flow supplies one that submits a Prefect task per chunk, then
gathers results in order while a tqdm bar (and the Prefect UI) shows progress.

Task runners: ``threads`` (default, :class:`prefect.task_runners.ThreadPoolTaskRunner`) works
everywhere; on a cluster install ``prefect-dask`` (``DaskTaskRunner(address=...)``) or
``prefect-ray`` (``RayTaskRunner(address=...)``) and pass ``--runner dask|ray`` (``--address`` for an
existing cluster). Each worker thread/process loads the detector once and reuses it for its chunks.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from tqdm import tqdm

from cdfv.align.stage import run_align_lfw
from cdfv.config import load_params
from cdfv.detect.stage import run_detect_lfw


@task(name="chunk", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def run_chunk(worker: Callable[[Any], Any], chunk: list[Any]) -> Any:
    """One chunk of images through a stage's worker (detect or align)."""
    return worker(chunk)


def prefect_mapper(desc: str) -> Callable[[Callable[[Any], Any], list[Any]], list[Any]]:
    """A ``map_chunks`` hook submitting one task per chunk to the flow's task runner."""

    def mapper(worker: Callable[[Any], Any], chunks: list[Any]) -> list[Any]:
        futures = [
            run_chunk.with_options(task_run_name=f"{desc}-{i:04d}").submit(worker, c) for i, c in enumerate(chunks)
        ]
        index = {f.task_run_id: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(chunks)
        with tqdm(total=sum(len(c) for c in chunks), desc=desc, unit="img") as bar:
            for fut in as_completed(futures):
                i = index[fut.task_run_id]
                results[i] = fut.result()
                bar.update(len(chunks[i]))
        return results

    return mapper


def make_task_runner(runner: str = "threads", workers: int = 2, address: str | None = None) -> Any:
    """``threads`` locally; ``dask`` / ``ray`` (optional packages) for clusters."""
    if runner == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as err:
            raise ImportError("--runner dask needs `pip install prefect-dask`") from err
        return DaskTaskRunner(address=address) if address else DaskTaskRunner(cluster_kwargs={"n_workers": workers})
    if runner == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as err:
            raise ImportError("--runner ray needs `pip install prefect-ray`") from err
        return RayTaskRunner(address=address) if address else RayTaskRunner()
    raise ValueError(f"unknown runner {runner!r}: threads | dask | ray")


@flow(name="detect-align-lfw", task_runner=ThreadPoolTaskRunner(max_workers=2))
def detect_align_flow(params_path: str = "params.yaml", root: str = ".", align: bool = True) -> dict[str, Any]:
    """detect_lfw then align_lfw under ``root`` (params validated before any task runs)."""
    base = Path(root)
    params = load_params(Path(params_path) if Path(params_path).is_absolute() else base / params_path)
    out = {"detect": run_detect_lfw(params, base, map_chunks=prefect_mapper("detect"))}
    if align:
        out["align"] = run_align_lfw(params, base, map_chunks=prefect_mapper("align"))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--runner", default="threads", choices=["threads", "dask", "ray"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--address", default=None, help="existing Dask/Ray cluster")
    ap.add_argument("--no-align", action="store_true")
    a = ap.parse_args()
    runner = make_task_runner(a.runner, a.workers, a.address)
    detect_align_flow.with_options(task_runner=runner)(a.params, ".", not a.no_align)
