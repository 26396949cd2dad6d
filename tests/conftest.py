"""Shared pytest fixtures: the ../shared fixtures folder and throw-away DVC workspaces."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CDFV_SHARED", REPO.parent / "shared"))
#: CI sets this (``.ci/run``): missing fixtures fail the run instead of skipping the tests that need them.
REQUIRE_FIXTURES = os.environ.get("CDFV_REQUIRE_FIXTURES") == "1"
BIN = Path(sys.executable).parent  # the venv's bin: cdfv, dvc, prefect

# subprocesses (dvc repro -> `cdfv ...`) must find the venv's console scripts
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("CDFV_CACHE", str(REPO / "build" / "test-cache"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` next to the repository (real fixtures); skip when absent (fail under CI)."""
    if not (SHARED / "fixtures").is_dir():
        msg = f"real fixtures not found at {SHARED / 'fixtures'} (clone with ../shared beside the repo)"
        if REQUIRE_FIXTURES:
            pytest.fail(f"{msg}; CDFV_REQUIRE_FIXTURES=1 makes this an error", pytrace=False)
        pytest.skip(msg)
    return SHARED


@pytest.fixture
def dvc_workspace(tmp_path: Path, shared_dir: Path) -> Callable[..., Path]:
    """Factory: ``ws = dvc_workspace(overrides={...}, profile="smoke")`` -> a fresh DVC workspace.

    The workspace holds copies of dvc.yaml/cdfv/pipelines and params.yaml merged with the profile and
    ``overrides``; run ``run_dvc(ws, "repro", "stage")`` in it. ``git=True``: also a git repository with
    an initial commit (``dvc metrics diff``, ``dvc exp run``).
    """
    from cdfv.workspace import create_workspace

    def make(
        overrides: dict[str, Any] | None = None, profile: str | None = "smoke", name: str = "ws", git: bool = False
    ) -> Path:
        return create_workspace(REPO, tmp_path / name, profile=profile, overrides=overrides, git=git)

    return make


def run_dvc(ws: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``dvc <args>`` in ``ws``; on failure the assertion shows DVC's output."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=ws, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def prefect_harness():  # type: ignore[no-untyped-def]
    """One temporary Prefect server + SQLite database for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
