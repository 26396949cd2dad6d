"""DVC stages ``train_resnet50``, ``train_cresnet39@<codec>`` and ``train_cresnet39_online@<codec>``.

Outputs (relative to the workspace root): ``models/<run>/model.pt`` (phase-2 network with the
embedding head, loadable with :func:`cdfv.models.load_checkpoint`), ``models/<run>/phase1.pt``
(identification network) and the DVCLive folder ``reports/train/<run>/`` (``metrics.json``,
``plots/metrics/phase{1,2}/*.tsv``). Resumable checkpoints live in ``models/<run>/checkpoints``
(:func:`cdfv.paths.checkpoint_dir`), which is not a DVC output and is deleted when a run completes.

cResNet39's training latents (thesis §6.3): a codec listed in ``train.cresnet39.codecs`` reads the
``latents_vggface2@<codec>`` shards (stage ``train_cresnet39@<codec>``); one in
``train.cresnet39.online_codecs`` computes ``round(g_a(x))`` of fresh augmentations on the device
(stage ``train_cresnet39_online@<codec>``, which reads the PNGs instead of shards).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from cdfv import paths
from cdfv.config import Params, ParamsError
from cdfv.models import FaceNet
from cdfv.models.latent import (
    OnlineLatentEncoder,
    check_against_codec,
    online_encoder,
    parse_codec_name,
)
from cdfv.train.loop import Inputs, RunSpec, Trainer
from cdfv.weights import codec_path

STAGE_RESNET50 = "train_resnet50"
STAGE_CRESNET39 = {"shards": "train_cresnet39", "online": "train_cresnet39_online"}


def resnet50_spec(params: Params) -> RunSpec:
    cfg = params.train
    return RunSpec(
        name="resnet50",
        arch="resnet50_caffe",
        arch_kwargs={},
        phase1=cfg.resnet50.phase1,
        phase2=cfg.resnet50.phase2,
        inputs=Inputs("resnet50", cfg),
        out_dir=paths.model_dir("resnet50"),
        report_dir=paths.train_report_dir("resnet50"),
        checkpoint_dir=paths.checkpoint_dir("resnet50"),
        stage=STAGE_RESNET50,
        meta={"model": "ResNet50_Original_Anchor", "input": "rgb224"},
    )


def resnet50_embedding(root: Path = Path(".")) -> dict:
    """The phase-2 FC 2048 of the trained ResNet50 (initialises cResNet39's, thesis §6.3.2)."""
    from cdfv.models import read_record

    rec = read_record(root / paths.model_dir("resnet50") / "model.pt")
    sd = rec["state_dict"]
    return {"weight": sd["embedding.weight"], "bias": sd["embedding.bias"]}


def codec_check(params: Params, codec: str, weights: Path | None = None):  # type: ignore[no-untyped-def]
    """The per-run assertion of online mode: online latents == the real codec's range-decoded ŷ
    (``weights``: the codec's verified zoo checkpoint when pretrained)."""
    learned = params.encode.learned

    def check(encoder: nn.Module, device: torch.device, faces: torch.Tensor, names: list[str]) -> None:
        from cdfv.codecs.learned import LearnedCodec

        assert isinstance(encoder, OnlineLatentEncoder)
        settings = learned.model_copy(update={"device": str(device), "verify_sample": len(names)})
        codec_obj = LearnedCodec(parse_codec_name(codec), settings, weights)
        n = check_against_codec(encoder, codec_obj, faces, names)
        print(
            f"[train] online latents of {len(names)} images ({n} values) equal the range-decoded ŷ of {codec} "
            f"on {device}",
            file=sys.stderr,
            flush=True,
        )

    return check


def cresnet39_spec(params: Params, codec: str, root: Path = Path("."), latents: str | None = None) -> RunSpec:
    """``latents``: ``shards`` | ``online``; None = the ``train.cresnet39`` list that holds ``codec``.

    The DVC stages pass it explicitly so they do not read (and rerun on edits of) the codec lists.
    """
    cfg = params.train
    c = cfg.cresnet39
    mode = latents or c.mode(codec)
    if mode not in STAGE_CRESNET39:
        raise ParamsError(f"--latents {mode!r}: expected shards or online")
    n = parse_codec_name(codec).latent_channels
    learned = params.encode.learned
    meta = {
        "model": f"cResNet39_{codec}",
        "codec": codec,
        "input": f"latent{n}x14x14",
        "latents": mode,
        "embedding_init": str(paths.model_dir("resnet50") / "model.pt") if c.init_embedding_from_resnet50 else "random",
    }
    if mode == "online":
        pad = params.align.codec_pad
        weights = codec_path(params, codec)  # weights.codecs.learned.<codec> (None when not pretrained)
        enc = online_encoder(
            codec,
            learned.pretrained,
            learned.seed,
            learned.untrained_gain,
            pad=pad,
            batch=learned.batch_size,
            weights=weights,
        )
        inputs = Inputs(
            "online", cfg, encoder=enc, check=codec_check(params, codec, weights), check_images=learned.verify_sample
        )
        meta["codec_settings"] = {
            "pretrained": learned.pretrained,
            "seed": learned.seed,
            "untrained_gain": learned.untrained_gain,
            "codec_pad": pad,
            "batch_size": learned.batch_size,
        }
    else:
        inputs = Inputs("latents", cfg, index_path=paths.vggface2_latent_index(codec))
    return RunSpec(
        name=f"cresnet39/{codec}",
        arch="cresnet39",
        arch_kwargs={"in_channels": n},
        phase1=c.phase1,
        phase2=c.phase2,
        inputs=inputs,
        out_dir=paths.model_dir("cresnet39", codec),
        report_dir=paths.train_report_dir("cresnet39", codec),
        checkpoint_dir=paths.checkpoint_dir("cresnet39", codec),
        stage=STAGE_CRESNET39[mode],
        item=codec,
        embedding_init=resnet50_embedding(root) if c.init_embedding_from_resnet50 else None,
        meta=meta,
    )


def run_train_resnet50(params: Params, root: Path = Path(".")) -> FaceNet:
    """Stage ``train_resnet50``: both phases on VGGFace2 faces."""
    return Trainer(resnet50_spec(params), params.train, root).fit()


def run_train_cresnet39(params: Params, codec: str, root: Path = Path("."), latents: str | None = None) -> FaceNet:
    """Stages ``train_cresnet39@<codec>`` (shards) / ``train_cresnet39_online@<codec>``: both phases."""
    return Trainer(cresnet39_spec(params, codec, root, latents), params.train, root).fit()
