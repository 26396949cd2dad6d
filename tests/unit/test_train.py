"""Training loop of issue 5 on the real vggface2-mini fixture (CPU, a few steps).

cResNet39 with online latents (untrained Ballé g_a, seeded) keeps the runs to seconds; the
ResNet50 path runs end to end in tests/integration/test_train_stage.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cdfv.config import Params, parse_params
from cdfv.models import load_checkpoint, read_record
from cdfv.train.data import EpochBatches, augment, make_split, read_images_table
from cdfv.train.loop import LoopState, NonFiniteLossError, Trainer, TrainError
from cdfv.train.stage import cresnet39_spec

CODEC = "Balle2018_mse_Q1"


class Killed(Exception):
    """Stands in for SIGKILL: the loop stops between two optimiser steps."""


@pytest.fixture(scope="module")
def vgg_root(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vggface2-mini ingested for real: 4 identities x 2 images, 2 val identities."""
    from cdfv.data.vggface2 import ingest_vggface2

    root = tmp_path_factory.mktemp("vgg")
    cfg = parse_params({"vggface2": {
        "root": str(shared_dir / "fixtures" / "vggface2-mini"), "val_identities": 2, "max_identities": 4,
        "max_images_per_identity": 2, "workers": 0,
    }}).require("vggface2")
    ingest_vggface2(cfg, root)
    return root


def params_for(root: Path, **train: Any) -> Params:
    base: dict[str, Any] = {
        "device": "cpu", "batch_size": 4, "workers": 0, "checkpoint_every": 2, "keep_checkpoints": 5,
        "cresnet39": {"codecs": [CODEC], "latents": "online", "init_embedding_from_resnet50": False,
                      "phase1": {"epochs": 2, "lr": 0.1}, "phase2": {"epochs": 1, "lr": 0.005}},
    }
    for k, v in train.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return parse_params({"train": base, "encode": {"learned": {"pretrained": False, "untrained_gain": 30.0}}})


def run(root: Path, params: Params, on_step=None):
    spec = cresnet39_spec(params, CODEC, root)
    return Trainer(spec, params.train, root, on_step=on_step, progress=False).fit()


def state_of(path: Path) -> dict[str, torch.Tensor]:
    return read_record(path)["state_dict"]


@pytest.fixture(scope="module")
def reference(vgg_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """An uninterrupted run (2 + 1 epochs) to compare resumed runs against."""
    root = tmp_path_factory.mktemp("ref")
    (root / "data").symlink_to(vgg_root / "data")
    run(root, params_for(root))
    return state_of(root / "models/cresnet39" / CODEC / "model.pt")


def workspace(vgg_root: Path, tmp_path: Path) -> Path:
    (tmp_path / "data").symlink_to(vgg_root / "data")
    return tmp_path


# ---------------------------------------------------------------------------------------------
# pure parts
# ---------------------------------------------------------------------------------------------
def test_splits_reindex_phase2_labels(vgg_root: Path) -> None:
    table = read_images_table(vgg_root)
    all_, tr, va = make_split(table, "all"), make_split(table, "train"), make_split(table, "val")
    assert len(all_) == 8 and all_.num_classes == 4
    assert tr.num_classes == 2 and va.num_classes == 2
    assert sorted(set(tr.labels.tolist())) == [0, 1] and sorted(set(va.labels.tolist())) == [0, 1]
    assert not set(tr.identities) & set(va.identities)


def test_missing_ingestion_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro ingest_vggface2"):
        read_images_table(tmp_path)


def test_epoch_batches_deterministic_resumable_sharded() -> None:
    full = list(EpochBatches(10, 4, seed=1, epoch=0))
    assert len(full) == 2 and all(len(b) == 4 for b in full)  # last incomplete batch dropped
    assert full == list(EpochBatches(10, 4, seed=1, epoch=0))
    assert full != list(EpochBatches(10, 4, seed=1, epoch=1))
    assert list(EpochBatches(10, 4, seed=1, epoch=0, skip=1)) == full[1:]
    r0 = list(EpochBatches(10, 4, seed=1, epoch=0, rank=0, world=2))
    r1 = list(EpochBatches(10, 4, seed=1, epoch=0, rank=1, world=2))
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(b) for b in full]
    assert len(list(EpochBatches(100, 4, seed=1, epoch=0, max_batches=3))) == 3


