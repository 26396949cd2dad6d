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


def test_detect_align_flow_on_a_dask_cluster_matches_a_local_run(  # type: ignore[no-untyped-def]
    prefect_harness, tmp_path: Path, shared_dir: Path
) -> None:
    """`--runner dask --address tcp://…`: the same flow on an existing cluster (two worker processes on
    127.0.0.1) writes exactly what the local run writes."""
    pytest.importorskip("prefect_dask", reason="the `distributed` extra (prefect-dask) is not installed")
    from distributed import Client, LocalCluster
    from prefect.settings import PREFECT_API_URL

    from cdfv.config import parse_params
    from cdfv.data.lfw import run_ingest_lfw
    from cdfv.workspace import profile_params
    from pipelines.detect import detect_align_flow, make_task_runner

    repo = Path(__file__).resolve().parents[2]
    data = profile_params(repo, "smoke", {"detect": {"chunk_size": 7}})  # 25 images -> 4 chunks over 2 workers
    tables = {}
    for name, runner in (("local", None), ("dask", "dask")):
        ws = tmp_path / name
        ws.mkdir()
        (ws / "params.yaml").write_text(yaml.safe_dump(data))
        run_ingest_lfw(parse_params(data), ws)
        if runner is None:
            state = detect_align_flow("params.yaml", str(ws), True, return_state=True)
        else:
            # workers are separate processes: they import `pipelines` from the repository and report their
            # task runs to this session's Prefect server
            env = {"PYTHONPATH": str(repo), "PREFECT_API_URL": str(PREFECT_API_URL.value())}
            with LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, env=env
            ) as cluster:
                address = cluster.scheduler_address
                assert address.startswith("tcp://127.0.0.1:")
                flow = detect_align_flow.with_options(task_runner=make_task_runner("dask", address=address))
                state = flow("params.yaml", str(ws), True, return_state=True)
                with Client(address) as client:  # what the cluster computed: one task per chunk and stage
                    done = client.run_on_scheduler(
                        lambda dask_scheduler: sum(
                            p.state_counts["memory"] for p in dask_scheduler.task_prefixes.values()
                        )
                    )
            assert done >= 2 * 4, done  # detect + align, 4 chunks each
        assert state.is_completed()
        tables[name] = {
            f: pq.read_table(ws / "data/interim/lfw" / f).to_pylist() for f in ("detections.parquet", "faces.parquet")
        }
    assert tables["dask"] == tables["local"]  # same rows in the same order, PNG checksums included
    assert len(tables["dask"]["faces.parquet"]) == 25
