"""End to end: real `dvc repro align_lfw` (ingest → detect with dlib → align) on LFW-mini."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cdfv.io import read_rgb
from cdfv.io import read_rgb as load_face
from tests.conftest import run_dvc

pytestmark = pytest.mark.slow


def test_dvc_repro_align_lfw_on_lfw_mini(dvc_workspace) -> None:  # type: ignore[no-untyped-def]
    ws: Path = dvc_workspace()
    run_dvc(ws, "repro", "align_lfw")

    images = pq.read_table(ws / "data/interim/lfw/images.parquet").to_pandas()
    det = pq.read_table(ws / "data/interim/lfw/detections.parquet").to_pandas()
    faces = pq.read_table(ws / "data/interim/lfw/faces.parquet").to_pandas()
    assert len(det) == len(faces) == len(images) == 25
    assert list(det.image_id) == list(images.image_id) == list(faces.image_id)

    # every image gets a face containing, and near, the centre (the heuristic's whole point)
    assert (det.status == "ok").all() and (det.backend == "dlib").all()
    for r in det.itertuples():
        cx, cy = r.width / 2, r.height / 2
        assert r.x1 <= cx <= r.x2 and r.y1 <= cy <= r.y2, r.image_id
        assert abs((r.x1 + r.x2) / 2 - cx) < 0.15 * r.width and abs((r.y1 + r.y2) / 2 - cy) < 0.15 * r.height
        assert r.threshold_used <= r.score and r.n_candidates >= 1
    # declared metrics: shares of the readable images and the mean accepting threshold (dlib walk starts at 1.0)
    metrics = json.loads((ws / "reports/metrics/detect_lfw.json").read_text())
    assert set(metrics) == {"detected", "detected_at_start", "mean_threshold"} and metrics["detected"] == 1.0
    assert metrics["detected_at_start"] == pytest.approx((det.threshold_used == 1.0).mean(), rel=1e-5)
    assert metrics["mean_threshold"] == pytest.approx(det.threshold_used.mean(), rel=1e-5)
    details = json.loads((ws / "reports/details/detect_lfw.json").read_text())  # counts, timing
    assert details["forward_passes"] == 25 and details["forward_passes_per_image"] == 1.0
    assert details["ok"] == 25 and details["seconds"] > 0

    # aligned 224x224 PNGs, pad offsets exact, eyes level
    for r in faces.itertuples():
        assert r.status == "ok" and r.path.startswith("data/interim/lfw/faces/")
        img = load_face(ws / r.path)
        assert img.shape == (224, 224, 3)
        assert min(r.pad_top + r.pad_bottom, r.pad_left + r.pad_right) == 0  # longest side is 224
        if r.pad_left:
            assert not img[:, : r.pad_left].any() and not img[:, 224 - r.pad_right :].any()
        if r.pad_top:
            assert not img[: r.pad_top].any() and not img[224 - r.pad_bottom :].any()
        assert abs(r.right_eye_y - r.left_eye_y) < 1e-3 and r.right_eye_x < r.left_eye_x

    sheet = read_rgb(ws / "reports/figures/align_contact_sheet.png")
    assert sheet.shape[0] >= 244 and sheet.shape[1] >= 448 and sheet.std() > 10

    # an alignment knob reruns alignment only, never the detector
    params = (ws / "params.yaml").read_text().replace("interpolation: bilinear", "interpolation: area", 1)
    (ws / "params.yaml").write_text(params)
    out = run_dvc(ws, "repro", "align_lfw").stdout
    assert "Running stage 'align_lfw'" in out and "Running stage 'detect_lfw'" not in out


def test_corrupt_png_becomes_unreadable_row_not_a_crash(dvc_workspace) -> None:  # type: ignore[no-untyped-def]
    ws: Path = dvc_workspace(overrides={"detect": {"fallback": "centre_crop"}})
    run_dvc(ws, "repro", "ingest_lfw")
    images = pq.read_table(ws / "data/interim/lfw/images.parquet").to_pandas()
    victim = ws / images.path[3]
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:100])  # truncated PNG
    proc = run_dvc(ws, "repro", "--single-item", "detect_lfw")
    assert "unreadable" in proc.stdout + proc.stderr
    det = pq.read_table(ws / "data/interim/lfw/detections.parquet").to_pandas().set_index("image_id")
    bad = det.loc[images.image_id[3]]
    assert bad.status == "unreadable" and images.path[3].split("/")[-1] in bad.error
    assert (det.status == "ok").sum() == 24
    run_dvc(ws, "repro", "--single-item", "align_lfw")
    faces = pq.read_table(ws / "data/interim/lfw/faces.parquet").to_pandas().set_index("image_id")
    assert pd.isna(faces.loc[images.image_id[3]].path) and faces.path.notna().sum() == 24
    assert json.loads((ws / "reports/details/align_lfw.json").read_text())["unreadable"] == 1
    assert json.loads((ws / "reports/metrics/detect_lfw.json").read_text())["detected"] == 1.0  # of readable
    assert np.isfinite(faces.angle.dropna()).all()
