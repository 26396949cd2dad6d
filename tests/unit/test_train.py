"""The two-phase training loop on the real vggface2-mini fixture (CPU, a few steps).

cResNet39 with online latents (untrained Ballé g_a, seeded) keeps the runs to seconds; the
ResNet50 path runs end to end in tests/integration/test_train_stage.py.
"""

from __future__ import annotations

import json
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


VARIANTS = 7  #: centre + 6 random: enough for test_phase1_loss_falls (6 epochs)
WIDTH = 8  #: loop tests run the real cResNet39 at 1/8 width (64x fewer MACs); full width: integration test


@pytest.fixture(scope="module")
def vgg_root(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vggface2-mini ingested for real (4 identities x 2 images, 2 val identities) + latent shards.

    Shards hold round(g_a(x)) of the untrained (seeded) Ballé Q1 of the centre crop (variant 0) and
    of VARIANTS - 1 random crops + grey, written with the real :class:`cdfv.shards.LatentShardWriter`.
    """
    from cdfv import paths
    from cdfv.data.vggface2 import ingest_vggface2
    from cdfv.io import read_rgb
    from cdfv.models.latent import online_encoder
    from cdfv.shards import LatentShardWriter

    root = tmp_path_factory.mktemp("vgg")
    cfg = parse_params(
        {
            "vggface2": {
                "root": str(shared_dir / "fixtures" / "vggface2-mini"),
                "val_identities": 2,
                "max_identities": 4,
                "max_images_per_identity": 2,
                "workers": 0,
            }
        }
    ).require("vggface2")
    table = ingest_vggface2(cfg, root).to_pylist()
    enc = online_encoder(CODEC, pretrained=False, untrained_gain=30.0)
    faces = torch.stack([torch.from_numpy(read_rgb(root / r["path"])).permute(2, 0, 1) for r in table])
    with LatentShardWriter(root / paths.VGGFACE2_LATENTS / CODEC, CODEC, 1, shard_rows=5) as w:
        for v in range(VARIANTS):
            z = enc(augment(faces, 256, 224, 0.2, torch.Generator().manual_seed(v), train=v > 0))
            for r, zi in zip(table, z.to(torch.int32).numpy()):
                w.add(
                    f"{r['image_id']}#{v}",
                    zi,
                    image_id=r["image_id"],
                    identity=r["identity"],
                    label=r["label"],
                    split=r["split"],
                    variant=v,
                )
    return root


def params_for(root: Path, **train: Any) -> Params:
    base: dict[str, Any] = {
        "device": "cpu",
        "batch_size": 2,
        "workers": 0,
        "checkpoint_every": 3,
        "keep_checkpoints": 5,
        "max_steps_per_epoch": 2,
        "val_max_batches": 2,
        "cresnet39": {
            "codecs": [CODEC],
            "init_embedding_from_resnet50": False,
            "phase1": {"epochs": 2, "lr": 0.01},
            "phase2": {"epochs": 1, "lr": 0.005},
        },
    }
    for k, v in train.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return parse_params(
        {
            "train": base,
            "encode": {
                "learned": {"pretrained": False, "untrained_gain": 30.0, "verify_sample": 2},
                "vggface2": {"variants": VARIANTS},
            },
        }
    )


def run(root: Path, params: Params, on_step=None, width: int = WIDTH):
    import dataclasses

    spec = cresnet39_spec(params, CODEC, root)
    spec = dataclasses.replace(spec, arch_kwargs={**spec.arch_kwargs, "width": width})
    return Trainer(spec, params.train, root, on_step=on_step, progress=False).fit()


def state_of(path: Path) -> dict[str, torch.Tensor]:
    return read_record(path)["state_dict"]


@pytest.fixture(scope="module")
def reference_root(vgg_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run (2 + 1 epochs of 2 steps) to compare resumed runs against."""
    root = tmp_path_factory.mktemp("ref")
    (root / "data").symlink_to(vgg_root / "data")
    run(root, params_for(root))
    return root


@pytest.fixture(scope="module")
def reference(reference_root: Path) -> dict[str, torch.Tensor]:
    return state_of(reference_root / "models/cresnet39" / CODEC / "model.pt")


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
def centre_only_workspace(vgg_root: Path, tmp_path: Path) -> Path:
    """A workspace whose shards repeat the centre-crop latent as every variant (fixed inputs)."""
    from cdfv import paths
    from cdfv.shards import LatentShardReader, LatentShardWriter

    (tmp_path / "data").mkdir()
    (tmp_path / paths.INTERIM).symlink_to(vgg_root / paths.INTERIM)
    reader = LatentShardReader(vgg_root / paths.vggface2_latent_index(CODEC))
    rows = reader.index.to_pylist()
    with LatentShardWriter(tmp_path / paths.VGGFACE2_LATENTS / CODEC, CODEC, 1) as w:
        for r in rows:
            z = reader.get(f"{r['image_id']}#0")
            w.add(
                r["key"],
                np.array(z),
                image_id=r["image_id"],
                identity=r["identity"],
                label=r["label"],
                split=r["split"],
                variant=r["variant"],
            )
    return tmp_path


def test_phase1_loss_falls(vgg_root: Path, tmp_path: Path) -> None:
    """Cross-entropy over all identities falls when every step sees the same 8 latents."""
    root = centre_only_workspace(vgg_root, tmp_path)
    params = params_for(
        root,
        batch_size=8,
        max_steps_per_epoch=None,
        cresnet39={"phase1": {"epochs": 6, "lr": 0.005}, "phase2": {"epochs": 0, "lr": 0.005}},
    )
    run(root, params)
    hist = read_record(root / "models/cresnet39" / CODEC / "model.pt")["meta"]["history"]
    p1 = [h["loss"] for h in hist]
    assert len(p1) == 6 and p1[-1] < 0.8 * p1[0], p1


def test_phase2_freezes_backbone_and_logs_curves(reference_root: Path) -> None:
    out = reference_root / "models/cresnet39" / CODEC
    meta = read_record(out / "model.pt")["meta"]
    hist = meta["history"]
    assert [(h["phase"], h["epoch"]) for h in hist] == [(1, 1), (1, 2), (2, 1)]
    assert np.isfinite(hist[-1]["val_loss"]) and hist[-1]["lr"] == 0.005
    assert meta["classes_phase1"] == 4 and meta["classes_phase2"] == 2 and meta["latents"] == "shards"
    # phase 2 trains only FC + ArcFace: backbone weights and BN statistics stay bit-identical
    s1, s2 = state_of(out / "phase1.pt"), state_of(out / "model.pt")
    backbone = [k for k in s1 if k.startswith("layer")]
    assert backbone and all(torch.equal(s1[k], s2[k]) for k in backbone)
    assert any("running_mean" in k for k in backbone)
    assert "fc.weight" in s1 and "fc.weight" not in s2 and "embedding.weight" in s2
    model = load_checkpoint(out / "model.pt")
    assert model.embed(torch.zeros(2, 192, 14, 14)).shape == (2, model.feature_dim)
    # DVCLive: per-epoch curves for `dvc plots` + metrics.json
    live = reference_root / "reports/train/cresnet39" / CODEC
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["phase2"]["val_loss"] == pytest.approx(hist[-1]["val_loss"])
    # `dvc metrics` shows results only: speed and the scheduled lr are curves, not metrics
    assert summary == {
        "phase1": {"loss": hist[1]["loss"], "accuracy": hist[1]["accuracy"]},
        "step": 2,
        "phase2": {k: hist[2][k] for k in ("loss", "accuracy", "val_loss")},
    }
    lr = (live / "plots/metrics/phase2/lr.tsv").read_text().splitlines()
    assert lr == ["step\tlr", "2\t0.005"]
    assert (live / "plots/metrics/phase1/images_per_s.tsv").is_file()
    tsv = (live / "plots/metrics/phase1/loss.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == ["step", "loss"] and len(tsv) == 3
    assert (live / "plots/metrics/phase2/val_loss.tsv").read_text().splitlines()[1].startswith("2\t")


def test_latent_dataset_draws_variants_without_replacement(tmp_path: Path) -> None:
    """Per image: draws 0..K-2 read the K-1 random variants, each once, never the centre crop;
    validation (train=False) reads variant 0; a K-1th draw is refused naming the params key."""
    from cdfv.shards import LatentShardWriter
    from cdfv.train.data import LatentShardDataset, Split

    k = 6
    with LatentShardWriter(tmp_path, CODEC, 1) as w:
        for v in range(k):
            for i in range(3):
                w.add(
                    f"a/{i}#{v}", np.full((2, 14, 14), 10 * i + v, np.int16), image_id=f"a/{i}", identity="a", variant=v
                )
    split = Split(["a/0", "a/1", "a/2"], ["", "", ""], np.array([0, 1, 1]), 2, ["a", "b"])
    ds = LatentShardDataset(split, tmp_path / "index.parquet", seed=1)
    orders = []
    for i in range(3):
        seen = []
        for draw in range(k - 1):
            ds.set_draw(draw)
            z, _, idx = ds[i]
            assert z.shape == (2, 14, 14) and z.dtype == torch.float32 and idx == i
            seen.append(int(z[0, 0, 0]) - 10 * i)
            assert torch.equal(ds[i][0], z)  # deterministic per (seed, image, draw)
        assert sorted(seen) == list(range(1, k)), seen  # every random variant once, no centre crop
        orders.append(seen)
    assert len({tuple(o) for o in orders}) > 1  # the order is per image, not one global order
    again = LatentShardDataset(split, tmp_path / "index.parquet", seed=1)
    again.set_draw(2)
    assert int(again[0][0][0, 0, 0]) == orders[0][2]  # same seed -> same draws
    val = LatentShardDataset(split, tmp_path / "index.parquet", seed=1, train=False)
    val.set_draw(3)
    assert [int(val[i][0][0, 0, 0]) - 10 * i for i in range(3)] == [0, 0, 0]
    with pytest.raises(ValueError, match=r"encode.vggface2.variants >= 7"):
        ds.set_draw(k - 1)
    with pytest.raises(ValueError, match="no latents for 1 training images"):
        LatentShardDataset(Split(["zz"], [""], np.array([0]), 2, ["a", "b"]), tmp_path / "index.parquet")


def test_training_epochs_see_distinct_random_variants(vgg_root: Path, tmp_path: Path, monkeypatch) -> None:
    """Through the real loop: each training latent is a non-centre variant of its image, an image
    seen in two epochs gets two different variants, and validation sees centre crops (variant 0).
    Oracle: the shard reader's latents of every (image, variant), looked up by value."""
    from cdfv import paths
    from cdfv.shards import LatentShardReader
    from cdfv.train.loop import Inputs

    reader = LatentShardReader(vgg_root / paths.vggface2_latent_index(CODEC))
    table: dict[bytes, tuple[str, int]] = {}
    for r in reader.index.to_pylist():
        table[np.asarray(reader.get(r["key"]), np.float32).tobytes()] = (r["image_id"], r["variant"])
    assert len(table) == reader.index.num_rows  # every variant of every image is a distinct latent

    calls: list[tuple[bool, torch.Tensor]] = []
    original = Inputs.__call__

    def record(self, x, gen, train):
        calls.append((train, x.clone()))
        return original(self, x, gen, train)

    epochs: list[tuple[int, int]] = []  # (phase, epoch) of each training call, filled per step
    monkeypatch.setattr(Inputs, "__call__", record)
    root = workspace(vgg_root, tmp_path)
    params = params_for(root, batch_size=4, max_steps_per_epoch=None)

    def tag(st: LoopState) -> None:
        n_train = sum(1 for t, _ in calls if t)
        epochs.extend([(st.phase, st.epoch)] * (n_train - len(epochs)))

    run(root, params, on_step=tag)
    train = [x for t, x in calls if t]
    assert len(train) == len(epochs) and len(train) == 2 * 2 + 1  # phase 1: 2 epochs x 2 batches, phase 2: 1
    variants: dict[str, dict[tuple[int, int], int]] = {}
    for (phase, epoch), x in zip(epochs, train):
        for z in x:
            image_id, v = table[z.numpy().tobytes()]
            assert v != 0, f"{image_id}: training read the centre crop"
            variants.setdefault(image_id, {})[(phase, epoch)] = v
    assert all(len(seen) >= 2 for seen in variants.values())  # every image seen in 2+ epochs
    for image_id, seen in variants.items():
        assert len(set(seen.values())) == len(seen), f"{image_id}: a variant repeated across epochs {seen}"
    val = [x for t, x in calls if not t]
    assert val and all(table[z.numpy().tobytes()][1] == 0 for x in val for z in x)


def test_resnet50_validation_uses_centre_crops(monkeypatch) -> None:
    """ResNet50 inputs: train=False is the centre 224 crop of the bilinear 256 resize, in colour."""
    from cdfv.config import TrainParams
    from cdfv.models import resnet50_input
    from cdfv.train.loop import Inputs

    x = torch.randint(0, 256, (4, 3, 112, 112), dtype=torch.uint8)
    got = Inputs("resnet50", TrainParams(augment={"grayscale_p": 1.0}))(
        x, torch.Generator().manual_seed(0), train=False
    )
    up = torch.nn.functional.interpolate(x.float(), size=(256, 256), mode="bilinear", align_corners=False)
    assert torch.equal(got, resnet50_input(up[..., 16:240, 16:240]))


def test_online_latents_train_end_to_end(vgg_root: Path, tmp_path: Path) -> None:
    """``train.cresnet39.online_codecs``: faces -> augment -> frozen g_a -> round -> crop, on the device (and the
    per-run check against the range-decoded ŷ)."""
    root = workspace(vgg_root, tmp_path)
    params = params_for(
        root,
        max_steps_per_epoch=1,
        cresnet39={
            "codecs": [],
            "online_codecs": [CODEC],
            "phase1": {"epochs": 1, "lr": 0.01},
            "phase2": {"epochs": 1, "lr": 0.005},
        },
    )
    run(root, params)
    meta = read_record(root / "models/cresnet39" / CODEC / "model.pt")["meta"]
    assert meta["latents"] == "online" and [h["phase"] for h in meta["history"]] == [1, 2]


def kill_at(step: int):
    def hook(st: LoopState) -> None:
        if st.step == step:
            raise Killed

    return hook


def test_kill_and_resume_continues_from_checkpoint(vgg_root: Path, tmp_path: Path, reference, capfd) -> None:
    root = workspace(vgg_root, tmp_path)
    params = params_for(root)
    with pytest.raises(Killed):
        run(root, params, on_step=kill_at(4))
    ckdir = root / "models/cresnet39" / CODEC / "checkpoints"
    assert sorted(p.name for p in ckdir.glob("step-*.pt")) == ["step-00000002.pt", "step-00000003.pt"]
    seen: list[tuple[int, int, int]] = []
    run(root, params, on_step=lambda st: seen.append((st.phase, st.epoch, st.step)))
    assert seen[0] == (1, 1, 4)  # mid-epoch resume: epoch 2, second batch, step 4
    assert "resuming from" in capfd.readouterr().err
    final = state_of(root / "models/cresnet39" / CODEC / "model.pt")
    assert all(torch.equal(final[k], reference[k]) for k in reference)  # bit-identical to no kill


def test_corrupt_checkpoint_falls_back_to_previous(vgg_root: Path, tmp_path: Path, reference, capfd) -> None:
    root = workspace(vgg_root, tmp_path)
    params = params_for(root)
    with pytest.raises(Killed):
        run(root, params, on_step=kill_at(4))
    ckdir = root / "models/cresnet39" / CODEC / "checkpoints"
    newest = ckdir / "step-00000003.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated by a crash / full disk
    seen: list[tuple[int, bool]] = []
    run(root, params, on_step=lambda st: seen.append((st.step, (ckdir / "step-00000003.pt.corrupt").exists())))
    err = capfd.readouterr().err
    assert "step-00000003.pt is corrupt" in err and "falling back to step-00000002.pt" in err
    assert seen[0] == (3, True)  # resumed after step 2, the bad file moved aside
    assert not ckdir.exists()  # sealed when the run completed
    final = state_of(root / "models/cresnet39" / CODEC / "model.pt")
    assert all(torch.equal(final[k], reference[k]) for k in reference)


def test_changed_params_do_not_resume(vgg_root: Path, tmp_path: Path, capfd) -> None:
    root = workspace(vgg_root, tmp_path)
    with pytest.raises(Killed):
        run(root, params_for(root), on_step=kill_at(3))
    seen: list[int] = []

    def record_then_kill(st: LoopState) -> None:
        seen.append(st.step)
        raise Killed

    with pytest.raises(Killed):
        run(root, params_for(root, momentum=0.5), on_step=record_then_kill)
    assert seen == [1] and "different inputs (changed: params); starting fresh" in capfd.readouterr().err


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


def test_out_of_memory_suggests_batch_size_and_grad_accum(vgg_root: Path, tmp_path: Path, monkeypatch) -> None:
    from cdfv.train.loop import Inputs

    root = workspace(vgg_root, tmp_path)

    def oom(self, x, gen, train):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Inputs, "__call__", oom)
    with pytest.raises(TrainError, match=r"train.grad_accum.*train.batch_size"):
        run(root, params_for(root))


def test_missing_shards_name_the_stage(vgg_root: Path, tmp_path: Path) -> None:
    root = workspace(vgg_root, tmp_path)
    params = parse_params(
        {"train": {"cresnet39": {"codecs": ["Balle2018_mse_Q3"], "init_embedding_from_resnet50": False}}}
    )
    spec = cresnet39_spec(params, "Balle2018_mse_Q3", root)
    with pytest.raises(FileNotFoundError, match=r"latents_vggface2@<codec>.*train.cresnet39.online_codecs"):
        Trainer(spec, params.train, root, progress=False).fit()
