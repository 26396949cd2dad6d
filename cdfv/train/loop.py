"""The two-phase trainer (thesis §5.5.2 / §6.3.2) with checkpoints, resume, DVCLive and DDP.

Phase 1: network + FC -> all identities, cross-entropy (mean), everything trainable, SGD.
Phase 2: the classifier is replaced by the FC 2048 -> 2048 embedding (random, or copied from the
ResNet50 phase-2 FC for cResNet39); only that FC and the ArcFace class weights train; the backbone
runs in eval mode under ``no_grad`` so its weights *and* BN statistics stay bit-identical.
ReduceLROnPlateau (x0.5) follows the validation loss on the identity-disjoint val identities.

Validation loss [AMB]: ArcFace cannot score unseen identities with the trained class weights, so
the val loss is the ArcFace loss (same s, m) with class weights = the normalised mean embedding of
each val identity ("centroid ArcFace"): low when val faces are compact per identity and separated.

Every ``checkpoint_every`` optimiser steps and at every epoch end a checkpoint is written
(``models/<run>/checkpoints``, not a DVC output). A run resumes from the newest valid one at the
exact batch (batch order and augmentation are pure functions of ``(seed, phase, epoch, batch)``)
only when it is the interrupted run of the *same inputs*: the checkpoint's fingerprint
(:mod:`cdfv.train.fingerprint`: params, the content of every code and data dependency of the
stage) must match. A completed run writes ``phase1.pt`` and ``model.pt``, then deletes its
checkpoints, so rerunning a finished stage (``dvc repro -f``, or after any input changed) trains
from step 0. DVCLive always starts a fresh folder and replays the epochs a resumed run had
already logged, so its curves are those of an uninterrupted run.

Precision (bf16 autocast on CUDA): the phase-2 head (FC 2048, normalisation, cosine, ArcFace loss)
runs in fp32 (:func:`cdfv.precision.fp32_head`); phase 1 under DDP on CUDA uses
SyncBatchNorm (the paper's batch of 64 is global). Non-finite losses stop with the step, batch and
images named; CUDA out-of-memory stops with advice on ``train.batch_size`` / ``train.grad_accum``.

Fault injection for tests: ``CDFV_TRAIN_KILL_AT_STEP=N`` SIGKILLs the process right after optimiser
step N (and its checkpoint, when one falls due), like a crash or ``kill -9``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cdfv.config import ArcFaceParams, Phase1Params, Phase2Params, TrainParams
from cdfv.errors import CdfvError
from cdfv.io import atomic_path
from cdfv.models import FaceNet, build_model, resnet50_input, save_model
from cdfv.precision import fp32_head
from cdfv.train import fingerprint as fp
from cdfv.train.checkpoint import Checkpoints
from cdfv.train.data import (
    EpochBatches,
    ImageDataset,
    LatentShardDataset,
    Split,
    augment,
    make_split,
    read_images_table,
)
from cdfv.train.distributed import DistEnv, maybe_sync_batchnorm

#: fault injection (tests): SIGKILL the trainer right after this optimiser step
KILL_ENV = "CDFV_TRAIN_KILL_AT_STEP"


class TrainError(CdfvError, RuntimeError):
    """A training failure the user can act on (message says what to change)."""


class NonFiniteLossError(TrainError):
    """The loss became NaN/inf; the message names phase, epoch, step, batch and images."""


# ---------------------------------------------------------------------------------------------
# What is trained on what
# ---------------------------------------------------------------------------------------------
@dataclass
class Inputs:
    """Turns a loader batch into network input on the device.

    ``kind``: ``resnet50`` (faces -> augment -> mean subtraction), ``online`` (faces -> augment ->
    frozen ``g_a`` -> round -> crop 14x14) or ``latents`` (stored shards, used as is). Training
    batches are augmented; validation uses the centre crop (variant 0 of the shards) for every kind.
    ``check``: for ``online``, called once with ``(encoder, device, faces uint8, image ids)`` to
    assert the online latents equal the codec's range-decoded ones; ``check_images`` faces are used.
    """

    kind: str
    cfg: TrainParams
    encoder: nn.Module | None = None
    index_path: Path | None = None
    check: Callable[[nn.Module, torch.device, torch.Tensor, list[str]], None] | None = None
    check_images: int = 0

    def dataset(self, split: Split, root: Path, seed: int, train: bool = True) -> Dataset:
        if self.kind == "latents":
            assert self.index_path is not None
            return LatentShardDataset(split, root / self.index_path, seed=seed, train=train)
        return ImageDataset(split, root)

    def to(self, device: torch.device) -> Inputs:
        if self.encoder is not None:
            self.encoder.to(device)
        return self

    def verify(self, device: torch.device, split: Split, root: Path) -> None:
        """Online latents only: compare ``check_images`` centre-crop faces with the real codec."""
        if self.kind != "online" or self.check is None or self.check_images <= 0:
            return
        ds = ImageDataset(split, root)
        n = min(self.check_images, len(ds))
        faces = torch.stack([ds[i][0] for i in range(n)])
        a = self.cfg.augment
        view = augment(faces, a.resize, a.crop, 0.0, torch.Generator(), train=False).round().clamp(0, 255)
        assert self.encoder is not None
        self.check(self.encoder, device, view.to(torch.uint8), split.image_ids[:n])

    def __call__(self, x: torch.Tensor, gen: torch.Generator, train: bool) -> torch.Tensor:
        if self.kind == "latents":
            return x.float()
        a = self.cfg.augment
        faces = augment(x, a.resize, a.crop, a.grayscale_p, gen, train=train)
        if self.kind == "resnet50":
            return resnet50_input(faces)
        assert self.encoder is not None
        return self.encoder(faces)


@dataclass
class RunSpec:
    """One training run: which network, its phases and where outputs go."""

    name: str  # resnet50 | cresnet39/<codec>
    arch: str
    arch_kwargs: dict[str, Any]
    phase1: Phase1Params
    phase2: Phase2Params
    inputs: Inputs
    out_dir: Path  # model.pt, phase1.pt (the stage's DVC outputs)
    report_dir: Path | None  # DVCLive folder; None = no curves (benchmarks, programmatic runs)
    checkpoint_dir: Path  # resumable checkpoints (not a DVC output)
    stage: str  # dvc.yaml stage (group) whose deps the fingerprint hashes
    item: str | None = None  # foreach item (codec) of the stage group
    embedding_init: dict[str, torch.Tensor] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoopState:
    """Where the loop is: phase (1/2), epoch within it, batches done in it, global step."""

    phase: int = 1
    epoch: int = 0
    batch: int = 0
    step: int = 0
    logged: int = 0  # DVCLive steps (epochs) logged so far
    meter: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "correct": 0.0, "n": 0.0})
    history: list[dict[str, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Losses as modules (so DDP sees exactly the trainable parameters)
# ---------------------------------------------------------------------------------------------
class Phase1Objective(nn.Module):
    def __init__(self, model: FaceNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y)
        return loss, (logits.argmax(1) == y).sum()


def arcface(num_classes: int, cfg: ArcFaceParams, embedding_size: int = 2048) -> nn.Module:
    """pytorch-metric-learning ``ArcFaceLoss`` (margin in degrees: 28.6 = 0.5 rad, s = 64)."""
    from pytorch_metric_learning.losses import ArcFaceLoss

    return ArcFaceLoss(num_classes=num_classes, embedding_size=embedding_size, margin=cfg.margin_deg, scale=cfg.scale)


class Phase2Objective(nn.Module):
    """FC 2048 embedding + ArcFace on frozen-backbone features, all in fp32 (even under autocast)."""

    def __init__(self, embedding: nn.Linear, criterion: nn.Module) -> None:
        super().__init__()
        self.embedding, self.criterion = embedding, criterion

    def forward(self, feats: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(feats.device.type, enabled=False):
            emb = self.embedding(feats.float())
            loss = self.criterion(emb, y)
            with torch.no_grad():
                correct = (self.criterion.get_logits(emb).argmax(1) == y).sum()
        return loss, correct

    @torch.no_grad()
    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """ArcFace cosine logits (s x cos, no margin) of ``feats``, in fp32 like :meth:`forward`."""
        with torch.autocast(feats.device.type, enabled=False):
            return self.criterion.get_logits(self.embedding(feats.float()))


@torch.no_grad()
def centroid_arcface_loss(emb: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: ArcFaceParams) -> float:
    """ArcFace loss with class weights = normalised per-identity mean embeddings (val loss)."""
    emb = F.normalize(emb.float(), dim=1)
    cent = torch.zeros(num_classes, emb.shape[1], device=emb.device).index_add_(0, labels, emb)
    present = torch.bincount(labels, minlength=num_classes) > 0
    crit = arcface(int(present.sum()), cfg, emb.shape[1]).to(emb.device)
    remap = torch.cumsum(present.long(), 0) - 1
    crit.W.data = F.normalize(cent[present], dim=1).t().contiguous()
    return float(crit(emb, remap[labels]))


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------
def run_params(spec: RunSpec, cfg: TrainParams) -> dict[str, Any]:
    """The params that change a run's numbers (not where or how fast it runs)."""
    keep = cfg.model_dump(
        exclude={"workers", "checkpoint_every", "keep_checkpoints", "device", "resnet50", "cresnet39"}
    )
    return {
        "spec": [
            spec.name,
            spec.arch,
            spec.arch_kwargs,
            spec.phase1.model_dump(),
            spec.phase2.model_dump(),
            spec.inputs.kind,
            spec.meta.get("codec"),
            spec.meta.get("codec_settings"),
        ],
        "cfg": keep,
    }


