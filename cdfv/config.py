"""The one params model: ``params.yaml`` loaded into validated pydantic models.

Every experimental knob of the paper lives in ``params.yaml``; every stage reads it through
:func:`load_params`. Unknown keys and bad values fail *before* any work starts, with the dotted
key path in the message (``ParamsError: detect.thresholds.start: ...``).

Each section is a small model; stages declare in ``dvc.yaml`` only the keys they read so DVC
invalidates precisely.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdfv.codecs.names import Family, parse_codec_name
from cdfv.errors import CdfvError

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(CdfvError, ValueError):
    """Raised when ``params.yaml`` is missing, unparsable or invalid. Message names key paths."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Ingestion
# --------------------------------------------------------------------------------------------
class LfwParams(_Strict):
    """LFW sources (paper §IV.B). URLs may be http(s)://, file:// or plain local paths."""

    archive_url: str
    archive_sha256: str | None = Field(None, description="hex sha256 of the archive; null = not checked")
    pairs_url: str
    pairs_sha256: str | None = None
    on_corrupt: Literal["fail", "skip"] = "fail"
    workers: int = Field(0, ge=0, description="processes for JPEG->PNG conversion; 0 = all cores")

    @field_validator("archive_sha256", "pairs_sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("must be 64 lowercase hex digits (sha256) or null")
        return v


class VggFace2Params(_Strict):
    """VGGFace2 training data (thesis §1): a local tree of identity folders."""

    root: str = Field(description="folder holding <identity>/<image> (or a 'train/' subfolder)")
    size: int = Field(112, gt=0, description="stored square size (the pre-aligned 112x112 release)")
    val_identities: int = Field(863, ge=1, description="identities held out for phase-2 validation")
    split_seed: int = 2023
    max_identities: int | None = Field(None, ge=2, description="subsample for quick runs")
    max_images_per_identity: int | None = Field(None, ge=1)
    on_corrupt: Literal["fail", "skip"] = "fail"
    workers: int = Field(0, ge=0)


# --------------------------------------------------------------------------------------------
# Detection and alignment
# --------------------------------------------------------------------------------------------
class ThresholdSchedule(_Strict):
    """Centre-heuristic walk-down in integer thousandths (985 -> 700 step 5) to avoid drift."""

    start: float = 0.985
    stop: float = 0.7
    step: float = 0.005

    @model_validator(mode="after")
    def _order(self) -> ThresholdSchedule:
        if not (self.step > 0 and self.stop <= self.start):
            raise ValueError("need step > 0 and stop <= start")
        return self


class DlibDetectParams(_Strict):
    """Offline detector (extra ``offline``): dlib HOG/MMOD-CNN + a dlib shape predictor."""

    model: Literal["cnn", "hog"] = "hog"
    upsample: int = Field(1, ge=0, le=3)
    landmarks: Literal["sixty_eight", "five_point"] = Field(
        "sixty_eight", description="68-pt iBUG model (real mouth corners) or the 5-pt model (mouth derived)"
    )
    # dlib scores are not probabilities: its own schedule (HOG SVM margin / MMOD confidence).
    thresholds: ThresholdSchedule = ThresholdSchedule(start=1.0, stop=-0.5, step=0.05)


class RetinaFaceParams(_Strict):
    """The paper's detector (PyPI retina-face, PyTorch engine); weights: ``weights.retinaface``."""

    weights: str | None = Field(
        None, description="a local retinaface.pth instead of weights.retinaface (checked against its sha256)"
    )
    allow_upscaling: bool = True
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto = cuda when available")
    batch_size: int = Field(8, ge=1, description="images per network call (equal-size images only)")


class DetectParams(_Strict):
    """Detection + centre heuristic (thesis §5.4)."""

    backend: Literal["retinaface", "dlib"] = "retinaface"
    thresholds: ThresholdSchedule = ThresholdSchedule()
    fallback: Literal["whole_image", "centre_crop"] = "whole_image"
    fallback_fraction: float = Field(0.6, gt=0, le=1, description="centre_crop: side as a fraction of min(W, H)")
    retinaface: RetinaFaceParams = RetinaFaceParams()
    dlib: DlibDetectParams = DlibDetectParams()
    chunk_size: int = Field(64, ge=1, description="images per task / progress update")


class AlignParams(_Strict):
    """Crop, rotate by the eye line, additive resize, pad (thesis §5.4)."""

    size: int = Field(224, gt=0)
    codec_pad: int = Field(16, ge=0, description="black border added for codecs: 224 -> 256")
    interpolation: Literal["nearest", "bilinear", "bicubic", "area", "lanczos"] = "bilinear"
    rotate_interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] = Field(
        "nearest", description="eye-line rotation; the paper's retina-face rotated with PIL's default (nearest)"
    )
    contact_sheet: int = Field(16, ge=1, description="faces on reports/figures/align_contact_sheet.png")
    seed: int = 0


