"""DVC stages ``train_resnet50`` and ``train_cresnet39@<codec>``.

Outputs (relative to the workspace root): ``models/<run>/model.pt`` (phase-2 network with the
embedding head, loadable with :func:`cdfv.models.load_checkpoint`), ``models/<run>/phase1.pt``
(identification network), ``models/<run>/checkpoints/`` (resumable, persistent across reruns) and
the DVCLive folder ``reports/train/<run>/`` (``metrics.json``, ``plots/metrics/phase{1,2}/*.tsv``).
"""

from __future__ import annotations

from pathlib import Path

from cdfv import paths
from cdfv.config import Params, ParamsError
from cdfv.models import FaceNet
from cdfv.models.latent import online_encoder, parse_codec_name
from cdfv.train.loop import Inputs, RunSpec, Trainer


def resnet50_spec(params: Params) -> RunSpec:
    cfg = params.train
    return RunSpec(
        name="resnet50", arch="resnet50_caffe", arch_kwargs={}, phase1=cfg.resnet50.phase1, phase2=cfg.resnet50.phase2,
        inputs=Inputs("resnet50", cfg), out_dir=paths.model_dir("resnet50"), report_dir=paths.train_report_dir("resnet50"),
        meta={"model": "ResNet50_Original_Anchor", "input": "rgb224"},
    )


def resnet50_embedding(root: Path = Path(".")) -> dict:
    """The phase-2 FC 2048 of the trained ResNet50 (initialises cResNet39's, thesis §6.3.2)."""
    from cdfv.models import read_record

    rec = read_record(root / paths.model_dir("resnet50") / "model.pt")
    sd = rec["state_dict"]
    return {"weight": sd["embedding.weight"], "bias": sd["embedding.bias"]}


def cresnet39_spec(params: Params, codec: str, root: Path = Path(".")) -> RunSpec:
    cfg = params.train
    c = cfg.cresnet39
    if codec not in c.codecs:
        raise ParamsError(f"codec {codec!r} is not in train.cresnet39.codecs {c.codecs}")
    n = parse_codec_name(codec).latent_channels
    learned = params.encode.learned
    if c.latents == "online":
        inputs = Inputs("online", cfg, encoder=online_encoder(codec, learned.pretrained, learned.seed, learned.untrained_gain))
    else:
        inputs = Inputs("latents", cfg, index_path=paths.vggface2_latent_index(codec))
    return RunSpec(
        name=f"cresnet39/{codec}", arch="cresnet39", arch_kwargs={"in_channels": n},
        phase1=c.phase1, phase2=c.phase2, inputs=inputs,
        out_dir=paths.model_dir("cresnet39", codec), report_dir=paths.train_report_dir("cresnet39", codec),
        embedding_init=resnet50_embedding(root) if c.init_embedding_from_resnet50 else None,
        meta={"model": f"cResNet39_{codec}", "codec": codec, "input": f"latent{n}x14x14", "latents": c.latents,
              "embedding_init": str(paths.model_dir("resnet50") / "model.pt") if c.init_embedding_from_resnet50 else "random",
              "codec_settings": {"pretrained": learned.pretrained, "seed": learned.seed,
                                 "untrained_gain": learned.untrained_gain}},
    )


def run_train_resnet50(params: Params, root: Path = Path(".")) -> FaceNet:
    """Stage ``train_resnet50``: both phases on VGGFace2 faces."""
    return Trainer(resnet50_spec(params), params.train, root).fit()


def run_train_cresnet39(params: Params, codec: str, root: Path = Path(".")) -> FaceNet:
    """Stage ``train_cresnet39@<codec>``: both phases on the codec's latents."""
    return Trainer(cresnet39_spec(params, codec, root), params.train, root).fit()
