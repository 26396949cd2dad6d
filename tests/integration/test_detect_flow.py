"""The Prefect detect/align flow fans out over chunks and calls the same stage functions."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slow


def test_detect_align_flow_matches_the_stage(prefect_harness, tmp_path: Path, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from cdfv.config import parse_params
    from cdfv.data.lfw import run_ingest_lfw
    from cdfv.detect.stage import run_detect_lfw
    from cdfv.workspace import profile_params
    from pipelines.detect import detect_align_flow

    repo = Path(__file__).resolve().parents[2]
    data = profile_params(repo, "smoke", {"detect": {"chunk_size": 7}})  # 25 images -> 4 chunks
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    params = parse_params(data)
    run_ingest_lfw(params, tmp_path)
    reference = run_detect_lfw(params, tmp_path)
    ref_rows = pq.read_table(tmp_path / "data/interim/lfw/detections.parquet").to_pylist()

    state = detect_align_flow("params.yaml", str(tmp_path), True, return_state=True)
    assert state.is_completed()
    out = state.result()
    assert out["detect"]["forward_passes"] == reference["forward_passes"] == 25
    rows = pq.read_table(tmp_path / "data/interim/lfw/detections.parquet").to_pylist()
    assert rows == ref_rows  # same rows, same order, whatever order the chunks finished in
    faces = pq.read_table(tmp_path / "data/interim/lfw/faces.parquet").to_pandas()
    assert len(faces) == 25 and all((tmp_path / p).is_file() for p in faces.path)
    assert (tmp_path / "reports/figures/align_contact_sheet.png").is_file()