# --------------------------------------------------------------------------------------------
# Codecs, encoding and latent shards (thesis §5.6, §6.2)
# --------------------------------------------------------------------------------------------
class CodecEntry(_Strict):
    """One codec x quality point of ``codecs:`` (key = the paper's name, e.g. ``JPEG2000_mse_Q3``)."""

    family: Family
    target_bpp: float | None = Field(
        None, gt=0, description="jpeg2000 only: bits per 256^2 codec-input pixel; null = the Ballé rate of Q<k>"
    )
    latents: bool = Field(False, description="learned only: also write LFW latent shards (cResNet39 input)")


class JpegSettings(_Strict):
    """Pillow / libjpeg-turbo baseline JPEG."""

    subsampling: Literal["4:2:0", "4:2:2", "4:4:4"] = "4:2:0"
    optimize: bool = Field(False, description="optimised Huffman tables (libjpeg default: off)")


class Jpeg2000VisualWeights(_Strict):
    """Distortion weights of the YCbCr components in the ``visual`` configuration (Y = 1)."""

    cb: float = Field(0.5, gt=0, le=1)
    cr: float = Field(0.5, gt=0, le=1)


class Jpeg2000Settings(_Strict):
    """glymur / OpenJPEG, irreversible 9/7 DWT, rate set per image by OpenJPEG's PCRD allocation."""

    numres: int = Field(6, ge=1, le=8, description="DWT levels + 1 (256^2 supports up to 8)")
    codeblock: int = Field(64, description="code-block side (32 or 64)")
    visual: Jpeg2000VisualWeights = Jpeg2000VisualWeights()
    rate_tolerance: float = Field(0.03, gt=0, lt=1, description="relative bpp error accepted before refining")
    max_refine: int = Field(4, ge=0, le=10, description="extra encodes per image to meet the target rate")

    @field_validator("codeblock")
    @classmethod
    def _cb(cls, v: int) -> int:
        if v not in (32, 64):
            raise ValueError("must be 32 or 64")
        return v


class HevcSettings(_Strict):
    """ffmpeg + libx265, all-intra, constant QP; colour conversion done in numpy (BT.601 full range)."""

    pix_fmt: Literal["yuv444p", "yuv420p"] = Field(
        "yuv420p",
        description="HM's common test conditions (the thesis' HEVC) code 4:2:0; HEVC_444_QP<qp> names fix 4:4:4",
    )
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
    ] = "medium"
    tune: Literal["psnr", "ssim", "none"] = Field("psnr", description="psnr = no psycho-visual tools (closest to HM)")
    batch: int = Field(256, ge=1, description="faces per ffmpeg process")
    x265_params: str = Field("", description="extra ':'-separated x265 options appended verbatim")


