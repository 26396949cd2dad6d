"""The ``eval-lfw`` Prefect deployment against a REAL Prefect server, and DVC metrics diffs.

A Prefect server (SQLite, PREFECT_HOME in tmp) is started on 127.0.0.1 in the test, the process
work pool and the deployment from ``pipelines/prefect.yaml`` are created with the Prefect CLI, a
process worker executes the runs, and the runs drive ``dvc repro`` in a smoke DVC workspace.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from cdfv import paths
from cdfv.evaluate.stage import EVAL_KIND
from cdfv.results import read_results
from tests.conftest import BIN, REPO, run_dvc

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start ``prefect server start --host 127.0.0.1 --port <free>``; yield the env that points at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "PWD": str(REPO),  # prefect.yaml's pull step: {{ $PWD }} = where `prefect deploy` runs
    }
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prefect server did not start:\n{(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield env
    finally:
        _stop(server, log)


def _stop(proc: subprocess.Popen[Any], log: IO[Any]) -> None:
    """Terminate a background process (kill after 20 s) and close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _prefect(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _run_deployment(env: dict[str, str], *params: str) -> tuple[int, str, str]:
    """``prefect deployment run eval-lfw/eval-lfw --watch``: (exit code, output, flow-run state text)."""
    args = ["deployment", "run", "eval-lfw/eval-lfw", "--watch", "--watch-interval", "1", "--watch-timeout", "400"]
    for p in params:
        args += ["--param", p]
    proc = _prefect(env, *args, check=False, timeout=450)
    out = proc.stdout + proc.stderr
    m = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert m, out
    inspect = _prefect(env, "flow-run", "inspect", m.group(1)).stdout
    return proc.returncode, out, inspect


def test_eval_lfw_deployment_on_real_prefect_server(prefect_env: dict[str, str], dvc_workspace) -> None:
    ws = dvc_workspace()
    _prefect(prefect_env, "work-pool", "create", "cdfv-process", "--type", "process")
    deployed = _prefect(prefect_env, "deploy", "--prefect-file", "pipelines/prefect.yaml", "--name", "eval-lfw")
    assert "eval-lfw/eval-lfw" in deployed.stdout + deployed.stderr
    worker_log = open(Path(prefect_env["PREFECT_HOME"]) / "worker.log", "w")
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "cdfv-process", "--limit", "1"],
        cwd=REPO,
        env=prefect_env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # 1. Upstream outputs missing and upstream=false: the run fails (non-zero) naming the stages to run.
        rc, out, state = _run_deployment(prefect_env, f"workspace={json.dumps(str(ws))}")
        assert rc != 0, out
        assert "Failed" in out
        assert "align_lfw" in state and "upstream=true" in state, state

        # 2. upstream=true on the dlib original anchor: DVC builds ingest -> detect -> align -> eval.
        rc, out, state = _run_deployment(
            prefect_env, f"workspace={json.dumps(str(ws))}", 'targets=["eval_lfw_dlib_anchor"]', "upstream=true"
        )
        assert rc == 0, f"{out}\n{state}\n{(Path(prefect_env['PREFECT_HOME']) / 'worker.log').read_text()[-4000:]}"
        assert "Completed" in out
        metrics = read_results(ws, paths.eval_json("Dlib_Original_Anchor"))
        assert metrics["n_pairs"] == 76 and 0.5 < metrics["auc"] <= 1.0
        # DVC, not the flow, owns the outputs: the stage is recorded in dvc.lock and now up to date.
        assert "eval_lfw_dlib_anchor" in yaml.safe_load((ws / "dvc.lock").read_text())["stages"]
        assert "up to date" in run_dvc(ws, "status", "eval_lfw_dlib_anchor").stdout

        # 3. The metrics table is published as a markdown artifact.
        art = _prefect(prefect_env, "artifact", "inspect", "eval-lfw-metrics").stdout
        assert "Dlib_Original_Anchor" in art and "TAR@FAR=1e-3" in art
        assert "| 76 | 0 |" in art  # pairs and fallback pairs: read from the result's details
    finally:
        _stop(worker, worker_log)


def test_metrics_diff_after_changing_one_smoke_param(dvc_workspace) -> None:
    """`dvc metrics diff` shows the eval metrics moving after one param of the smoke profile changes."""
    ws = dvc_workspace(git=True)  # `dvc metrics diff` compares git revisions
    run_dvc(ws, "repro", "eval_lfw_dlib_anchor")
    subprocess.run(["git", "add", "-A"], cwd=ws, check=True)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=ws, check=True)  # the workspace's own identity
    params = yaml.safe_load((ws / "params.yaml").read_text())
    assert params["align"]["interpolation"] == "bilinear"
    params["align"]["interpolation"] = "bicubic"  # different pixels -> different embeddings -> scores
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run_dvc(ws, "repro", "eval_lfw_dlib_anchor").stdout
    assert "Running stage 'align_lfw'" in out and "Running stage 'eval_lfw_dlib_anchor'" in out
    # only declared eval metrics can appear (align_lfw declares none; its counts and timing are details)
    diff = json.loads(run_dvc(ws, "metrics", "diff", "--json").stdout)
    assert set(diff) <= {"reports/metrics/eval/Dlib_Original_Anchor.json"}, diff
    assert all(set(rows) <= set(EVAL_KIND.keys) for rows in diff.values()), diff
    # the scores moved: the EER threshold (a detail) differs from the committed baseline's
    details = "reports/details/eval/Dlib_Original_Anchor.json"
    before = json.loads(subprocess.run(["git", "show", f"HEAD:{details}"], cwd=ws, capture_output=True).stdout)
    assert before["eer_threshold"] != json.loads((ws / details).read_text())["eer_threshold"]
