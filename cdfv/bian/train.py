"""The three training steps of Bian et al. (§2.2.3, §2.3, §2.4) on the project's trainer machinery.

* ``pretrain`` (stage ``bian_pretrain@C``): CompNet + RecNet, MSE (eq. 2) between the face and its
  reconstruction; only the codec's parameters are in the optimiser (sphere20 is not touched).
* ``sphere20`` (stage ``bian_sphere20``): sphere20 + LMCL (CosFace; pytorch-metric-learning
  ``CosFaceLoss``, s and m from ``bian.cosface``).
* ``joint`` (stage ``bian_joint@C``): CompNet → quantisation → RecNet → sphere20 → LMCL only, starting
  from the pre-trained codec and sphere20 + its LMCL class weights (§2.4).

Shared with the ResNet50/cResNet39 trainer (:mod:`cdfv.train`): the resumable checkpoints
(:class:`cdfv.train.checkpoint.Checkpoints`) whose fingerprint covers the params and the content of
the stage's code and data dependencies (:mod:`cdfv.train.fingerprint`), the deterministic resumable
batch order (:class:`cdfv.train.data.EpochBatches`), DVCLive with replay of a resumed run's epochs,
the non-finite-loss stop naming step, batch and images, and the ``CDFV_TRAIN_KILL_AT_STEP`` fault
injection. SGD; the learning rate falls geometrically from ``lr`` to ``lr_end`` over the run's steps
("gradually reduced"). Losses run in fp32 even under bf16 autocast (MSE and CosFace).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cdfv import paths
from cdfv.bian.data import BianFaces, load_index
from cdfv.bian.models import BianNet, Sphere20, mse, to_unit
from cdfv.config import BianStep, Params
from cdfv.io import atomic_path
from cdfv.train import fingerprint as fp
from cdfv.train.checkpoint import Checkpoints
from cdfv.train.data import EpochBatches
from cdfv.train.loop import KILL_ENV, NonFiniteLossError, TrainError, _kill_after, _seed, log_epoch

STEPS = ("pretrain", "sphere20", "joint")
FORMAT = "cdfv-bian/1"


def cosface(num_classes: int, params: Params) -> nn.Module:
    """LMCL: pytorch-metric-learning ``CosFaceLoss`` (margin m, scale s; CosFace paper 0.35 / 64)."""
    from pytorch_metric_learning.losses import CosFaceLoss

    c = params.bian.cosface
    return CosFaceLoss(num_classes=num_classes, embedding_size=params.bian.embedding, margin=c.margin, scale=c.scale)


def face_size(params: Params) -> tuple[int, int]:
    ref = params.align.references[params.bian.reference]
    return ref.height, ref.width


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---------------------------------------------------------------------------------------------
# Saved models
# ---------------------------------------------------------------------------------------------
def save_bian(
    path: Path,
    step: str,
    channels: int | None,
    net: nn.Module,
    criterion: nn.Module | None,
    params: Params,
    meta: dict[str, Any],
) -> None:
    """``model.pt`` of a step: state dicts + the bian params that rebuild the networks."""
    payload = {
        "format": FORMAT,
        "step": step,
        "channels": channels,
        "bian": params.bian.model_dump(mode="json"),
        "size": face_size(params),
        "state": net.state_dict(),
        "criterion": criterion.state_dict() if criterion is not None else None,
        "meta": meta,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_bian(path: Path) -> dict[str, Any]:
    """A saved step, or a clear error naming the stage that makes it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro` of the Bian training stage that writes it")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TrainError(f"{path}: not a {FORMAT} model file; rerun its training stage")
    return data


def build_net(step: str, channels: int | None, params: Params) -> nn.Module:
    """The module a step trains: BianNet (pretrain, joint) or Sphere20 (sphere20)."""
    if step == "sphere20":
        return Sphere20(params.bian.embedding, face_size(params))
    assert channels is not None
    return BianNet(channels, params.bian, face_size(params))


def load_net(path: Path, params: Params) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the saved network (with the bian params it was trained with) in eval mode."""
    from cdfv.config import BianParams

    data = load_bian(path)
    saved = params.model_copy(update={"bian": BianParams.model_validate(data["bian"])})
    net = build_net(data["step"], data["channels"], saved)
    net.load_state_dict(data["state"])
    return net.eval(), data


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
@dataclass
class State:
    phase: int = 1  # Checkpoints' phase-2 rule never applies: one phase per Bian step
    epoch: int = 0
    batch: int = 0
    step: int = 0
    meter: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "correct": 0.0, "n": 0.0})
    history: list[dict[str, float]] = field(default_factory=list)


def stage_of(step: str, channels: int | None) -> tuple[str, str | None]:
    """dvc.yaml stage (group) and foreach item whose deps the fingerprint hashes."""
    return ("bian_sphere20", None) if step == "sphere20" else (f"bian_{step}", str(channels))


class BianTrainer:
    """Trains one step; :meth:`fit` resumes an interrupted run of the same inputs."""

    def __init__(
        self,
        step: str,
        channels: int | None,
        params: Params,
        root: Path = Path("."),
        progress: bool = True,
        on_step: Any = None,
    ) -> None:
        if step not in STEPS:
            raise ValueError(f"unknown Bian step {step!r}: {STEPS}")
        self.step_name, self.channels, self.params, self.root = step, channels, params, Path(root)
        self.cfg = params.bian.train
        self.hp_key = "codec" if step == "pretrain" else step
        self.hp: BianStep = getattr(self.cfg, self.hp_key)
        self.device = pick_device(self.cfg.device)
        self.cuda = self.device.type == "cuda"
        self.amp = self.cuda and self.cfg.amp
        self.progress = progress
        self.on_step = on_step
        if os.environ.get(KILL_ENV):
            self.on_step = _kill_after(int(os.environ[KILL_ENV]), on_step)
        self.name = "bian/sphere20" if step == "sphere20" else f"bian/{step}/C{channels}"

    # -- pieces ------------------------------------------------------------------------------
    def model_file(self) -> Path:
        return paths.bian_model_dir(self.step_name, self.channels) / "model.pt"

    def build(self, num_classes: int) -> tuple[nn.Module, nn.Module | None, list[nn.Parameter]]:
        """Network, LMCL criterion (None for pretrain) and the parameters the optimiser updates."""
        torch.manual_seed(_seed(self.cfg.seed, STEPS.index(self.step_name)))
        net = build_net(self.step_name, self.channels, self.params)
        if self.step_name == "pretrain":
            assert isinstance(net, BianNet)
            return net, None, net.codec_parameters()
        crit = cosface(num_classes, self.params)
        if self.step_name == "sphere20":
            return net, crit, [*net.parameters(), *crit.parameters()]
        assert isinstance(net, BianNet)
        codec = load_bian(self.root / paths.bian_model_dir("pretrain", self.channels) / "model.pt")
        rec = load_bian(self.root / paths.bian_model_dir("sphere20") / "model.pt")
        codec_state = {k: v for k, v in codec["state"].items() if not k.startswith("sphere20.")}
        net.load_state_dict({**net.state_dict(), **codec_state})
        net.sphere20.load_state_dict(rec["state"])
        if rec["criterion"] is not None and rec["criterion"]["W"].shape == crit.W.shape:
            crit.load_state_dict(rec["criterion"])
        else:
            raise TrainError(
                f"{self.name}: the sphere20 LMCL weights are for {tuple(rec['criterion']['W'].shape)} classes x dims, "
                f"the training faces have {num_classes}; rerun bian_sphere20 on the same bian_faces"
            )
        trainable = net.codec_parameters()
        if self.cfg.joint_trains_recogniser:
            trainable += [*net.sphere20.parameters(), *crit.parameters()]
        else:
            for p in [*net.sphere20.parameters(), *crit.parameters()]:
                p.requires_grad_(False)
        return net, crit, trainable

    def objective(
        self, net: nn.Module, crit: nn.Module | None, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss in fp32, number correct or summed PSNR) for one batch of [-1, 1] faces."""
        q = self.cfg.quantise
        if self.step_name == "pretrain":
            rec = net.reconstruct(x, q)  # type: ignore[operator]
            with torch.autocast(x.device.type, enabled=False):
                loss = mse(rec, x)
                per = ((rec.float() - x.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
                score = (10 * torch.log10(4.0 / per)).sum().detach()  # PSNR over the [-1, 1] range
            return loss, score
        emb = net(x, q) if self.step_name == "joint" else net(x)
        assert crit is not None
        with torch.autocast(x.device.type, enabled=False):
            emb = emb.float()
            loss = crit(emb, y)
            with torch.no_grad():
                correct = (crit.get_logits(emb).argmax(1) == y).sum()
        return loss, correct

    def lr_at(self, step: int, total: int) -> float:
        hp = self.hp
        if total <= 1:
            return hp.lr
        return hp.lr * (hp.lr_end / hp.lr) ** (min(step, total - 1) / (total - 1))

    def _autocast(self) -> Any:
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)
        return torch.autocast("cpu", enabled=False)

    def _live(self, history: list[dict[str, float]]) -> Any:
        from dvclive import Live

        live = Live(
            str(self.root / paths.bian_train_report_dir(self.step_name, self.channels)),
            resume=False,
            save_dvc_exp=False,
            dvcyaml=None,
            report=None,
        )
        for h in history:
            log_epoch(live, {k: v for k, v in h.items() if k not in ("epoch", "step")})
        return live

    def fingerprint(self) -> fp.Fingerprint:
        stage, item = stage_of(self.step_name, self.channels)
        run = {
            "step": self.step_name,
            "channels": self.channels,
            "bian": self.params.bian.model_dump(mode="json", exclude={"codecs", "batch_size", "device", "bd_method"}),
            "reference": self.params.align.references[self.params.bian.reference].model_dump(mode="json"),
        }
        return fp.compute(stage, item, self.root, run)

    # -- main --------------------------------------------------------------------------------
    def fit(self) -> nn.Module:
        try:
            return self._fit()
        except torch.OutOfMemoryError as err:
            raise TrainError(
                f"{self.name}: out of memory on {self.device} with batch {self.hp.batch_size} "
                f"({str(err).splitlines()[0]}); lower bian.train.{self.hp_key}.batch_size"
            ) from None

    def _fit(self) -> nn.Module:
        rows = load_index(self.root)
        ds = BianFaces(rows, self.params, self.root)
        hp, cfg = self.hp, self.cfg
        ckpts = Checkpoints(
            self.root / paths.bian_checkpoint_dir(self.step_name, self.channels),
            self.fingerprint(),
            cfg.keep_checkpoints,
        )
        resume = ckpts.latest()
        if resume is None:
            ckpts.clear()
            print(f"[train] {self.name}: training from step 0", file=sys.stderr, flush=True)
        st = State(**resume.state) if resume else State()
        net, crit, trainable = self.build(ds.num_classes)
        opt = torch.optim.SGD(trainable, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        if resume:
            net.load_state_dict(resume.data["model"])
            if crit is not None and resume.data.get("criterion") is not None:
                crit.load_state_dict(resume.data["criterion"])
            opt.load_state_dict(resume.data["optimizer"])
        net.to(self.device)
        if crit is not None:
            crit.to(self.device)
        live = self._live(st.history)
        per_epoch = EpochBatches(len(ds), hp.batch_size, 0, 0, 0, cfg.max_steps_per_epoch).num_batches()
        if per_epoch == 0 and hp.epochs > 0:
            raise TrainError(f"{self.name}: {len(ds)} training faces < batch size {hp.batch_size}")
        total = per_epoch * hp.epochs
        base = _seed(cfg.seed, 10 + STEPS.index(self.step_name))

        def checkpoint() -> None:
            ckpts.save(
                st.step,
                {
                    "state": dataclasses.asdict(st),
                    "model": net.state_dict(),
                    "criterion": crit.state_dict() if crit is not None else None,
                    "optimizer": opt.state_dict(),
                },
            )

        from tqdm import tqdm

        while st.epoch < hp.epochs:
            sampler = EpochBatches(len(ds), hp.batch_size, base, st.epoch, st.batch, cfg.max_steps_per_epoch)
            loader = DataLoader(
                ds,
                batch_sampler=sampler,
                num_workers=cfg.workers,
                pin_memory=self.cuda,
                prefetch_factor=4 if cfg.workers else None,
            )
            bar = tqdm(
                total=len(loader) * hp.batch_size,
                unit="img",
                disable=not self.progress,
                desc=f"{self.name} epoch {st.epoch + 1}/{hp.epochs}",
                dynamic_ncols=True,
            )
            t0, seen = time.perf_counter(), 0
            for xb, yb, idx in loader:
                gen = torch.Generator().manual_seed(_seed(base, st.epoch, st.batch))
                x = to_unit(xb.to(self.device, non_blocking=True))
                if cfg.flip:
                    flip = (torch.rand(len(x), generator=gen) < 0.5).to(self.device).view(-1, 1, 1, 1)
                    x = torch.where(flip, x.flip(-1), x)
                y = yb.to(self.device, non_blocking=True)
                for g in opt.param_groups:
                    g["lr"] = self.lr_at(st.step, total)
                net.train()
                opt.zero_grad(set_to_none=True)
                with self._autocast():
                    loss, score = self.objective(net, crit, x, y)
                if not torch.isfinite(loss):
                    ids = [ds.image_ids[i] for i in idx.tolist()[:8]]
                    raise NonFiniteLossError(
                        f"{self.name}: non-finite loss ({float(loss.detach())}) in epoch {st.epoch + 1}, step "
                        f"{st.step + 1}, batch {st.batch} (images {ids}). Lower bian.train.<step>.lr or check these "
                        f"inputs; the last good checkpoint is in {ckpts.folder}"
                    )
                loss.backward()
                opt.step()
                n = float(len(y))
                st.meter["loss"] += float(loss.detach()) * n
                st.meter["correct"] += float(score)
                st.meter["n"] += n
                st.step += 1
                st.batch += 1
                seen += len(y)
                bar.update(len(y))
                bar.set_postfix(
                    loss=f"{float(loss.detach()):.3f}", img_s=f"{seen / max(time.perf_counter() - t0, 1e-9):.0f}"
                )
                if st.step % cfg.checkpoint_every == 0:
                    checkpoint()
                if self.on_step is not None:
                    self.on_step(st)
            bar.close()
            m = st.meter
            metrics = {
                "loss": m["loss"] / m["n"],
                ("psnr" if self.step_name == "pretrain" else "accuracy"): m["correct"] / m["n"],
                "lr": float(opt.param_groups[0]["lr"]),
                "images_per_s": seen / max(time.perf_counter() - t0, 1e-9),
            }
            if not all(math.isfinite(v) for v in metrics.values()):
                raise NonFiniteLossError(f"{self.name}: non-finite epoch metrics {metrics} (epoch {st.epoch + 1})")
            st.history.append({"epoch": st.epoch + 1, "step": st.step, **metrics})
            log_epoch(live, metrics)
            print(
                f"[{self.name}] epoch {st.epoch + 1}/{hp.epochs}: "
                + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
                file=sys.stderr,
                flush=True,
            )
            st.epoch += 1
            st.batch = 0
            st.meter = State().meter
            checkpoint()

        net.eval().cpu()
        meta = {"history": st.history, "steps": st.step, "classes": ds.num_classes, "images": len(ds)}
        save_bian(
            self.root / self.model_file(),
            self.step_name,
            self.channels,
            net,
            crit.cpu() if crit is not None else None,
            self.params,
            meta,
        )
        live.end()
        ckpts.seal()
        return net