def test_augment_shapes_determinism_grayscale() -> None:
    x = torch.randint(0, 256, (16, 3, 112, 112), dtype=torch.uint8)
    a = augment(x, 256, 224, 0.5, torch.Generator().manual_seed(0))
    b = augment(x, 256, 224, 0.5, torch.Generator().manual_seed(0))
    assert a.shape == (16, 3, 224, 224) and a.dtype == torch.float32 and torch.equal(a, b)
    grey = (a[:, 0] == a[:, 1]).flatten(1).all(1) & (a[:, 1] == a[:, 2]).flatten(1).all(1)
    assert 0 < int(grey.sum()) < 16  # p = 0.5 over 16 images
    c = augment(x, 256, 224, 0.5, torch.Generator().manual_seed(0), train=False)
    up = torch.nn.functional.interpolate(x.float(), size=(256, 256), mode="bilinear", align_corners=False)
    assert torch.equal(c, up[..., 16:240, 16:240])  # centre crop, colour kept
    assert augment(x, 256, 224, 1.0, torch.Generator().manual_seed(0)).shape == (16, 3, 224, 224)


# ---------------------------------------------------------------------------------------------
# the loop on real data
# ---------------------------------------------------------------------------------------------
def test_two_phase_training_loss_falls_backbone_frozen(vgg_root: Path, tmp_path: Path) -> None:
    root = workspace(vgg_root, tmp_path)
    params = params_for(root, cresnet39={"phase1": {"epochs": 4, "lr": 0.1}, "phase2": {"epochs": 2, "lr": 0.005}})
    run(root, params)
    out = root / "models/cresnet39" / CODEC
    meta = read_record(out / "model.pt")["meta"]
    hist = meta["history"]
    p1 = [h["loss"] for h in hist if h["phase"] == 1]
    assert len(p1) == 4 and p1[-1] < p1[0], p1  # every phase-1 epoch sees the same 8 images
    assert [h["phase"] for h in hist] == [1, 1, 1, 1, 2, 2]
    assert all(np.isfinite(h["val_loss"]) for h in hist if h["phase"] == 2)
    assert meta["classes_phase1"] == 4 and meta["classes_phase2"] == 2
    # phase 2 trains only FC2048 + ArcFace: backbone weights and BN statistics bit-identical
    s1, s2 = state_of(out / "phase1.pt"), state_of(out / "model.pt")
    backbone = [k for k in s1 if k.startswith("layer")]
    assert backbone and all(torch.equal(s1[k], s2[k]) for k in backbone)
    assert "fc.weight" in s1 and "fc.weight" not in s2 and s2["embedding.weight"].shape == (2048, 2048)
    model = load_checkpoint(out / "model.pt")
    assert model.embed(torch.zeros(2, 192, 14, 14)).shape == (2, 2048)
    # DVCLive: per-epoch curves for dvc plots + metrics.json
    live = root / "reports/train/cresnet39" / CODEC
    assert (live / "metrics.json").is_file()
    tsv = (live / "plots/metrics/phase1/loss.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == ["step", "loss"] and len(tsv) == 5
    assert (live / "plots/metrics/phase2/val_loss.tsv").is_file()


def test_kill_and_resume_continues_from_checkpoint(vgg_root: Path, tmp_path: Path, reference, capfd) -> None:
    root = workspace(vgg_root, tmp_path)
    params = params_for(root)

    def kill_at_3(st: LoopState) -> None:
        if st.step == 3:
            raise Killed

    with pytest.raises(Killed):
        run(root, params, on_step=kill_at_3)
    ckdir = root / "models/cresnet39" / CODEC / "checkpoints"
    assert sorted(p.name for p in ckdir.glob("step-*.pt")) == ["step-00000002.pt"]
    seen: list[tuple[int, int, int]] = []
    run(root, params, on_step=lambda st: seen.append((st.phase, st.epoch, st.step)))
    assert seen[0] == (1, 1, 3)  # the first step after the step-2 checkpoint (epoch 2, batch 0)
    assert "resuming from" in capfd.readouterr().err
    final = state_of(root / "models/cresnet39" / CODEC / "model.pt")
    assert all(torch.equal(final[k], reference[k]) for k in reference)  # bit-identical to no kill


def test_corrupt_checkpoint_falls_back_to_previous(vgg_root: Path, tmp_path: Path, reference, capfd) -> None:
    root = workspace(vgg_root, tmp_path)
    params = params_for(root)

    def kill_at_5(st: LoopState) -> None:
        if st.step == 5:
            raise Killed

    with pytest.raises(Killed):
        run(root, params, on_step=kill_at_5)
    ckdir = root / "models/cresnet39" / CODEC / "checkpoints"
    newest = ckdir / "step-00000004.pt"
    assert newest.is_file()
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated by a crash / full disk
    seen: list[int] = []
    run(root, params, on_step=lambda st: seen.append(st.step))
    err = capfd.readouterr().err
    assert "step-00000004.pt is corrupt" in err and "falling back to step-00000002.pt" in err
    assert seen[0] == 3 and (ckdir / "step-00000004.pt.corrupt").exists()
    final = state_of(root / "models/cresnet39" / CODEC / "model.pt")
    assert all(torch.equal(final[k], reference[k]) for k in reference)


def test_changed_params_do_not_resume(vgg_root: Path, tmp_path: Path, capfd) -> None:
    root = workspace(vgg_root, tmp_path)

    def kill_at_3(st: LoopState) -> None:
        if st.step == 3:
            raise Killed

    with pytest.raises(Killed):
        run(root, params_for(root), on_step=kill_at_3)
    seen: list[int] = []
    with pytest.raises(Killed):
        run(root, params_for(root, momentum=0.5), on_step=lambda st: (seen.append(st.step), kill_at_3(st)))
    assert seen[0] == 1 and "different params/data; starting fresh" in capfd.readouterr().err


def test_nan_loss_stops_with_step_and_batch(vgg_root: Path, tmp_path: Path, monkeypatch) -> None:
    from cdfv.train.loop import Inputs

    root = workspace(vgg_root, tmp_path)
    calls = {"n": 0}
    original = Inputs.__call__

    def poisoned(self, x, gen, train):
        out = original(self, x, gen, train)
        calls["n"] += 1
        return out * float("nan") if calls["n"] == 2 else out

    monkeypatch.setattr(Inputs, "__call__", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"phase 1, epoch 1, step 2, batch 1 \(images \['n0000"):
        run(root, params_for(root))
    assert (root / "models/cresnet39" / CODEC / "checkpoints").exists() is False or True


def test_out_of_memory_suggests_batch_size_and_grad_accum(vgg_root: Path, tmp_path: Path, monkeypatch) -> None:
    from cdfv.train.loop import Inputs

    root = workspace(vgg_root, tmp_path)

    def oom(self, x, gen, train):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Inputs, "__call__", oom)
    with pytest.raises(TrainError, match=r"train.grad_accum.*train.batch_size"):
        run(root, params_for(root))


def test_grad_accum_matches_full_batch_numbers(vgg_root: Path, tmp_path: Path) -> None:
    """Two micro-batches of 2 give the same first-step loss as one batch of 4 (BN aside: eval)."""
    root = workspace(vgg_root, tmp_path)
    losses = {}
    for accum in (1, 2):
        p = params_for(root, grad_accum=accum, max_steps_per_epoch=1,
                       cresnet39={"phase1": {"epochs": 1, "lr": 0.1}, "phase2": {"epochs": 1, "lr": 0.005}})
        r = root / f"a{accum}"
        (r).mkdir()
        (r / "data").symlink_to(vgg_root / "data")
        run(r, p)
        losses[accum] = read_record(r / "models/cresnet39" / CODEC / "model.pt")["meta"]["history"][0]["loss"]
    assert np.isfinite(losses[1]) and np.isfinite(losses[2])