class LearnedSettings(_Strict):
    """CompressAI zoo models with the real range coder."""

    pretrained: bool = Field(True, description="false = seeded random init (offline smoke runs only)")
    seed: int = Field(0, description="init seed when pretrained is false")
    untrained_gain: float = Field(
        1.0, gt=0, description="pretrained false: scale of g_a's last conv (1/scale on g_s's first) so ŷ is not all 0"
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    batch_size: int = Field(16, ge=1)
    verify_sample: int = Field(4, ge=0, description="images per run checked for decoded ŷ == round(g_a(x))")


class LatentShardSettings(_Strict):
    shard_rows: int = Field(4096, ge=1, description="latents per Arrow IPC shard")
    zstd_level: int = Field(3, ge=1, le=22)


class VggLatentParams(_Strict):
    """``latents_vggface2@<codec>`` (codecs = ``train.cresnet39.codecs``): VGGFace2 latents for cResNet39."""

    variants: int = Field(
        10,
        ge=1,
        description="K per image: 0 = centre crop (validation), 1..K-1 = random crop + grey, one per "
        "training epoch without replacement (K >= cResNet39 phase1 + phase2 epochs + 1, thesis §6.3)",
    )
    resize: int = Field(256, gt=0)
    crop: int = Field(224, gt=0)
    grayscale_p: float = Field(0.2, ge=0, le=1)
    seed: int = 2023


class RdReportParams(_Strict):
    """``rd_report``: RD curves per series and Bjøntegaard deltas against an anchor series."""

    anchor: str = Field("JPEG", description="series the BD deltas are relative to (e.g. JPEG, Balle2018_mse)")
    rate: Literal["bpp_256", "bpp_224"] = "bpp_256"
    method: Literal["cubic", "pchip"] = "cubic"


class EncodeParams(_Strict):
    """Family settings shared by every quality point of a family (``encode.<family>``)."""

    jpeg: JpegSettings = JpegSettings()
    jpeg2000: Jpeg2000Settings = Jpeg2000Settings()
    hevc: HevcSettings = HevcSettings()
    learned: LearnedSettings = LearnedSettings()
    shards: LatentShardSettings = LatentShardSettings()
    vggface2: VggLatentParams = VggLatentParams()
    report: RdReportParams = RdReportParams()
    on_error: Literal["fail", "skip"] = Field("fail", description="skip = record status=error and go on")
    chunk_size: int = Field(64, ge=1, description="images per batch / progress update")
    workers: int = Field(0, ge=0, description="threads for in-process codecs (jpeg, jpeg2000); 0 = all cores")


def _validate_codecs(codecs: dict[str, CodecEntry]) -> dict[str, CodecEntry]:
    """Keys must parse as codec names whose family matches the entry."""
    for name, entry in codecs.items():
        spec = parse_codec_name(name)
        if spec.family != entry.family:
            raise ValueError(f"{name}: family is {spec.family!r}, not {entry.family!r}")
        if entry.target_bpp is not None and spec.family != "jpeg2000":
            raise ValueError(f"{name}: target_bpp applies to jpeg2000 codecs only")
        if entry.latents and not spec.has_latents:
            raise ValueError(f"{name}: latents: true needs a Balle2018 codec")
    return codecs


# --------------------------------------------------------------------------------------------
# Models, training and complexity (thesis §5.5, §6.3, Table 7)
# --------------------------------------------------------------------------------------------
_DEVICE = r"^(auto|cpu|cuda(:\d+)?)$"
PAPER_LEARNED_CODECS = ["Balle2018_mse_Q1", "Balle2018_mse_Q3", "Balle2018_mse_Q6", "Balle2018_mse_Q8"]


def codec_list(check: Callable[[Any], str | None] | None = None) -> AfterValidator:
    """A validator for a list of codec names: each must parse (registry grammar), pass ``check``
    (returns an error message or None) and appear once."""

    def validate(names: list[str]) -> list[str]:
        for name in names:
            spec = parse_codec_name(name)
            problem = check(spec) if check else None
            if problem:
                raise ValueError(f"{name}: {problem}")
        if len(set(names)) != len(names):
            raise ValueError("duplicate codec names")
        return names

    return AfterValidator(validate)


_hyperprior_codecs = codec_list(
    lambda c: None if c.has_latents else "cResNet39 / decoded anchors need a Balle2018 (hyperprior) codec"
)
_learned_codecs = codec_list(
    lambda c: (
        None if c.family == "learned" else "pipeline B1 (decode then crop, thesis ch. 5) takes learned codecs only"
    )
)
_codec_names = codec_list()


class Phase1Params(_Strict):
    """Identification: FC -> all identities, cross-entropy (mean), SGD, no schedule (thesis §5.5.2)."""

    epochs: int = Field(ge=0)
    lr: float = Field(0.1, gt=0)


class Phase2Params(_Strict):
    """Verification: FC 2048 + ArcFace trainable only, ReduceLROnPlateau on the val loss."""

    epochs: int = Field(ge=0)
    lr: float = Field(0.005, gt=0)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(1, ge=0, description="epochs without val-loss improvement before lr *= factor [AMB]")


class AugmentParams(_Strict):
    """112 -> resize (bilinear) -> random crop -> random grayscale; no flip (thesis §5.5.2)."""

    resize: int = Field(256, gt=0)
    crop: int = Field(224, gt=0)
    grayscale_p: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _fits(self) -> AugmentParams:
        if self.crop > self.resize:
            raise ValueError("crop must be <= resize")
        return self


class ArcFaceParams(_Strict):
    """pytorch-metric-learning ArcFaceLoss: s = 64, m = 28.6 degrees (0.5 rad)."""

    scale: float = Field(64.0, gt=0)
    margin_deg: float = Field(28.6, ge=0, lt=90)


class ResNet50TrainParams(_Strict):
    phase1: Phase1Params = Phase1Params(epochs=10)
    phase2: Phase2Params = Phase2Params(epochs=5)


class CResNet39TrainParams(_Strict):
    """cResNet39 per learned codec. Where the VGGFace2 latents come from is a stage choice, so two
    lists (DVC cannot make a stage's deps depend on a param): ``codecs`` train on the stored
    ``latents_vggface2@<codec>`` shards (``train_cresnet39@<codec>``), ``online_codecs`` compute
    ``round(g_a(x))`` of fresh augmentations on the device (``train_cresnet39_online@<codec>``)."""

    codecs: Annotated[list[str], _hyperprior_codecs] = Field(
        default_factory=lambda: list(PAPER_LEARNED_CODECS),
        description="train_cresnet39@<codec> (and latents_vggface2@<codec>) matrix: latents from shards",
    )
    online_codecs: Annotated[list[str], _hyperprior_codecs] = Field(
        default_factory=list, description="train_cresnet39_online@<codec> matrix: frozen g_a in the training loop"
    )
    init_embedding_from_resnet50: bool = Field(True, description="phase-2 FC starts from ResNet50's (thesis §6.3.2)")
    phase1: Phase1Params = Phase1Params(epochs=6)
    phase2: Phase2Params = Phase2Params(epochs=3)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "latents" in data:
            raise ValueError(
                "latents: was replaced by two lists: put shard-trained codecs in train.cresnet39.codecs and "
                "online ones (round(g_a(x)) in the loop) in train.cresnet39.online_codecs"
            )
        return data

    @model_validator(mode="after")
    def _disjoint(self) -> CResNet39TrainParams:
        both = sorted(set(self.codecs) & set(self.online_codecs))
        if both:
            raise ValueError(
                f"{both} in both codecs and online_codecs: each codec's model is trained one way "
                "(both stages would write models/cresnet39/<codec>/model.pt)"
            )
        return self

    @property
    def epochs(self) -> int:
        """Training epochs of both phases: each draws a fresh augmentation per image."""
        return self.phase1.epochs + self.phase2.epochs

    def mode(self, codec: str) -> Literal["shards", "online"]:
        """Where ``codec``'s training latents come from; :class:`ParamsError` when it is in neither list."""
        if codec in self.codecs:
            return "shards"
        if codec in self.online_codecs:
            return "online"
        raise ParamsError(
            f"codec {codec!r} is in neither train.cresnet39.codecs {self.codecs} "
            f"nor train.cresnet39.online_codecs {self.online_codecs}"
        )


class TrainParams(_Strict):
    """Two-phase training of ResNet50 and cResNet39 (stages train_resnet50, train_cresnet39@<codec>,
    train_cresnet39_online@<codec>; thesis §5.5.2, §6.3.2)."""

    device: str = Field("auto", pattern=_DEVICE)
    batch_size: int = Field(64, ge=1, description="global batch (split over GPUs and grad_accum micro-batches)")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimiser step (lower memory, same batch)")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    workers: int = Field(8, ge=0, description="DataLoader processes (PNG decoding); 0 = main process")
    amp: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU)")
    channels_last: bool = Field(True, description="channels-last memory format on CUDA")
    seed: int = 2023
    checkpoint_every: int = Field(1000, ge=1, description="optimiser steps between resumable checkpoints")
    keep_checkpoints: int = Field(3, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap for quick runs; null = full epochs")
    val_max_batches: int | None = Field(None, ge=1, description="cap on phase-2 validation batches")
    augment: AugmentParams = AugmentParams()
    arcface: ArcFaceParams = ArcFaceParams()
    resnet50: ResNet50TrainParams = ResNet50TrainParams()
    cresnet39: CResNet39TrainParams = CResNet39TrainParams()

    @model_validator(mode="after")
    def _accum(self) -> TrainParams:
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} must be divisible by grad_accum {self.grad_accum}")
        return self


