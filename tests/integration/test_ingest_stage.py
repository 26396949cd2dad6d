"""End to end: a real HTTP server on 127.0.0.1 + a real `dvc repro ingest_lfw` in a temp workspace."""

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import run_dvc
from tests.httpserver import serve

pytestmark = pytest.mark.slow


def test_dvc_repro_ingest_lfw_over_http(tmp_path: Path, shared_dir: Path, dvc_workspace) -> None:  # type: ignore[no-untyped-def]
    srv = tmp_path / "srv"
    srv.mkdir()
    mini = shared_dir / "fixtures/lfw-mini"
    shutil.copy(mini / "lfw-mini.tgz", srv)
    shutil.copy(mini / "pairs.txt", srv)
    with serve(srv) as (url, log):
        ws = dvc_workspace({"lfw": {"archive_url": f"{url}/lfw-mini.tgz", "pairs_url": f"{url}/pairs.txt"}})
        run_dvc(ws, "repro", "ingest_lfw")
        assert {name for name, _ in log} == {"lfw-mini.tgz", "pairs.txt"}
        images = pq.read_table(ws / "data/interim/lfw/images.parquet").to_pandas()
        pairs = pq.read_table(ws / "data/interim/lfw/pairs.parquet").to_pandas()
        assert len(images) == 25 and images.identity.nunique() == 9
        assert len(pairs) == 76 and pairs.same.sum() == 38
        assert set(pairs.left_id) | set(pairs.right_id) <= set(images.image_id)
        assert all((ws / p).is_file() for p in images.path)
        # cached: a second repro does nothing
        out = run_dvc(ws, "repro", "ingest_lfw").stdout
        assert "didn't change" in out or "is cached" in out or "up to date" in out.lower()


def test_dvc_repro_checksum_mismatch_fails_clearly(tmp_path: Path, shared_dir: Path, dvc_workspace) -> None:  # type: ignore[no-untyped-def]
    ws = dvc_workspace({"lfw": {"archive_sha256": "0" * 64}})
    proc = run_dvc(ws, "repro", "ingest_lfw", check=False)
    assert proc.returncode != 0
    assert "checksum mismatch" in proc.stderr + proc.stdout
    assert not (ws / "data/interim/lfw/images.parquet").exists()
