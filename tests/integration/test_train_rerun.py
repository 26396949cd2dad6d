"""A rerun of a training stage retrains; only an interrupted run of the same inputs resumes.

Real ``dvc repro`` in one smoke workspace (full-width ResNet50, 2 + 2 CPU steps, a checkpoint every
step). A kill is ``CDFV_TRAIN_KILL_AT_STEP=N``: the trainer SIGKILLs itself right after step N.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cdfv.io import encode_png, read_rgb
from cdfv.models import read_record
from tests.conftest import run_dvc

pytestmark = pytest.mark.slow
STAGE = "train_resnet50"
OUT = Path("models/resnet50")
LIVE = Path("reports/train/resnet50")


def repro(ws: Path, *args: str, kill_at: int | None = None) -> str:
    env_key = "CDFV_TRAIN_KILL_AT_STEP"
    if kill_at is not None:
        os.environ[env_key] = str(kill_at)
    try:
        proc = run_dvc(ws, "repro", *args, STAGE, check=kill_at is None)
    finally:
        os.environ.pop(env_key, None)
    if kill_at is not None:
        assert proc.returncode != 0, "the killed run should fail the stage"
    return proc.stdout + proc.stderr


def weights(ws: Path, name: str = "model.pt") -> dict[str, torch.Tensor]:
    return read_record(ws / OUT / name)["state_dict"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def curves(ws: Path) -> dict[str, list[str]]:
    """DVCLive loss/val-loss rows (timing columns excluded: they differ between runs)."""
    d = ws / LIVE / "plots/metrics"
    return {p: (d / p).read_text().splitlines() for p in ("phase1/loss.tsv", "phase2/loss.tsv", "phase2/val_loss.tsv")}


def assert_fresh_run(log: str, ws: Path) -> None:
    assert "resuming" not in log, log
    assert "[train] resnet50: training from step 0" in log, log
    assert "phase 1 epoch 1/1" in log  # phase 1 was trained, not skipped
    c = curves(ws)  # DVCLive restarted at step 0: one epoch per phase, nothing appended
    assert [len(v) for v in c.values()] == [2, 2, 2] and c["phase1/loss.tsv"][1].startswith("0\t"), c
    assert not (ws / OUT / "checkpoints").exists()  # sealed: a completed run leaves no checkpoints


def edit_png(ws: Path, which: int) -> None:
    """Change VGGFace2 PNG number ``which``'s pixels; accept it as ingest_vggface2's output (dvc commit)."""
    png = sorted((ws / "data/interim/vggface2/png").rglob("*.png"))[which]
    rgb = read_rgb(png)
    rgb[:8, :8] = 255 - rgb[:8, :8]
    png.write_bytes(encode_png(rgb))
    run_dvc(ws, "commit", "-f", "ingest_vggface2")


def test_rerun_retrains_and_only_an_interrupted_run_resumes(dvc_workspace) -> None:
    ws: Path = dvc_workspace()
    log = repro(ws)
    assert_fresh_run(log, ws)
    reference, reference_curves = weights(ws), curves(ws)
    assert "changed" not in run_dvc(ws, "status", STAGE).stdout

    # (c) dvc repro -f: trains again from step 0 (same inputs -> the same numbers)
    assert_fresh_run(repro(ws, "-f"), ws)
    assert same(weights(ws), reference) and curves(ws) == reference_curves

    # (a) a code change in a dependency of the stage
    with open(ws / "cdfv/models/resnet.py", "a") as f:
        f.write("\n# a comment changes the code DVC tracks, not the numbers\n")
    assert "changed deps" in run_dvc(ws, "status", STAGE).stdout
    assert_fresh_run(repro(ws), ws)
    assert same(weights(ws), reference)

    # (b) a data-content change: one PNG's pixels
    edit_png(ws, 0)
    assert "changed deps" in run_dvc(ws, "status", STAGE).stdout
    assert_fresh_run(repro(ws), ws)
    uninterrupted, uninterrupted_curves, phase1 = weights(ws), curves(ws), weights(ws, "phase1.pt")

    # (d) killed mid-way, then the code changes: the checkpoints are of other inputs -> step 0
    log = repro(ws, "-f", kill_at=3)
    assert "KILL_AT_STEP=3" in log
    ckpts = ws / OUT / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step-*.pt")) == [f"step-0000000{i}.pt" for i in (1, 2, 3)]
    with open(ws / "cdfv/train/data.py", "a") as f:
        f.write("\n# edited after the kill\n")
    log = repro(ws)
    assert "written for different inputs (changed: code cdfv/train)" in log, log
    assert_fresh_run(log, ws)
    assert same(weights(ws), uninterrupted)

    # (d') killed, then the data changes -> step 0
    repro(ws, "-f", kill_at=1)
    edit_png(ws, 1)
    log = repro(ws)
    assert "changed: data data/interim/vggface2/png" in log, log
    assert_fresh_run(log, ws)
    uninterrupted, uninterrupted_curves, phase1 = weights(ws), curves(ws), weights(ws, "phase1.pt")

    # (e) killed in phase 2, rerun unchanged -> resumes at the checkpoint (phase1.pt restored from it) and
    # ends bit-identical (phase-1 mid-epoch resume: tests/unit/test_train.py). The inputs are new to DVC
    # (a comment in the code: same numbers), as on a first long run; otherwise DVC would restore the
    # completed run above from its cache instead of running the stage.
    for kill_at, where in ((3, "phase 2, epoch 0, batch 1, step 3"),):
        with open(ws / "cdfv/models/heads.py", "a") as f:
            f.write(f"\n# new inputs before the kill at step {kill_at}\n")
        repro(ws, kill_at=kill_at)
        log = repro(ws)
        assert f"resuming from models/resnet50/checkpoints/step-0000000{kill_at}.pt ({where})" in log, log
        assert "training from step 0" not in log
        assert same(weights(ws), uninterrupted) and same(weights(ws, "phase1.pt"), phase1)
        assert curves(ws) == uninterrupted_curves  # DVCLive replayed the logged epochs, not appended
        assert not ckpts.exists()
    assert "changed" not in run_dvc(ws, "status", STAGE).stdout
    # the checkpoints are no stage output: nothing about them is in dvc.lock
    assert "models/resnet50/checkpoints" not in (ws / "dvc.lock").read_text()
    assert np.isfinite(read_record(ws / OUT / "model.pt")["meta"]["history"][-1]["val_loss"])