class ComplexityParams(_Strict):
    """Stage ``complexity``: MACs, kMAC/px, params and timing of every Table-7 model."""

    codecs: Annotated[list[str], _hyperprior_codecs] = Field(default_factory=lambda: list(PAPER_LEARNED_CODECS))
    device: str = Field("auto", pattern=_DEVICE)
    batch_pairs: int = Field(64, ge=1, description="pairs per timed batch (paper: 64 pairs = 128 images)")
    warmup: int = Field(3, ge=0)
    repeats: int = Field(50, ge=0, description="timed batches (paper: 50 runs); 0 = MACs only")


# --------------------------------------------------------------------------------------------
# Evaluation (thesis §5.7–5.9, §6.4)
# --------------------------------------------------------------------------------------------
PAPER_CONVENTIONAL_CODECS = [
    *(f"JPEG_Q{q}" for q in (1, 5, 25, 62)),
    *(f"JPEG2000_{w}_Q{q}" for w in ("mse", "visual") for q in (1, 3, 6, 8)),
    *(f"HEVC_QP{qp}" for qp in (41, 35, 26, 19)),
]


#: Thesis ch. 5 decoded anchors (pipeline B1, "decode then crop"): every CompressAI zoo point of
#: Ballé 2018 (q1-8) and Cheng 2020 (q1-6), MSE and MS-SSIM, evaluated with ResNet50.
PAPER_B1_CODECS = [
    *(f"Balle2018_{m}_Q{q}" for m in ("mse", "msssim") for q in range(1, 9)),
    *(f"Cheng2020_{m}_Q{q}" for m in ("mse", "msssim") for q in range(1, 7)),
]


