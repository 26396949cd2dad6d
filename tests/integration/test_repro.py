"""`make repro` (= `cdfv repro`) for a new user without VGGFace2: a DVC workspace on the LFW fixtures
(smoke profile: dlib detector and recogniser, untrained learned codec) whose vggface2.root does not
exist. Every stage that needs no trained network runs, the report marks the training rows "not run",
the summary names vggface2.root, and the exit code is 0; a stage failing for another reason makes it 1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from cdfv import paths
from cdfv.results import read_results
from tests.conftest import BIN, run_dvc

pytestmark = pytest.mark.slow

TRAINING_BRANCH = (
    "ingest_vggface2",
    "latents_vggface2@",
    "train_",
    "eval_lfw_resnet50",
    "eval_lfw_cresnet39",
    # Bian et al.: its networks train on VGGFace2 when CASIA is absent; coding the original faces does not
    "bian_faces",
    "bian_pretrain",
    "bian_sphere20",
    "bian_joint",
    "bian_code_compnet",
    "eval_lfw_bian_",
    "report_bian",
)


def cdfv_repro(ws: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [str(BIN / "cdfv"), "repro"], cwd=ws, capture_output=True, text=True, timeout=1800, env=env, check=False
    )


def test_make_repro_without_vggface2_runs_everything_else(dvc_workspace) -> None:  # type: ignore[no-untyped-def]
    ws: Path = dvc_workspace(overrides={"vggface2": {"root": "data/raw/vggface2"}})
    assert not (ws / "data/raw/vggface2").exists()
    proc = cdfv_repro(ws)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = out[out.rindex("cdfv repro:") :]
    print(summary)  # the closing summary (pytest -s shows it)
    assert "VGGFace2 not found at data/raw/vggface2" in summary and "vggface2.root" in summary
    assert "README › Data" in summary and "failed" in summary and "0 failed" in summary

    # exactly the training branch is left to do; every other stage ran and is cached
    status = json.loads(run_dvc(ws, "status", "--json").stdout or "{}")
    stages = set(run_dvc(ws, "stage", "list", "--name-only").stdout.split())
    pending = {s for s in status if s in stages}
    assert pending and all(s.startswith(TRAINING_BRANCH) for s in pending), pending
    assert {s for s in stages if s.startswith(TRAINING_BRANCH)} == pending
    assert {"report", "rd_report", "complexity", "eval_lfw_dlib_anchor", "eval_lfw_dlib@JPEG_Q1"} <= stages - pending

    # the report builds from what exists: dlib rows evaluated, training rows marked "not run"
    table = (ws / "reports/table7.md").read_text()
    not_run = table.split("## Not run")[1].split("##")[0]
    for model in ("ResNet50_Original_Anchor", "ResNet50_JPEG_Q1", "cResNet39_Balle2018_mse_Q1"):
        assert f"- {model}: not run: " in not_run and "VGGFace2" in not_run, model
    assert "| ResNet50_Original_Anchor | " in table and "| not run |" in table  # the Table 7 row itself
    for model in ("Dlib_Original_Anchor", "Dlib_JPEG_Q1", "Dlib_JPEG_Q25", "Dlib_B1_Balle2018_mse_Q2"):
        assert f"| {model} |" in table.split("## Other evaluated solutions")[1], model
    assert (ws / "reports/figures/fig4.png").stat().st_size > 10_000
    assert read_results(ws, paths.complexity_json("ResNet50_Original_Anchor"))["gmac"] > 3
    assert len((ws / paths.RD_CSV).read_text().splitlines()) == 1 + 7  # header + every smoke codec point
    assert "## Not run" not in (ws / "reports/rd.md").read_text()

    # again: nothing to do, the same skips, exit 0
    again = cdfv_repro(ws)
    assert again.returncode == 0 and "0 stage(s) run" in again.stdout and "vggface2.root" in again.stdout

    # a stage failing for another reason (ffmpeg not on PATH) fails the command; the RD report still
    # builds from the codecs that worked and marks the others
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["encode"]["hevc"]["preset"] = "fast"
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    broken = cdfv_repro(ws, path=str(BIN))
    text = broken.stdout + broken.stderr
    assert broken.returncode == 1, text[-4000:]
    assert "FAILED (see the dvc output above): encode_lfw@{HEVC_QP35,HEVC_444_QP35}" in broken.stdout
    rd = (ws / "reports/rd.md").read_text()
    assert "- HEVC_QP35: not run: encode_lfw@HEVC_QP35 wrote no" in rd
    assert len((ws / paths.RD_CSV).read_text().splitlines()) == 1 + 5
