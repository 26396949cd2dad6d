"""The Prefect ingest flow calls the same stage functions (Prefect's test harness, temp SQLite)."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slow


def test_ingest_flow(prefect_harness, tmp_path: Path, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from cdfv.workspace import profile_params
    from pipelines.ingest import ingest_flow

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(profile_params(repo, "smoke")))
    state = ingest_flow("params.yaml", str(tmp_path), True, return_state=True)
    assert state.is_completed()
    assert pq.read_table(tmp_path / "data/interim/lfw/images.parquet").num_rows == 25
    assert pq.read_table(tmp_path / "data/interim/vggface2/images.parquet").num_rows == 25


def test_ingest_flow_fails_loudly(prefect_harness, tmp_path: Path, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from cdfv.workspace import profile_params
    from pipelines.ingest import ingest_flow

    repo = Path(__file__).resolve().parents[2]
    data = profile_params(repo, "smoke")
    data["vggface2"]["root"] = str(tmp_path / "absent")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    state = ingest_flow("params.yaml", str(tmp_path), True, return_state=True)
    assert state.is_failed()