class EvalParams(_Strict):
    """LFW verification (stages ``eval_lfw_*`` and ``report``; thesis §5.8, §5.9.2, §6.4.1)."""

    # pipeline B2 (probe decoded, reference original): codecs per recogniser
    resnet50_decoded: Annotated[list[str], _codec_names] = Field(
        default_factory=lambda: [*PAPER_LEARNED_CODECS, *PAPER_CONVENTIONAL_CODECS]
    )
    dlib_decoded: Annotated[list[str], _codec_names] = Field(
        default_factory=lambda: [*PAPER_LEARNED_CODECS, *PAPER_CONVENTIONAL_CODECS],
        description="off-the-shelf dlib on decoded probes: the paper's points (no training needed)",
    )
    # pipeline C (latents of both images): learned codecs with a trained cResNet39
    cresnet39: Annotated[list[str], _hyperprior_codecs] = Field(default_factory=lambda: list(PAPER_LEARNED_CODECS))
    # pipeline B1 (thesis ch. 5, decode then crop): whole 250^2 images through a learned codec
    # (encode_lfw_full@<codec>, align_lfw_full@<codec>); the recogniser lists must be subsets of b1_codecs
    b1_codecs: Annotated[list[str], _learned_codecs] = Field(
        default_factory=lambda: list(PAPER_B1_CODECS), description="encode_lfw_full / align_lfw_full matrix"
    )
    resnet50_b1: Annotated[list[str], _learned_codecs] = Field(default_factory=lambda: list(PAPER_B1_CODECS))
    dlib_b1: Annotated[list[str], _learned_codecs] = Field(
        default_factory=lambda: list(PAPER_B1_CODECS), description="off-the-shelf dlib on B1 probes (no training)"
    )
    tar_rule: Literal["floor", "linear"] = Field("floor", description="TAR@FAR rule, see cdfv/evaluate/metrics.py")
    rate_denominator: Literal[224, 256] = Field(256, description="bpp over the 256^2 codec input or the 224^2 face")
    batch_size: int = Field(64, ge=1)
    device: str = Field("auto", pattern=_DEVICE)
    verify_shards: bool = Field(True, description="pipeline C: hash every LFW latent shard once against its index")
    bd_anchor: str = Field("ResNet50_Balle2018_mse", description="Fig. 4 line the BD deltas are relative to")
    bd_method: Literal["cubic", "pchip"] = "cubic"

    def b1_codec(self, name: str) -> str:
        """``name`` if pipeline B1 runs it (listed in ``b1_codecs``), else a :class:`ParamsError`."""
        if name not in self.b1_codecs:
            raise ParamsError(
                f"codec {name!r} is not listed in eval.b1_codecs (pipeline B1); listed: {self.b1_codecs or 'none'}"
            )
        return name

    @model_validator(mode="after")
    def _b1_subsets(self) -> EvalParams:
        for key in ("resnet50_b1", "dlib_b1"):
            extra = [c for c in getattr(self, key) if c not in self.b1_codecs]
            if extra:
                raise ValueError(f"{key}: {extra} not in eval.b1_codecs (add them there so encode_lfw_full runs)")
        return self


