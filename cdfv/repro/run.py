"""``cdfv repro`` (``make repro``): run every stage the data allows, then say what is missing.

1. Validate ``params.yaml``; read the stage graph from ``dvc.yaml`` (``dvc.repo.Repo(...).index``).
2. Plan (:func:`cdfv.repro.plan.make_plan`): stages DVC would rerun whose inputs exist run; the others
   are skipped with the one action that unlocks them (external inputs: :mod:`cdfv.repro.externals`;
   public downloads are fetched here).
3. ``dvc repro --single-item --keep-going <runnable stages, upstream first>``: DVC runs and caches them
   as usual; a skipped stage never runs, so ``report`` and ``rd_report`` build from the metrics that exist.
4. Summary: stages done, up to date, skipped (grouped by the action that unlocks them), failed. The
   exit code is non-zero only when a stage failed for another reason than a missing input.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cdfv.config import load_params
from cdfv.repro.externals import InputChecker
from cdfv.repro.plan import Outcome, StageNode, compact, make_plan, outcome, summary


def _node(stage: object) -> StageNode:
    from dvc.dependency.param import ParamsDependency

    deps = stage.deps  # type: ignore[attr-defined]
    return StageNode(
        name=stage.addressing,  # type: ignore[attr-defined]
        params=tuple(p for d in deps if isinstance(d, ParamsDependency) for p in d.params),
        deps=tuple(Path(d.def_path).as_posix() for d in deps if not isinstance(d, ParamsDependency)),
        outs=tuple(Path(o.def_path).as_posix() for o in stage.outs),  # type: ignore[attr-defined]
    )


def read_graph(root: Path, with_status: bool = False) -> tuple[list[StageNode], set[str]]:
    """Every stage of ``root/dvc.yaml`` (foreach/matrix expanded by DVC) with its deps, outs and params keys,
    and (``with_status``) the stages whose deps, params or outs differ from ``dvc.lock`` (``dvc status``)."""
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(".") as repo:
        stages = list(repo.index.stages)
        nodes = [_node(s) for s in stages]
        if not with_status:
            return nodes, set()
        with repo.lock:  # stages are read under the lock, as `dvc status` does
            return nodes, {s.addressing for s in stages if s.changed()}


def changed_stages(root: Path, names: set[str] | None = None) -> set[str]:
    """Stages (of ``names``, default all) whose deps, params or outs differ from ``dvc.lock``."""
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(".") as repo, repo.lock:
        return {s.addressing for s in repo.index.stages if (names is None or s.addressing in names) and s.changed()}


def dvc_repro(root: Path, targets: list[str]) -> int:
    """``dvc repro --single-item --keep-going <targets>`` in ``root`` (DVC's output goes to the terminal)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", "--keep-going", *targets]
    return subprocess.run(cmd, cwd=root, env=env, check=False).returncode


def run_repro(root: Path = Path("."), echo: Callable[[str], None] = print, dry_run: bool = False) -> Outcome:
    """Plan, run and summarise (see the module docstring); returns the outcome (``.exit_code``).

    ``dry_run``: print the plan and the summary it would lead to; nothing is downloaded (a public
    download counts as available) and nothing runs.
    """
    root = Path(root).resolve()
    params = load_params(root / "params.yaml")  # a bad params.yaml stops here, before any work
    with contextlib.chdir(root):  # relative paths in params.yaml (vggface2.root ...) are the workspace's
        stages, changed = read_graph(root, with_status=True)
        plan = make_plan(
            stages,
            changed,
            InputChecker(params, fetch=not dry_run),
            exists=lambda p: (root / p).exists(),
        )
    echo(
        f"cdfv repro: {len(plan.run)} stage(s) to run, {len(plan.up_to_date)} up to date, {len(plan.skipped)} "
        f"skipped for missing inputs ({compact(plan.skipped) or 'none'})"
    )
    if dry_run:  # the summary this plan leads to if every stage succeeds
        result = outcome(stages, plan, set())
        echo(summary(result).replace(" stage(s) run,", " stage(s) would run,", 1).replace("  done:", "  would run:", 1))
        return result
    rc = dvc_repro(root, plan.run) if plan.run else 0
    still = changed_stages(root, set(plan.run)) if plan.run else set()
    result = outcome(stages, plan, still)
    text = summary(result)
    if rc and not result.failed:
        text += f"\n  (dvc repro exited {rc}; every planned stage is up to date)"
    echo(text)
    return result
