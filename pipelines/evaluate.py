"""Prefect flow ``eval-lfw``: the LFW evaluation, run through DVC, with a metrics artifact.

The flow never computes anything itself: it asks DVC to reproduce the evaluation stages
(every ``eval_lfw_*`` stage, Bian et al.'s ``eval_lfw_bian_*`` included, Xiao et al.'s ``eval_gallery*``,
+ ``report``, ``report_bian`` and ``report_xiao``, then the ``tfqi_*`` stages) in a DVC workspace, so
caching and invalidation stay with DVC, then publishes the metrics table (``reports/metrics/eval/*.json``
with their details) as a Prefect markdown artifact. Deployment ``eval-lfw`` (``pipelines/prefect.yaml``)
runs it on a process work pool.

* ``upstream=False`` (default): the upstream outputs the evaluation reads (faces, decoded
  images, latents, checkpoints) must already exist; a missing one fails the run naming the
  stage that makes it. DVC then runs only the evaluation stages (``dvc repro --single-item``),
  so a scheduled evaluation never launches training by accident.
* ``upstream=True``: ``dvc repro <targets>`` also (re)builds whatever is missing or stale upstream.

Li et al.'s joint texture + feature coding is evaluated by the deployment too: its ``tfqi_*`` stages
(crops, both streams at every QP, fits, allocation, its report) run after the ``eval_lfw_*`` stages, in
``dvc.yaml`` order (which is their dependency order), and ``reports/table_tfqi.md`` joins the artifact.

DVC lock contention and similar transient errors are retried; a failing stage fails the
flow run (non-zero final state) with DVC's own error output in the message.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from cdfv import paths

# eval_lfw_{dlib,resnet50}_anchor, eval_lfw_{dlib,resnet50,cresnet39}@<codec>, eval_lfw_bian_*
EVAL_PREFIX = "eval_lfw_"
REPORT_STAGE = "report"
TFQI_PREFIX = "tfqi_"  # Li et al.: tfqi_faces, tfqi_embed, tfqi_texture@, tfqi_feature@, tfqi_fit, ..., tfqi_report
REPORT_STAGES = (REPORT_STAGE, "report_bian", "report_xiao")  # Table 7 / Fig. 4; Bian et al.'s Table 1; Xiao et al.
GALLERY_PREFIX = "eval_gallery"  # Xiao et al.: eval_gallery@<model>, eval_gallery_test@<model> (after eval_lfw_*)
ARTIFACT_KEY = "eval-lfw-metrics"
TRANSIENT_MARKERS = (
    "Unable to acquire lock",
    "is locked",
    "Resource temporarily unavailable",
    "Temporary failure",
    "Connection reset",
)


class StageFailed(RuntimeError):
    """``dvc repro`` exited non-zero for a non-transient reason (the message holds its output)."""


class TransientDvcError(RuntimeError):
    """A ``dvc`` failure worth retrying (lock held by another run, I/O hiccup)."""


class MissingUpstream(RuntimeError):
    """Inputs of the evaluation stages are missing; the message names the stages to run."""


def dvc_executable() -> str:
    """The ``dvc`` next to this interpreter (the project venv), else the one on PATH."""
    sibling = Path(sys.executable).with_name("dvc")
    return str(sibling) if sibling.exists() else "dvc"


def _retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: only :class:`TransientDvcError` is retried."""
    try:
        state.result()
    except TransientDvcError:
        return True
    except BaseException:
        return False
    return False


def default_targets(workspace: Path) -> list[str]:
    """Every ``eval_lfw_*`` stage the workspace's params define, Xiao et al.'s ``eval_gallery*`` stages, then the
    report stages, then ``tfqi_*``."""
    from dvc.repo import Repo

    with contextlib.chdir(workspace), Repo(".") as repo:  # DVC addresses stages relative to the cwd
        names = [s.addressing for s in repo.index.stages]
    evals = [n for n in names if n.startswith(EVAL_PREFIX)]
    gallery = [n for n in names if n.startswith(GALLERY_PREFIX)]  # read the eval_lfw_* embeddings
    tfqi = [n for n in names if n.startswith(TFQI_PREFIX)]  # dvc.yaml order = dependency order
    return [*evals, *gallery, *(r for r in REPORT_STAGES if r in names), *tfqi]