# --------------------------------------------------------------------------------------------
# Public pretrained weights (fetched like LFW; identified by their sha256 so a new file reruns the
# stages that list its key)
# --------------------------------------------------------------------------------------------
class WeightsEntry(_Strict):
    """One public weights file: where to get it and its sha256 (full, a prefix, or null)."""

    url: str = Field(description="http(s):// URL, file:// URL or local path")
    sha256: str | None = Field(
        None,
        description="full sha256, or a prefix of >= 8 hex digits (torch.hub file names carry 8); null = "
        "the full sha256 is recorded in the cache on first download and every later use must match it",
    )

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex(cls, v: Any) -> Any:
        if isinstance(v, int | float):
            raise ValueError(f"quote the hex digits ({v!r} -> '...'): YAML reads a digits-only value as a number")
        if v is not None and not re.fullmatch(r"[0-9a-f]{8,64}", str(v)):
            raise ValueError("must be 8 to 64 lowercase hex digits (a sha256 or a prefix of it) or null")
        return v


class WeightsParams(_Strict):
    """``weights:``: public pretrained weights. A stage lists the key of each file it reads.

    ``codecs`` is keyed by codec family (``encode_lfw@<codec>`` reads ``weights.codecs.<family>``, null =
    the family needs no weights); ``codecs.learned`` by codec name (the CompressAI zoo checkpoints).
    """

    retinaface: WeightsEntry | None = Field(None, description="the paper's detector (retina-face, PyTorch)")
    facenet_vggface2: WeightsEntry | None = Field(
        None, description="facenet-pytorch InceptionResnetV1 pretrained on VGGFace2 (Li et al. TFQI)"
    )
    codecs: dict[Family, dict[str, WeightsEntry] | None] = Field(default_factory=dict)

    @field_validator("codecs")
    @classmethod
    def _learned_names(cls, v: dict[str, dict[str, WeightsEntry] | None]) -> dict[str, dict[str, WeightsEntry] | None]:
        for family, entries in v.items():
            for name in entries or {}:
                if parse_codec_name(name).family != family:
                    raise ValueError(f"{family}.{name}: not a {family} codec")
        return v