def fingerprint(spec: RunSpec, cfg: TrainParams, root: Path, say: bool = True) -> fp.Fingerprint:
    """Params + content of the stage's code and data dependencies + the phase-2 FC initialisation."""
    init = None
    if spec.embedding_init is not None:
        init = {
            k: hashlib.sha256(v.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for k, v in sorted(spec.embedding_init.items())
        }
    return fp.compute(spec.stage, spec.item, root, run_params(spec, cfg), extra={"init": init}, say=say)


#: per-epoch values DVCLive plots but keeps out of ``metrics.json`` (``dvc metrics``): the run's speed and
#: the learning rate the params schedule (an echo of settings, not a result)
CURVES_ONLY = ("images_per_s", "lr")


def log_epoch(live: Any, metrics: dict[str, float], group: str | None = None) -> None:
    """One DVCLive step: every value as a curve (under ``group/`` when given); the summary keeps the
    results (loss, accuracy, PSNR, val_loss), not :data:`CURVES_ONLY`."""
    for k, v in metrics.items():
        live.log_metric(f"{group}/{k}" if group else k, v)
    block = live.summary.get(group, {}) if group else live.summary
    for k in CURVES_ONLY:
        block.pop(k, None)
    live.next_step()


def _seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") & ((1 << 63) - 1)


class Trainer:
    """Runs :class:`RunSpec` with :class:`TrainParams`; see module docstring."""

    def __init__(
        self,
        spec: RunSpec,
        cfg: TrainParams,
        root: Path = Path("."),
        on_step: Callable[[LoopState], None] | None = None,
        progress: bool = True,
    ) -> None:
        self.spec, self.cfg, self.root, self.on_step, self.progress = spec, cfg, Path(root), on_step, progress
        if os.environ.get(KILL_ENV):
            self.on_step = _kill_after(int(os.environ[KILL_ENV]), on_step)
        self.env = DistEnv.from_env()
        self.device = self.env.device(cfg.device)
        self.cuda = self.device.type == "cuda"
        self.amp = self.cuda and cfg.amp
        self.channels_last = self.cuda and cfg.channels_last

    # -- setup ---------------------------------------------------------------------------
    def _splits(self) -> dict[str, Split]:
        table = read_images_table(self.root)
        return {"all": make_split(table, "all"), "train": make_split(table, "train"), "val": make_split(table, "val")}

    def _live(self, history: list[dict[str, float]]) -> Any:
        """A fresh DVCLive folder; a resumed run replays the epochs it had logged (same steps, same curves)."""
        if not self.env.is_main or self.spec.report_dir is None:
            return None
        from dvclive import Live

        live = Live(str(self.root / self.spec.report_dir), resume=False, save_dvc_exp=False, dvcyaml=None, report=None)
        for h in history:
            log_epoch(live, {k: v for k, v in h.items() if k not in ("phase", "epoch", "step")}, f"phase{h['phase']}")
        return live

    def _fingerprint(self) -> fp.Fingerprint:
        """Computed once (main process) and shared with every DDP rank."""
        mine = fingerprint(self.spec, self.cfg, self.root, say=self.env.is_main) if self.env.is_main else None
        return self.env.broadcast(mine)

    def _loader(
        self,
        ds: Dataset,
        seed: int,
        epoch: int,
        skip: int,
        max_batches: int | None,
        shuffle: bool,
        draw: int | None = None,
    ) -> DataLoader:
        if draw is not None and hasattr(ds, "set_draw"):
            ds.set_draw(draw)
        sampler = EpochBatches(
            len(ds), self.cfg.batch_size, seed, epoch, skip, max_batches, self.env.rank, self.env.world, shuffle=shuffle
        )
        return DataLoader(
            ds,
            batch_sampler=sampler,
            num_workers=self.cfg.workers,
            pin_memory=self.cuda,
            persistent_workers=False,
            prefetch_factor=4 if self.cfg.workers else None,
        )

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self) -> Any:
        return (
            torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)
            if self.cuda
            else torch.autocast("cpu", enabled=False)
        )

    def _ddp(self, module: nn.Module) -> nn.Module:
        if not self.env.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.cuda else None)

    # -- main ----------------------------------------------------------------------------
    def fit(self) -> FaceNet:
        """Train both phases (resuming when a valid checkpoint exists); return the phase-2 model."""
        self.env.init(self.device)
        try:
            return self._fit()
        except torch.OutOfMemoryError as err:
            raise TrainError(
                f"{self.spec.name}: out of memory on {self.device} with train.batch_size={self.cfg.batch_size}, "
                f"train.grad_accum={self.cfg.grad_accum} ({str(err).splitlines()[0]}). Raise train.grad_accum "
                "(same batch, smaller micro-batches) or lower train.batch_size in params.yaml."
            ) from None
        finally:
            self.env.shutdown()

    def _fit(self) -> FaceNet:
        spec, cfg = self.spec, self.cfg
        splits = self._splits()
        ckpts = Checkpoints(
            self.root / spec.checkpoint_dir, self._fingerprint(), cfg.keep_checkpoints, writer=self.env.is_main
        )
        resume = ckpts.latest()
        if resume is None:
            ckpts.clear()
            if self.env.is_main:
                print(f"[train] {spec.name}: training from step 0", file=sys.stderr, flush=True)
        self.env.barrier()
        st = LoopState(**resume.state) if resume else LoopState()
        live = self._live(st.history)

        torch.manual_seed(cfg.seed)
        model = build_model(spec.arch, num_classes=splits["all"].num_classes, embedding=False, **spec.arch_kwargs)
        torch.manual_seed(_seed(cfg.seed, 2))
        criterion = arcface(splits["train"].num_classes, cfg.arcface, model.feature_dim)
        if st.phase == 2:
            model.with_embedding_head()
        if resume:
            model.load_state_dict(resume.data["model"])
            if st.phase == 2:
                criterion.load_state_dict(resume.data["criterion"])
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        spec.inputs.to(self.device)
        spec.inputs.verify(self.device, splits["all"], self.root)
        criterion.to(self.device)

        if st.phase == 1:
            model = maybe_sync_batchnorm(model, self.env, self.device)
            self._phase1(model, splits["all"], st, ckpts, live, resume)
            resume = None
            if self.env.is_main:
                save_model(model, ckpts.phase1_path, meta={**spec.meta, "phase": 1})
            torch.manual_seed(_seed(cfg.seed, 4))  # same random FC 2048 whether or not phase 1 was resumed
            model.with_embedding_head(init_from=spec.embedding_init)
            st.phase, st.epoch, st.batch = 2, 0, 0
            st.meter = LoopState().meter
            ckpts.save(
                st.step,
                {
                    "state": dataclasses.asdict(st),
                    "model": model.state_dict(),
                    "criterion": criterion.state_dict(),
                    "optimizer": None,
                    "scheduler": None,
                },
            )
        self._phase2(model, criterion, splits["train"], splits["val"], st, ckpts, live, resume)

        model.eval()
        if self.env.is_main:
            meta = {
                **spec.meta,
                "phase": 2,
                "history": st.history,
                "steps": st.step,
                "classes_phase1": splits["all"].num_classes,
                "classes_phase2": splits["train"].num_classes,
                "images": len(splits["all"]),
            }
            with atomic_path(self.root / spec.out_dir / "phase1.pt") as tmp:
                shutil.copyfile(ckpts.phase1_path, tmp)
            save_model(model, self.root / spec.out_dir / "model.pt", meta=meta)
            model.meta = meta  # type: ignore[attr-defined]
        if live is not None:
            live.end()
        self.env.barrier()
        ckpts.seal()  # completed: the next run of this stage starts from step 0
        return model

    # -- phases --------------------------------------------------------------------------
    def _phase1(self, model: FaceNet, split: Split, st: LoopState, ckpts: Checkpoints, live: Any, resume: Any) -> None:
        p = self.spec.phase1
        obj = self._ddp(Phase1Objective(model))
        opt = torch.optim.SGD(
            model.parameters(), lr=p.lr, momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay
        )
        if resume and resume.data.get("optimizer"):
            opt.load_state_dict(resume.data["optimizer"])
        ds = self.spec.inputs.dataset(split, self.root, self.cfg.seed)

        def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            model.train()
            return obj(self._to_model(x), y)

        def extra() -> dict[str, Any]:
            return {"criterion": None, "scheduler": None}

        self._run_epochs(
            1, p.epochs, ds, step, opt, list(model.parameters()), st, ckpts, live, model, extra, lambda metrics: None
        )

    def _phase2(
        self,
        model: FaceNet,
        criterion: nn.Module,
        train: Split,
        val: Split,
        st: LoopState,
        ckpts: Checkpoints,
        live: Any,
        resume: Any,
    ) -> None:
        p, cfg = self.spec.phase2, self.cfg
        assert model.embedding is not None
        for prm in model.parameters():
            prm.requires_grad_(False)
        trainable = [*model.embedding.parameters(), *criterion.parameters()]
        for prm in trainable:
            prm.requires_grad_(True)
        obj = self._ddp(Phase2Objective(model.embedding, criterion))
        opt = torch.optim.SGD(trainable, lr=p.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=p.plateau_factor, patience=p.plateau_patience
        )
        if resume and resume.data.get("optimizer"):
            opt.load_state_dict(resume.data["optimizer"])
        if resume and resume.data.get("scheduler"):
            sched.load_state_dict(resume.data["scheduler"])
        ds = self.spec.inputs.dataset(train, self.root, self.cfg.seed)
        val_ds = self.spec.inputs.dataset(val, self.root, self.cfg.seed, train=False)

        def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            model.eval()  # frozen backbone: BN statistics untouched
            with torch.no_grad():
                feats = model.features(self._to_model(x))
            obj.train()
            return obj(feats.float(), y)

        def extra() -> dict[str, Any]:
            return {"criterion": criterion.state_dict(), "scheduler": sched.state_dict()}

        def end_epoch(metrics: dict[str, float]) -> None:
            metrics["val_loss"] = self._val_loss(model, val_ds, val, st.epoch)
            sched.step(metrics["val_loss"])

        self._run_epochs(2, p.epochs, ds, step, opt, trainable, st, ckpts, live, model, extra, end_epoch)

    @torch.no_grad()
    def _val_loss(self, model: FaceNet, ds: Dataset, split: Split, epoch: int) -> float:
        model.eval()
        embs, labels = [], []
        loader = self._loader(ds, _seed(self.cfg.seed, 3), 0, 0, self.cfg.val_max_batches, shuffle=False)
        for b, (x, y, _) in enumerate(loader):
            gen = torch.Generator().manual_seed(_seed(self.cfg.seed, 3, b))
            with self._autocast():
                inp = self.spec.inputs(x.to(self.device, non_blocking=True), gen, train=False)
                feats = model.features(self._to_model(inp))
            assert model.embedding is not None
            embs.append(fp32_head(model.embedding, feats))
            labels.append(y.to(self.device))
        if not embs:
            raise TrainError(f"validation split has fewer than train.batch_size={self.cfg.batch_size} images")
        emb, lab = torch.cat(embs), torch.cat(labels)
        if self.env.distributed:
            gathered_e = [torch.empty_like(emb) for _ in range(self.env.world)]
            gathered_l = [torch.empty_like(lab) for _ in range(self.env.world)]
            torch.distributed.all_gather(gathered_e, emb)
            torch.distributed.all_gather(gathered_l, lab)
            emb, lab = torch.cat(gathered_e), torch.cat(gathered_l)
        return centroid_arcface_loss(emb, lab, split.num_classes, self.cfg.arcface)

    def _run_epochs(
        self,
        phase: int,
        epochs: int,
        ds: Dataset,
        step_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]],
        opt: torch.optim.Optimizer,
        params: list[nn.Parameter],
        st: LoopState,
        ckpts: Checkpoints,
        live: Any,
        model: FaceNet,
        extra: Callable[[], dict[str, Any]],
        end_epoch: Callable[[dict[str, float]], None],
    ) -> None:
        from tqdm import tqdm

        cfg, env = self.cfg, self.env
        accum = cfg.grad_accum
        base_seed = _seed(cfg.seed, phase)

        def checkpoint() -> None:
            ckpts.save(
                st.step,
                {
                    "state": dataclasses.asdict(st),
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    **extra(),
                },
            )

        while st.epoch < epochs:
            draw = st.epoch if phase == 1 else self.spec.phase1.epochs + st.epoch  # training epoch over both phases
            loader = self._loader(ds, base_seed, st.epoch, st.batch, cfg.max_steps_per_epoch, shuffle=True, draw=draw)
            bar = tqdm(
                total=len(loader) * cfg.batch_size,
                unit="img",
                disable=not (self.progress and env.is_main),
                desc=f"{self.spec.name} phase {phase} epoch {st.epoch + 1}/{epochs}",
                dynamic_ncols=True,
            )
            t0, seen = time.perf_counter(), 0
            for x, y, idx in loader:
                b = st.batch
                gen = torch.Generator().manual_seed(_seed(base_seed, st.epoch, b))
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                loss_sum, correct = 0.0, 0.0
                for xm, ym, im in zip(x.chunk(accum), y.chunk(accum), idx.chunk(accum)):
                    with self._autocast():
                        inp = self.spec.inputs(xm, gen, train=True)
                        loss, corr = step_fn(inp, ym)
                    if not torch.isfinite(loss):
                        ids = [ds.split.image_ids[i] for i in im.tolist()[:8]] if hasattr(ds, "split") else im.tolist()
                        raise NonFiniteLossError(
                            f"{self.spec.name}: non-finite loss ({float(loss.detach())}) in phase {phase}, "
                            f"epoch {st.epoch + 1}, "
                            f"step {st.step + 1}, batch {b} (images {ids}). Lower the learning rate "
                            f"(train.{self.spec.name.split('/')[0]}.phase{phase}.lr) or check these inputs; "
                            f"the last good checkpoint is in {ckpts.folder}"
                        )
                    (loss / accum).backward()
                    loss_sum += float(loss.detach()) * len(ym)
                    correct += float(corr)
                opt.step()
                n = float(len(y))
                st.meter["loss"] += loss_sum
                st.meter["correct"] += correct
                st.meter["n"] += n
                st.step += 1
                st.batch += 1
                seen += len(y) * env.world
                bar.update(len(y) * env.world)
                bar.set_postfix(loss=f"{loss_sum / n:.3f}", img_s=f"{seen / max(time.perf_counter() - t0, 1e-9):.0f}")
                if st.step % cfg.checkpoint_every == 0:
                    checkpoint()
                if self.on_step is not None:
                    self.on_step(st)
            bar.close()
            if st.meter["n"] == 0:
                raise TrainError(
                    f"{self.spec.name}: phase {phase} epoch has no full batch "
                    f"({len(ds)} images < train.batch_size={cfg.batch_size})"
                )
            totals = env.all_sum(
                torch.tensor([st.meter["loss"], st.meter["correct"], st.meter["n"]], device=self.device)
            )
            metrics = {
                "loss": float(totals[0] / totals[2]),
                "accuracy": float(totals[1] / totals[2]),
                "lr": float(opt.param_groups[0]["lr"]),
                "images_per_s": seen / max(time.perf_counter() - t0, 1e-9),
            }
            end_epoch(metrics)
            if not all(math.isfinite(v) for v in metrics.values()):
                raise NonFiniteLossError(
                    f"{self.spec.name}: non-finite epoch metrics {metrics} in phase {phase}, "
                    f"epoch {st.epoch + 1} (step {st.step})"
                )
            st.history.append({"phase": phase, "epoch": st.epoch + 1, "step": st.step, **metrics})
            if live is not None:
                log_epoch(live, metrics, f"phase{phase}")
            st.logged += 1
            if env.is_main:
                print(
                    f"[{self.spec.name}] phase {phase} epoch {st.epoch + 1}/{epochs}: "
                    + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
                    file=sys.stderr,
                    flush=True,
                )
            st.epoch += 1
            st.batch = 0
            st.meter = LoopState().meter
            checkpoint()


def _kill_after(step: int, then: Callable[[LoopState], None] | None) -> Callable[[LoopState], None]:
    """``on_step`` hook that SIGKILLs this process after optimiser step ``step`` (see ``KILL_ENV``)."""

    def hook(st: LoopState) -> None:
        if then is not None:
            then(st)
        if st.step == step:
            print(f"[train] {KILL_ENV}={step}: killing the process", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