def missing_upstream(workspace: Path, targets: list[str]) -> dict[str, list[str]]:
    """Map ``producing stage -> missing dependency paths`` for the deps of ``targets``.

    Dependencies produced by another target are not required to exist (DVC makes them first).
    """
    from dvc.repo import Repo

    with contextlib.chdir(workspace), Repo(".") as repo:
        stages = [s for t in targets for s in repo.stage.collect(t)]
        producers = {str(Path(o.def_path)): s.addressing for s in repo.index.stages for o in s.outs}
        own = {str(Path(o.def_path)) for s in stages for o in s.outs}
        missing: dict[str, list[str]] = {}
        for stage in stages:
            for dep in stage.deps:
                rel = str(Path(dep.def_path))
                if rel in own or (workspace / rel).exists() or any(o.startswith(rel.rstrip("/") + "/") for o in own):
                    continue  # made by a target first, already there, or a folder the targets fill
                producer = (
                    producers.get(rel) or _producer_of_parent(rel, producers) or "(no stage in dvc.yaml produces it)"
                )
                missing.setdefault(producer, [])
                if rel not in missing[producer]:
                    missing[producer].append(rel)
    return missing


def _producer_of_parent(rel: str, producers: dict[str, str]) -> str | None:
    for out, stage in producers.items():
        if rel.startswith(out.rstrip("/") + "/"):
            return stage
    return None


@task(name="check-upstream")
def check_upstream(workspace: str, targets: list[str]) -> None:
    """Fail naming the stage(s) to run when an input of the evaluation is missing."""
    missing = missing_upstream(Path(workspace), targets)
    if missing:
        lines = [f"  {stage}: {', '.join(paths)}" for stage, paths in sorted(missing.items())]
        stages = " ".join(sorted(s for s in missing if not s.startswith("(")))
        raise MissingUpstream(
            "the evaluation inputs below are missing (stage that produces them: paths):\n"
            + "\n".join(lines)
            + f"\nRun `dvc repro {stages}` in {workspace} first, or run the deployment with upstream=true."
        )


@task(name="dvc-repro", retries=2, retry_delay_seconds=10, retry_condition_fn=_retry_if_transient)
def dvc_repro(workspace: str, targets: list[str], single_item: bool) -> str:
    """``dvc repro [--single-item] <targets>`` in ``workspace``; raises on failure."""
    logger = get_run_logger()
    cmd = [dvc_executable(), "repro", *(["--single-item"] if single_item else []), *targets]
    logger.info("running %s in %s", " ".join(cmd), workspace)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(cmd, cwd=workspace, capture_output=True, text=True, env=env)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        if any(m in output for m in TRANSIENT_MARKERS):
            raise TransientDvcError(f"transient dvc failure (will retry):\n{tail}")
        raise StageFailed(f"`{' '.join(cmd[1:])}` failed with exit code {proc.returncode}:\n{tail}")
    logger.info("%s", "\n".join(output.splitlines()[-20:]))
    return output


@task(name="publish-metrics")
def publish_metrics(workspace: str) -> str:
    """Publish the evaluation metrics table as the ``eval-lfw-metrics`` markdown artifact."""
    from cdfv.evaluate.report import load_eval_results, metrics_table_markdown

    results = load_eval_results(Path(workspace))
    if not results:
        raise StageFailed(f"no metrics in {Path(workspace) / paths.EVAL_METRICS}: did the eval_lfw stages run?")
    markdown = "# LFW verification (eval-lfw)\n\n" + metrics_table_markdown(results)
    for table in (paths.TABLE7, paths.BIAN_TABLE, paths.TFQI_TABLE):
        if (Path(workspace) / table).is_file():
            markdown += "\n\n" + (Path(workspace) / table).read_text()
    create_markdown_artifact(markdown=markdown, key=ARTIFACT_KEY, description="LFW View-2 verification metrics")
    return markdown


@flow(name="eval-lfw", log_prints=True)
def eval_lfw(workspace: str = ".", targets: list[str] | None = None, upstream: bool = False) -> str:
    """Reproduce the LFW evaluation with DVC in ``workspace`` and publish its metrics table."""
    ws = str(Path(workspace).expanduser().resolve())
    if not (Path(ws) / "dvc.yaml").is_file():
        raise FileNotFoundError(f"{ws}: no dvc.yaml here; pass workspace=<DVC workspace root>")
    chosen = list(targets or default_targets(Path(ws)))
    if not chosen:  # never fall through to a bare `dvc repro` (the whole DAG)
        raise FileNotFoundError(f"{ws}/dvc.yaml defines no {EVAL_PREFIX}* stage: nothing to evaluate")
    if not upstream:
        check_upstream(ws, chosen)
    # --single-item takes targets one by one in order: the eval stages, then the report.
    dvc_repro(ws, chosen, single_item=not upstream)
    return publish_metrics(ws)


if __name__ == "__main__":  # pragma: no cover - `python pipelines/evaluate.py [workspace]`
    eval_lfw(sys.argv[1] if len(sys.argv) > 1 else ".")
