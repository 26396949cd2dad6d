"""`make smoke`: the whole DAG offline on ../shared/fixtures ends with the report."""

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
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
    assert (ws / "reports/figures/fig4.png").stat().st_size > 10_000
    assert (ws / "reports/figures/align_contact_sheet.png").is_file()
    complexity = json.loads((ws / "reports/metrics/complexity.json").read_text())
    assert abs(complexity["ResNet50_Original_Anchor"]["gmac"] - 3.89) / 3.89 < 0.005

    # Li et al. 2019 (tfqi_*): both streams at every smoke QP, the fits, the allocation table, the curves
    for qp in (22, 32, 42, 51):
        assert json.loads((ws / f"reports/metrics/tfqi/texture/QP{qp}.json").read_text())["bpp"] > 0
    for qp in (4, 16, 28, 40, 51):
        assert json.loads((ws / f"reports/metrics/tfqi/feature/QP{qp}.json").read_text())["bpp"] > 0
    fit = json.loads((ws / "reports/tfqi/fit.json").read_text())
    assert fit["texture"]["status"] == "ok" and fit["texture"]["r2"] > 0.9
    assert fit["feature"]["status"] == "ok" or fit["feature"]["status"].startswith("fit failed: ")
    allocation = json.loads((ws / "reports/tfqi/allocation.json").read_text())
    assert len(allocation["rows"]) == 3 * 12 and all("grid_tfqi" in r or "grid_note" in r for r in allocation["rows"])
    assert "293.4" in (ws / "reports/table_tfqi.md").read_text()
    assert (ws / "reports/figures/tfqi.png").stat().st_size > 20_000
    for name in ("joint_model", "joint_grid", "texture_only", "feature_only"):
        assert (ws / f"reports/plots/tfqi/{name}.csv").is_file()
    # Bian et al. 2019: MTCNN faces, the three training steps, every coded point, Table 1 and the curves
    assert json.loads((ws / "reports/metrics/detect_lfw_mtcnn.json").read_text())["ok"] == 25
    bian = {p.stem: json.loads(p.read_text()) for p in (ws / "reports/metrics/bian/eval").glob("*.json")}
    assert {"Original", "CompNet_C3_joint", "CompNet_C3_pretrain", "JPEG_Q1", "JPEG2000_mse_R88"} <= set(bian)
    for name, m in bian.items():
        assert 0.0 <= m["accuracy"] <= 1.0 and m["size_mb"] > 0 and m["bpp"] > 0, name
    for c in (1, 2, 3):
        index = pq.read_table(ws / f"data/processed/bian/CompNet_C{c}_joint/index.parquet").to_pylist()
        assert len(index) == 25 and all(
            (ws / r["bitstream"]).stat().st_size == r["bytes"] for r in index
        )  # the rate is the PNG files' size
    table_bian = (ws / "reports/table_bian.md").read_text()
    assert "| 30.6 |" in table_bian and "| 89.48 |" in table_bian and "CompNet_C3_joint" in table_bian
    assert (ws / "reports/figures/fig4_bian.png").stat().st_size > 10_000
    assert (ws / "reports/plots/bian/rate_metric/Sphere20_CompNet_joint.csv").is_file()
