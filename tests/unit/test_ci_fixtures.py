"""CI fails, not skips, when the ../shared fixtures are missing (CDFV_REQUIRE_FIXTURES=1, set by .ci/run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run_fixture_test(tmp_path: Path, require: bool) -> subprocess.CompletedProcess[str]:
    test = REPO / "tests" / "unit" / "test_pairs.py"  # its tests use the shared_dir fixture
    env = {**os.environ, "CDFV_SHARED": str(tmp_path / "no-shared-here")}
    env.pop("CDFV_REQUIRE_FIXTURES", None)
    if require:
        env["CDFV_REQUIRE_FIXTURES"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "official", str(test)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_missing_fixtures_skip_locally_and_fail_under_ci(tmp_path: Path) -> None:
    local = _run_fixture_test(tmp_path, require=False)
    assert local.returncode == 0 and "skipped" in local.stdout, local.stdout
    ci = _run_fixture_test(tmp_path, require=True)
    assert ci.returncode != 0, ci.stdout
    assert "fixtures not found" in ci.stdout and "CDFV_REQUIRE_FIXTURES=1" in ci.stdout


def test_ci_entry_point_requires_fixtures() -> None:
    assert "export CDFV_REQUIRE_FIXTURES=1" in (REPO / ".ci" / "run").read_text()
