"""`cdfv workspace --git`: a DVC workspace that is also a committed git repository, on a machine with no
git identity (CI): what `dvc exp run`, `dvc metrics diff` and `dvc plots diff` need."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cdfv.workspace import GIT_USER
from tests.conftest import BIN, REPO

pytestmark = pytest.mark.slow


def _git(ws: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=True, env=env).stdout


def test_workspace_git_without_a_global_identity(tmp_path: Path, shared_dir: Path) -> None:
    # no global or system git config at all, as on a fresh CI runner
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "DVC_NO_ANALYTICS": "1"}
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        env.pop(var, None)
    ws = tmp_path / "ws"
    cmd = [str(BIN / "cdfv"), "workspace", str(ws), "--profile", "smoke", "--git"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr

    assert _git(ws, "log", "--format=%an <%ae>|%s", env=env).splitlines() == [
        f"{GIT_USER[0]} <{GIT_USER[1]}>|cdfv workspace (profile smoke)"
    ]
    assert _git(ws, "status", "--porcelain", env=env) == ""  # everything committed
    tracked = set(_git(ws, "ls-files", env=env).split())
    assert {"dvc.yaml", "params.yaml", ".dvc/config", ".dvc/plots/series.json", "cdfv/results.py"} <= tracked
    assert not any(p.startswith(".dvc/cache") or "__pycache__" in p for p in tracked)
    assert "no_scm" not in (ws / ".dvc/config").read_text()  # DVC runs in git mode (gitignores its outputs)

    # DVC sees the git history: an experiments table with the baseline commit
    exp = subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=ws, capture_output=True, text=True, env=env)
    assert exp.returncode == 0 and _git(ws, "rev-parse", "HEAD", env=env).strip() in exp.stdout, exp.stderr

    # refreshing the workspace neither re-initialises nor commits
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(_git(ws, "log", "--format=%H", env=env).split()) == 1


def test_workspace_made_without_git_is_converted(tmp_path: Path, shared_dir: Path) -> None:
    from cdfv.workspace import create_workspace

    ws = create_workspace(REPO, tmp_path / "ws", git=False)
    assert "no_scm = True" in (ws / ".dvc/config").read_text() and not (ws / ".git").exists()
    for out in ("data/interim/lfw/png/a.png", "models/resnet50/model.pt", "reports/metrics/detect_lfw.json"):
        (ws / out).parent.mkdir(parents=True, exist_ok=True)
        (ws / out).write_bytes(b"x")  # outputs of earlier runs, never gitignored by DVC in no-scm mode
    create_workspace(REPO, ws, git=True)
    tracked = subprocess.run(["git", "ls-files"], cwd=ws, capture_output=True, text=True, check=True).stdout.split()
    assert "reports/metrics/detect_lfw.json" in tracked  # cache: false results are git's
    assert not [p for p in tracked if p.startswith(("data/", "models/"))]  # cached data never is
    assert "no_scm" not in (ws / ".dvc/config").read_text()
    log = subprocess.run(["git", "log", "--format=%s"], cwd=ws, capture_output=True, text=True, check=True)
    assert log.stdout.strip() == "cdfv workspace (profile smoke)"
    assert {"/config.local", "/tmp", "/cache"} <= set((ws / ".dvc/.gitignore").read_text().split())