def learned_codecs_used(p: Any) -> dict[str, str]:
    """Every learned codec a stage runs with its weights -> the params list that names it."""
    used: dict[str, str] = {}
    lists = {
        "codecs": [n for n, e in p.codecs.items() if e.family == "learned"],
        "eval.b1_codecs": p.eval.b1_codecs,
        "train.cresnet39.codecs": p.train.cresnet39.codecs,
        "train.cresnet39.online_codecs": p.train.cresnet39.online_codecs,
        "complexity.codecs": p.complexity.codecs,
    }
    for where, names in lists.items():
        for n in names:
            used.setdefault(n, where)
    return used


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------
def _fmt_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid parameters in {source}:"]
    for e in err.errors():
        lines.append(f"  {_fmt_loc(e['loc'])}: {e['msg']}")
    lines.append("Fix the key(s) above in params.yaml (unknown keys are rejected to catch typos).")
    return "\n".join(lines)


class Params(_Strict):
    """Root of ``params.yaml``. Sections are optional so partial files validate for tests."""

    seed: int = 2023
    cache_dir: str = Field("~/.cache/cdfv", description="downloads cache; $CDFV_CACHE overrides")
    lfw: LfwParams | None = None
    vggface2: VggFace2Params | None = None
    detect: DetectParams = DetectParams()
    align: AlignParams = AlignParams()
    codecs: Annotated[dict[str, CodecEntry], AfterValidator(_validate_codecs)] = Field(
        default_factory=dict, description="codec x quality points keyed by the paper's name (encode_lfw@<name>)"
    )
    encode: EncodeParams = EncodeParams()
    train: TrainParams = TrainParams()
    complexity: ComplexityParams = ComplexityParams()
    eval: EvalParams = EvalParams()
    weights: WeightsParams | None = None

    @model_validator(mode="after")
    def _enough_variants(self) -> Params:
        c, k = self.train.cresnet39, self.encode.vggface2.variants
        if c.codecs and k < c.epochs + 1:
            raise ValueError(
                f"encode.vggface2.variants: {k} latents per image (centre crop + {k - 1} random) but cResNet39 trains "
                f"{c.phase1.epochs} + {c.phase2.epochs} epochs on shards (train.cresnet39.codecs), each drawing a "
                f"different random variant; set encode.vggface2.variants >= {c.epochs + 1}, or train those codecs "
                "online (train.cresnet39.online_codecs)"
            )
        return self

    @model_validator(mode="after")
    def _weights_listed(self) -> Params:
        """DVC reads ``weights.codecs.<family>`` / ``weights.codecs.learned.<codec>`` from params.yaml for the
        stages that run a codec: each must be spelled out (null for a family without weights)."""
        if self.weights is None:
            return self
        missing = sorted(
            {f"weights.codecs.{e.family}" for e in self.codecs.values()}
            - {f"weights.codecs.{f}" for f in self.weights.codecs}
        )
        learned = self.weights.codecs.get("learned") or {}
        missing += [
            f"weights.codecs.learned.{n} (used by {where})"
            for n, where in learned_codecs_used(self).items()
            if n not in learned
        ]
        if missing:
            raise ValueError(
                f"missing {', '.join(missing)}: every codec family in codecs: needs a weights.codecs.<family> entry "
                "(null = no weights) and every learned codec a stage runs its weights.codecs.learned.<codec> "
                "entry (url + sha256), because the stages list those keys"
            )
        return self

    def require(self, section: str) -> Any:
        value = getattr(self, section)
        if value is None:
            raise ParamsError(f"params.yaml has no '{section}:' section, which this stage needs")
        return value

    @property
    def cache_path(self) -> Path:
        return Path(os.environ.get("CDFV_CACHE", self.cache_dir)).expanduser()


def parse_params(data: dict[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; raise :class:`ParamsError` naming every bad key path."""
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(format_validation_error(err, source)) from None


def load_params(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> Params:
    """Read and validate ``params.yaml`` (default: the one in the working directory)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found. Run from the repository root or pass --params PATH.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(data, str(path))


REPLACE_KEY = "__replace__"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (profiles such as smoke).

    A mapping in ``override`` holding ``__replace__: true`` replaces the base mapping instead of
    merging into it (e.g. the smoke profile's shorter ``codecs:`` list); the marker is dropped.
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and value.get(REPLACE_KEY) is True:
            out[key] = {k: v for k, v in value.items() if k != REPLACE_KEY}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
