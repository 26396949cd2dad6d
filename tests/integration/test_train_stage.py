"""`dvc repro` of the training and complexity stages on the smoke profile (real DVC, full-width nets).

The smoke profile trains ResNet50 and cResNet39 (Ballé Q1 latent shards from an untrained, seeded
codec) for two CPU steps per phase on ../shared/fixtures/vggface2-mini.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cdfv import paths
from cdfv.complexity import COMPLEXITY_KEYS, PAPER_GMAC
from cdfv.models import CResNet39, ResNet50Caffe, load_checkpoint, read_record
from cdfv.results import read_results
from tests.conftest import run_dvc

pytestmark = pytest.mark.slow
CODEC = "Balle2018_mse_Q1"


def test_train_stages_end_to_end(dvc_workspace) -> None:
    ws: Path = dvc_workspace()
    run_dvc(ws, "repro", f"train_cresnet39@{CODEC}")  # pulls ingest_vggface2, latents, train_resnet50

    r50 = load_checkpoint(ws / "models/resnet50/model.pt")
    assert isinstance(r50, ResNet50Caffe) and r50.feature_dim == 2048
    faces = torch.zeros(1, 3, 224, 224)
    assert r50.embed(faces).shape == (1, 2048)
    c39 = load_checkpoint(ws / "models/cresnet39" / CODEC / "model.pt")
    assert isinstance(c39, CResNet39) and c39.in_channels == 192
    assert c39.embed(torch.zeros(1, 192, 14, 14)).shape == (1, 2048)
    meta = read_record(ws / "models/cresnet39" / CODEC / "model.pt")["meta"]
    assert meta["latents"] == "shards" and meta["embedding_init"] == "models/resnet50/model.pt"
    assert meta["classes_phase1"] == 9 and meta["classes_phase2"] == 7  # vggface2-mini: 9 ids, 2 val
    assert [h["phase"] for h in meta["history"]] == [1, 2]

    # phase 2 left the backbone bit-identical
    p1 = read_record(ws / "models/resnet50/phase1.pt")["state_dict"]
    p2 = read_record(ws / "models/resnet50/model.pt")["state_dict"]
    assert all(torch.equal(p1[k], p2[k]) for k in p1 if k.startswith(("conv1", "bn1", "layer")))

    # DVCLive curves are stage plots; metrics are visible to `dvc metrics show`
    shown = run_dvc(ws, "metrics", "show", "--json").stdout
    assert "reports/train/resnet50/metrics.json" in shown
    plots = run_dvc(ws, "plots", "show", "--json", "reports/train/resnet50/plots/metrics").stdout
    assert "phase1/loss" in plots or "loss.tsv" in plots

    # nothing changed -> nothing reruns (persisted checkpoints do not invalidate the stage)
    status = run_dvc(ws, "status", "train_resnet50", f"train_cresnet39@{CODEC}").stdout
    assert "changed" not in status


def test_complexity_stage(dvc_workspace) -> None:
    ws: Path = dvc_workspace()
    run_dvc(ws, "repro", "complexity")
    expected = ["ResNet50_Original_Anchor", "ResNet50_Balle2018_mse_Q1", "cResNet39_Balle2018_mse_Q1"]
    assert sorted(p.stem for p in (ws / paths.COMPLEXITY_METRICS).iterdir()) == sorted(expected)
    rows = {m: read_results(ws, paths.complexity_json(m)) for m in expected}
    for name, r in rows.items():
        # declared: MACs and parameters only (a row of `dvc metrics show`); timings are details
        assert set(json.loads((ws / paths.complexity_json(name)).read_text())) == set(COMPLEXITY_KEYS)
        assert r["gmac_paper_convention"] == pytest.approx(PAPER_GMAC[name], rel=0.005)
        assert r["kmac_per_px"] == pytest.approx(r["gmac"] * 1e6 / 224**2, rel=1e-5)
        assert r["ms_per_batch"] > 0 and r["ms_per_pair"] == pytest.approx(r["ms_per_batch"] / r["batch_pairs"])
        assert r["device"].startswith("CPU") and r["params"] > 20e6
        # end-to-end per pair (files / bitstreams -> embeddings) beside network only
        assert r["e2e_ms_per_batch"] > 0 and r["e2e_ms_per_pair"] == pytest.approx(
            r["e2e_ms_per_batch"] / r["batch_pairs"]
        )
        assert r["e2e_path"]
    assert round(rows["ResNet50_Original_Anchor"]["kmac_per_px_paper_convention"]) == 78
    assert round(rows["cResNet39_Balle2018_mse_Q1"]["kmac_per_px_paper_convention"]) == 47
    assert round(rows["ResNet50_Balle2018_mse_Q1"]["kmac_per_px_paper_convention"]) == 270


def test_online_stage_reads_pngs_not_shards(dvc_workspace) -> None:
    """train_cresnet39_online@<codec>: no latents_vggface2 stage, latents computed (and checked) in the loop."""
    ws: Path = dvc_workspace(overrides={"train": {"cresnet39": {"codecs": [], "online_codecs": [CODEC]}}})
    stages = run_dvc(ws, "stage", "list", "--name-only").stdout.split()
    assert f"train_cresnet39_online@{CODEC}" in stages
    assert not any(s.startswith(("latents_vggface2@", "train_cresnet39@")) for s in stages)
    log = run_dvc(ws, "repro", f"train_cresnet39_online@{CODEC}")
    out = log.stdout + log.stderr
    assert "Running stage 'latents_vggface2" not in out
    assert f"online latents of 2 images (75264 values) equal the range-decoded ŷ of {CODEC} on cpu" in out
    meta = read_record(ws / "models/cresnet39" / CODEC / "model.pt")["meta"]
    assert meta["latents"] == "online" and [h["phase"] for h in meta["history"]] == [1, 2]
    assert not (ws / "data/processed/vggface2/latents").exists()
    lock = (ws / "dvc.lock").read_text()
    assert "path: data/interim/vggface2/png" in lock.split(f"train_cresnet39_online@{CODEC}:")[1]
