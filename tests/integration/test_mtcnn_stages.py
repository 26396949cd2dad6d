"""End to end: `dvc repro align_lfw_mtcnn@sphereface_96x112` (ingest → MTCNN detections → 96x112 faces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cdfv.io import read_rgb
from cdfv.results import read_results
from tests.conftest import run_dvc

pytestmark = pytest.mark.slow
pytest.importorskip("facenet_pytorch")


def test_dvc_repro_mtcnn_faces_on_lfw_mini(dvc_workspace) -> None:  # type: ignore[no-untyped-def]
    ws: Path = dvc_workspace()
    run_dvc(ws, "repro", "align_lfw_mtcnn@sphereface_96x112")

    det = pq.read_table(ws / "data/interim/lfw/mtcnn/detections.parquet").to_pandas()
    assert len(det) == 25 and (det.status == "ok").all() and (det.backend == "mtcnn").all()
    assert not (ws / "data/interim/lfw/detections.parquet").exists()  # pipelines A-C's detections untouched
    m = read_results(ws, Path("reports/metrics/detect_lfw_mtcnn.json"))
    assert m["ok"] == 25 and m["backend"] == "mtcnn" and m["forward_passes_per_image"] == 1.0

    faces = pq.read_table(ws / "data/interim/lfw/mtcnn/sphereface_96x112/faces.parquet").to_pandas()
    assert list(faces.image_id) == list(det.image_id)
    ref = np.array([[30.2946, 51.6963], [65.5318, 51.5014]])
    for r in faces.itertuples():
        img = read_rgb(ws / r.path)
        assert img.shape == (112, 96, 3)
        eyes = np.array([[r.right_eye_x, r.right_eye_y], [r.left_eye_x, r.left_eye_y]])
        assert np.abs(eyes - ref).max() < 3.5, r.image_id
    a = read_results(ws, Path("reports/metrics/align_lfw_mtcnn/sphereface_96x112.json"))
    assert (
        a["aligned"] == 25
        and a["aligned_share"] == 1.0
        and (a["width"], a["height"]) == (96, 112)
        and a["landmark_rms_px"] < 6.5
    )
