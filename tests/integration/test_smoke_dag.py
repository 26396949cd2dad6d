"""`make smoke`: the whole DAG offline on ../shared/fixtures ends with the report."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO, run_dvc

pytestmark = pytest.mark.slow


def test_make_smoke_runs_the_whole_dag(tmp_path: Path, shared_dir: Path) -> None:
    ws = tmp_path / "smoke"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(
        ["make", "-C", str(REPO), "smoke", f"SMOKE_DIR={ws}", f"VENV={BIN.parent}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    # every stage ran and nothing is left to do
    status = run_dvc(ws, "status").stdout
    assert "Data and pipelines are up to date" in status, status
    evals = {p.stem: json.loads(p.read_text()) for p in (ws / "reports/metrics/eval").glob("*.json")}
    assert {"ResNet50_Original_Anchor", "Dlib_Original_Anchor", "cResNet39_Balle2018_mse_Q1", "Dlib_JPEG_Q1"} <= set(
        evals
    )
    assert {m["pipeline"] for m in evals.values()} == {"A", "B1", "B2", "C"}  # all four pipelines (thesis ch. 5-6)
    for name, m in evals.items():
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["eer"] <= 1.0, name
    # the off-the-shelf dlib recogniser separates the fixture pairs well
    assert evals["Dlib_Original_Anchor"]["auc"] > 0.95
    table = (ws / "reports/table7.md").read_text()
    for name in evals:
        assert name in table, name
    assert "## Not run" not in table  # with VGGFace2 every configured solution is evaluated
    assert (ws / "reports/figures/fig4.png").stat().st_size > 10_000
    assert (ws / "reports/figures/align_contact_sheet.png").is_file()
    complexity = json.loads((ws / "reports/metrics/complexity.json").read_text())
    assert abs(complexity["ResNet50_Original_Anchor"]["gmac"] - 3.89) / 3.89 < 0.005
