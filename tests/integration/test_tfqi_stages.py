"""End to end: `dvc repro tfqi_report` on lfw-mini (MTCNN crops, dlib features, real HEVC and range-coded bytes).

A short QP grid (2 texture, 3 feature points) cannot support the R-D fits, so this also walks the
"fit failed: <why>" path: the allocation still runs the brute-force grid and the report says why the
model-based column is empty. The full smoke grid (fits that succeed) runs in test_smoke_dag.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cdfv.codecs.registry import get_codec
from cdfv.io import read_rgb
from cdfv.tfqi.bitstream import decode_levels
from cdfv.tfqi.quantise import q_step
from tests.conftest import run_dvc

pytestmark = pytest.mark.slow
pytest.importorskip("facenet_pytorch")  # MTCNN detections (detect_lfw_mtcnn)

PIXELS = 160 * 160


def test_dvc_repro_tfqi_on_lfw_mini(dvc_workspace) -> None:  # type: ignore[no-untyped-def]
    ws: Path = dvc_workspace({"tfqi": {"texture_qps": [32, 51], "feature": {"qps": [16, 40, 51]}}})
    run_dvc(ws, "repro", "tfqi_report")
    assert "up to date" in run_dvc(ws, "status", "tfqi_report").stdout

    faces = pq.read_table(ws / "data/processed/tfqi/faces.parquet").to_pylist()
    pairs = pq.read_table(ws / "data/interim/lfw/pairs.parquet")
    pair_ids = set(pairs.column("left_id").to_pylist()) | set(pairs.column("right_id").to_pylist())
    assert {f["image_id"] for f in faces} == pair_ids  # every image of the pairs, both sides coded
    assert all(read_rgb(ws / f["path"]).shape == (160, 160, 3) for f in faces)

    # texture: real HEVC access units; bytes on disk = bytes counted; they decode to the stored reconstruction
    codec = get_codec("HEVC_QP51")
    index = pq.read_table(ws / "data/processed/tfqi/texture/QP51/index.parquet").to_pylist()
    for row in index[:5]:
        blob = (ws / row["bitstream"]).read_bytes()
        assert blob.startswith(b"\x00\x00\x00\x01") and len(blob) == row["bytes"]
        assert row["bpp"] == pytest.approx(8 * len(blob) / PIXELS)
        assert np.array_equal(codec.decode(blob), read_rgb(ws / row["decoded"]))
        original = read_rgb(ws / f"data/processed/tfqi/faces/{row['image_id']}.png").astype(np.float64)
        assert row["mse"] == pytest.approx(float(np.mean((original - read_rgb(ws / row["decoded"])) ** 2)))
    texture = json.loads((ws / "reports/metrics/tfqi/texture/QP51.json").read_text())
    assert texture["bpp"] == pytest.approx(np.mean([r["bpp"] for r in index]))
    assert texture["error_rate"] == pytest.approx(1 - texture["accuracy"])

    # feature: each stored bitstream decodes to its levels; reconstruction within Q_step / 2 of the lossless feature
    lossless = pq.read_table(ws / "data/processed/tfqi/embeddings.parquet").to_pylist()
    original = {r["image_id"]: np.asarray(r["embedding"]) for r in lossless}
    coded = pq.read_table(ws / "data/processed/tfqi/feature/QP40/index.parquet").to_pylist()
    assert len(coded) == len(original)
    for row in coded:
        qp, levels = decode_levels(row["bitstream"], 128)
        assert qp == 40 and levels.tolist() == row["levels"] and row["bytes"] == len(row["bitstream"])
        assert np.allclose(row["decoded"], (levels + 0.5) * q_step(40), atol=1e-7)
        assert np.abs(np.asarray(row["decoded"]) - original[row["image_id"]]).max() <= q_step(40) / 2 + 1e-6
    feature = json.loads((ws / "reports/metrics/tfqi/feature/QP40.json").read_text())
    assert feature["bpp"] == pytest.approx(np.mean([8 * r["bytes"] / PIXELS for r in coded]))
    assert set(feature) == {"bpp", "bits_per_component", "accuracy", "error_rate", "auc", "eer"}  # numbers only

    # too few points for either model: recorded, and the allocation goes on with the grid
    fit = json.loads((ws / "reports/tfqi/fit.json").read_text())
    assert fit["texture"]["status"] == "fit failed: 2 points for 2 parameters (need at least 3)"
    assert fit["feature"]["status"].startswith("fit failed: 3 points for 4 parameters")
    assert json.loads((ws / "reports/metrics/tfqi/fit.json").read_text()) == {"texture_fit_ok": 0, "feature_fit_ok": 0}
    rows = list(csv.DictReader((ws / "reports/tfqi/allocation.csv").open()))
    assert len(rows) == 3 * 12 and all(r["model_note"].startswith("fit failed") for r in rows)
    assert sum(bool(r["grid_qp1"]) for r in rows) > 0
    table = (ws / "reports/table_tfqi.md").read_text()
    for text in ("293.4·e^(-26.7·R_t)", "0.9826", "0.048·e^(-276.8·R_f) + 0.0068·e^(3.882·R_f)", "0.8393"):
        assert text in table  # the paper's fits beside ours
    assert "fit failed: 2 points for 2 parameters" in table
    assert (ws / "reports/figures/tfqi.png").stat().st_size > 20_000
    header = (ws / "reports/plots/tfqi/joint_model.csv").read_text().splitlines()
    assert header == ["bpp,tfqi,accuracy,budget,qp1,qp2"]  # no model-based points without fits
    assert len((ws / "reports/plots/tfqi/texture_only.csv").read_text().splitlines()) == 3


def test_eval_deployment_targets_include_tfqi_in_dependency_order(dvc_workspace) -> None:  # type: ignore[no-untyped-def]
    from pipelines.evaluate import default_targets

    targets = default_targets(dvc_workspace())
    tfqi = [t for t in targets if t.startswith("tfqi_")]
    assert targets[-len(tfqi) :] == tfqi and targets.index("report") < targets.index("tfqi_faces")
    order = ["tfqi_faces", "tfqi_texture@22", "tfqi_embed", "tfqi_feature@4", "tfqi_fit", "tfqi_allocate"]
    assert {*order, "tfqi_report"} <= set(tfqi) and tfqi[-1] == "tfqi_report"
    assert tfqi.index("tfqi_faces") < tfqi.index("tfqi_embed") < tfqi.index("tfqi_feature@4") < tfqi.index("tfqi_fit")
    assert max(tfqi.index(t) for t in tfqi if "@" in t) < tfqi.index("tfqi_fit") < tfqi.index("tfqi_allocate")
