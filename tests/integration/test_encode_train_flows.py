"""The Prefect encode and train flows run the same stage functions (Prefect test harness)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slow


def test_encode_then_train_flows(prefect_harness, tmp_path: Path, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from cdfv.align.stage import run_align_lfw
    from cdfv.config import parse_params
    from cdfv.data.lfw import run_ingest_lfw
    from cdfv.data.vggface2 import run_ingest_vggface2
    from cdfv.detect.stage import run_detect_lfw
    from cdfv.workspace import profile_params
    from pipelines.encode import encode_flow
    from pipelines.train import train_flow

    repo = Path(__file__).resolve().parents[2]
    data = profile_params(repo, "smoke")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    params = parse_params(data)
    run_ingest_lfw(params, tmp_path)
    run_ingest_vggface2(params, tmp_path)
    run_detect_lfw(params, tmp_path)
    run_align_lfw(params, tmp_path)

    codecs = ["JPEG_Q1", "HEVC_QP35", "Balle2018_mse_Q1"]
    state = encode_flow("params.yaml", str(tmp_path), codecs, True, return_state=True)
    assert state.is_completed()
    summaries = state.result()
    assert set(summaries) == set(codecs)
    for c in codecs:
        index = pq.read_table(tmp_path / f"data/processed/lfw/{c}/index.parquet").to_pandas()
        assert len(index) == 25 and (index.bpp_256 > 0).all(), c
    assert all(summaries[c]["n_failed"] == 0 and summaries[c]["all"]["n"] == 25 for c in codecs)
    assert (tmp_path / "data/processed/vggface2/latents/Balle2018_mse_Q1/index.parquet").is_file()

    state = train_flow("params.yaml", str(tmp_path), ["Balle2018_mse_Q1"], False, return_state=True)
    assert state.is_completed()
    for out in state.result():
        assert (tmp_path / out).stat().st_size > 1_000_000, out


def test_encode_flow_fails_loudly_on_unknown_codec(prefect_harness, tmp_path: Path, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from cdfv.workspace import profile_params
    from pipelines.encode import encode_flow

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(profile_params(repo, "smoke")))
    state = encode_flow("params.yaml", str(tmp_path), ["JPEG_Q7"], False, return_state=True)
    assert state.is_failed()
