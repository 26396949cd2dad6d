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


class MtcnnParams(_Strict):
    """MTCNN (facenet-pytorch, weights bundled: offline) — Bian et al.'s detector; stage ``detect_lfw_mtcnn``."""

    # O-Net probabilities: the walk-down of the centre heuristic (its lowest value is O-Net's threshold)
    thresholds: ThresholdSchedule = ThresholdSchedule(start=0.995, stop=0.7, step=0.005)
    stage_thresholds: tuple[float, float] = Field(
        (0.6, 0.7), description="P-Net and R-Net thresholds (facenet-pytorch defaults)"
    )
    min_face_size: int = Field(20, ge=8, description="pixels; sets the smallest pyramid scale")
    factor: float = Field(0.709, gt=0, lt=1, description="image-pyramid scale step")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    batch_size: int = Field(16, ge=1, description="equal-size images per cascade call")

    @field_validator("stage_thresholds")
    @classmethod
    def _unit(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 < t < 1 for t in v):
            raise ValueError("P-Net / R-Net thresholds must lie in (0, 1)")
        return v


class DetectParams(_Strict):
    """Detection + centre heuristic (thesis §5.4)."""

    backend: Literal["retinaface", "dlib", "mtcnn"] = "retinaface"
    thresholds: ThresholdSchedule = ThresholdSchedule()
    fallback: Literal["whole_image", "centre_crop"] = "whole_image"
    fallback_fraction: float = Field(0.6, gt=0, le=1, description="centre_crop: side as a fraction of min(W, H)")
    retinaface: RetinaFaceParams = RetinaFaceParams()
    dlib: DlibDetectParams = DlibDetectParams()
    mtcnn: MtcnnParams = MtcnnParams()
    chunk_size: int = Field(64, ge=1, description="images per task / progress update")


#: 5-point alignment templates (x, y in output pixels; subject's right eye, left eye, nose, right and
#: left mouth corner). ``sphereface_96x112``: the SphereFace / CosFace reference of the 96x112 crops Bian
#: et al. evaluate on; ``arcface_112x112``: the same points shifted 8 px right (insightface's 112x112
#: template, the alignment of the pre-aligned VGGFace2 / MS1M releases); ``facenet_160x160``: the
#: 112x112 template scaled by 160/112 (insightface's rule for other sizes), for 160x160 crops.
REFERENCE_SETS: dict[str, dict[str, Any]] = {
    "sphereface_96x112": {
        "width": 96,
        "height": 112,
        "points": [
            (30.2946, 51.6963),
            (65.5318, 51.5014),
            (48.0252, 71.7366),
            (33.5493, 92.3655),
            (62.7299, 92.2041),
        ],
    },
    "arcface_112x112": {
        "width": 112,
        "height": 112,
        "points": [
            (38.2946, 51.6963),
            (73.5318, 51.5014),
            (56.0252, 71.7366),
            (41.5493, 92.3655),
            (70.7299, 92.2041),
        ],
    },
    "facenet_160x160": {
        "width": 160,
        "height": 160,
        "points": [
            (38.2946 * 160 / 112, 51.6963 * 160 / 112),
            (73.5318 * 160 / 112, 51.5014 * 160 / 112),
            (56.0252 * 160 / 112, 71.7366 * 160 / 112),
            (41.5493 * 160 / 112, 92.3655 * 160 / 112),
            (70.7299 * 160 / 112, 92.2041 * 160 / 112),
        ],
    },
}


class ReferenceSet(_Strict):
    """A 5-point template for the similarity-transform alignment and the size of the aligned face."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    points: list[tuple[float, float]] = Field(description="5 (x, y): right eye, left eye, nose, mouth right, left")

    @model_validator(mode="after")
    def _valid(self) -> ReferenceSet:
        if len(self.points) != 5:
            raise ValueError(f"points: need 5 landmarks, got {len(self.points)}")
        for x, y in self.points:
            if not (0 <= x < self.width and 0 <= y < self.height):
                raise ValueError(f"point ({x}, {y}) outside the {self.width}x{self.height} face")
        if not self.points[0][0] < self.points[1][0]:
            raise ValueError("the subject's right eye (first point) must lie left of the left eye (second)")
        return self


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
    # similarity-transform alignment of MTCNN landmarks (cdfv/align/similarity.py; stage align_lfw_mtcnn@<set>)
    references: dict[str, ReferenceSet] = Field(
        default_factory=lambda: {k: ReferenceSet(**v) for k, v in REFERENCE_SETS.items()},
        description="named 5-point templates (project landmark order) and their output size",
    )
    mtcnn_sets: list[str] = Field(
        default_factory=lambda: ["sphereface_96x112"], description="align_lfw_mtcnn@<set> matrix (keys of references)"
    )

    @model_validator(mode="after")
    def _sets_known(self) -> AlignParams:
        unknown = [n for n in self.mtcnn_sets if n not in self.references]
        if unknown:
            raise ValueError(f"mtcnn_sets {unknown} not in align.references ({sorted(self.references)})")
        if len(set(self.mtcnn_sets)) != len(self.mtcnn_sets):
            raise ValueError("mtcnn_sets: duplicate names")
        return self


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
        if entry.target_bpp is not None and spec.ratio is not None:
            raise ValueError(f"{name}: the name fixes the compression ratio (24/{spec.ratio} bpp); drop target_bpp")
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
# Joint texture + deep-feature coding with TFQI bit allocation (Li et al. 2019)
# --------------------------------------------------------------------------------------------
def _qp_grid(qps: list[int]) -> list[int]:
    """A QP grid: HEVC QPs 0..51, each once, ascending (stage names ``tfqi_*@<QP>``)."""
    if not qps:
        raise ValueError("needs at least one QP")
    bad = [q for q in qps if not 0 <= q <= 51]
    if bad:
        raise ValueError(f"QPs {bad} outside the HEVC range 0..51")
    if len(set(qps)) != len(qps):
        raise ValueError("duplicate QPs")
    if qps != sorted(qps):
        raise ValueError("list the QPs in ascending order")
    return qps


_QpGrid = Annotated[list[int], AfterValidator(_qp_grid)]


class TfqiFacesParams(_Strict):
    """``tfqi_faces``: the 160x160 face crops both streams code (Li et al. §IV-A: MTCNN, 160x160), made from
    the MTCNN detections of ``detect_lfw_mtcnn``."""

    crop: Literal["box", "similarity"] = Field(
        "box",
        description="box: the MTCNN box + margin resized (the paper: 'cropped and resized by MTCNN') | "
        "similarity: the 5 landmarks warped onto align.references[reference]",
    )
    size: int = Field(160, gt=0, description="crop side (paper: 160, FaceNet's input); similarity: = the template's")
    margin: int = Field(
        32, ge=0, description="box crop: pixels of the output crop added around the detection box (FaceNet: 32)"
    )
    reference: str = Field("facenet_160x160", description="similarity crop: key of align.references (square, size)")
    interpolation: Literal["nearest", "bilinear", "bicubic", "area", "lanczos"] = Field(
        "area", description="resampling of the crop"
    )

    @model_validator(mode="after")
    def _margin(self) -> TfqiFacesParams:
        if self.margin >= self.size:
            raise ValueError(f"margin {self.margin} must be smaller than size {self.size}")
        return self


class TfqiFeatureParams(_Strict):
    """The deep feature stream (Li et al. §II): embedding of the lossless crop, L2-normalised,
    scalar-quantised with Q_step = 2^((QP2 - 4)/6 - 10), l = floor(c / Q_step), range-coded."""

    extractor: Literal["facenet", "dlib"] = Field(
        "facenet", description="facenet (the paper's; facenet-pytorch InceptionResnetV1, weights file) | dlib (offline)"
    )
    facenet_weights: str | None = Field(
        None,
        description="InceptionResnetV1 VGGFace2 state dict; null = $TORCH_HOME/checkpoints/20180402-114759-vggface2.pt",
    )
    qps: _QpGrid = Field(
        default_factory=lambda: [4, 10, 16, 22, 27, 32, 37, 42, 47, 51],
        description="QP2 grid: one tfqi_feature@<QP> stage each",
    )
    device: str = Field("auto", pattern=_DEVICE)
    batch_size: int = Field(32, ge=1, description="crops per embedding batch")


class TfqiFitParams(_Strict):
    """``tfqi_fit``: scipy ``curve_fit`` of D_t = a1 e^(b1 R_t) and D_f = a2 e^(b2 R_f) + c2 e^(d2 R_f)."""

    maxfev: int = Field(20000, ge=100, description="curve_fit function evaluations")


class TfqiParams(_Strict):
    """Li et al. 2019 (stages ``tfqi_faces``, ``tfqi_embed``, ``tfqi_texture@<QP1>``, ``tfqi_feature@<QP2>``,
    ``tfqi_fit``, ``tfqi_allocate``, ``tfqi_report``): TFQI = -log10(w1 D1 + w2 D2), w2 = 1 - w1."""

    faces: TfqiFacesParams = TfqiFacesParams()
    texture_qps: _QpGrid = Field(
        default_factory=lambda: [22, 27, 32, 37, 42, 47, 51],
        description="QP1 grid (paper §IV-A): one tfqi_texture@<QP> stage each, HEVC intra (encode.hevc)",
    )
    feature: TfqiFeatureParams = TfqiFeatureParams()
    w1: list[float] = Field(
        default_factory=lambda: [0.001, 0.01, 0.1],
        description="texture weights w1 in (0, 1); w2 = 1 - w1. The first is the one of the declared metrics/plots",
    )
    n_budgets: int = Field(
        12, ge=1, description="rate budgets R_c log-spaced over the joint scheme's rate range (grid min to max)"
    )
    budgets: list[float] = Field(
        default_factory=list, description="extra rate budgets R_c (bpp over the crop) beside the log-spaced ones"
    )
    fit: TfqiFitParams = TfqiFitParams()

    @field_validator("w1")
    @classmethod
    def _weights(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("needs at least one weight")
        bad = [w for w in v if not 0.0 < w < 1.0]
        if bad:
            raise ValueError(f"weights {bad} outside (0, 1): w1 + w2 = 1 with both > 0")
        if len(set(v)) != len(v):
            raise ValueError("duplicate weights")
        return v

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list[float]) -> list[float]:
        bad = [b for b in v if not b > 0]
        if bad:
            raise ValueError(f"budgets {bad} must be > 0 bpp")
        return v


# Bian et al. 2019: CompNet -> PNG -> RecNet -> sphere20 (docs/bian.md)
# --------------------------------------------------------------------------------------------
class BianIdentities(_Strict):
    """Training identities (paper: CASIA-WebFace, MTCNN 112x96). ``auto`` = CASIA when ``casia_root`` holds
    identity folders, else the ingested VGGFace2 (its 112x112 faces re-aligned to the template)."""

    source: Literal["auto", "casia", "vggface2"] = "auto"
    casia_root: str = Field("data/raw/casia-webface", description="identity folders <id>/<image> (any tree alike)")
    vggface2_template: str = Field(
        "arcface_112x112", description="template the ingested VGGFace2 faces are aligned to (align.references key)"
    )
    max_identities: int | None = Field(None, ge=2, description="CASIA subsample for quick runs")
    max_images_per_identity: int | None = Field(None, ge=1)


class BianNetParams(_Strict):
    """CompNet / RecNet widths (Bian et al. Fig. 5 gives no numbers: documented choices)."""

    width: int = Field(64, ge=1, description="feature channels of every conv / residual block")
    kernel: int = Field(3, ge=1, description="kernel of the stride-1 convs and residual blocks (odd)")
    down_kernel: int = Field(4, ge=2, description="kernel of the stride-2 convs / x2 transposed convs")
    blocks: int = Field(1, ge=0, description="residual blocks between consecutive (de)convolutions")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout inside each residual block (Fig. 6b)")

    @field_validator("kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("must be odd (same padding)")
        return v


class BianStep(_Strict):
    """One training step of §2: SGD, lr decayed geometrically from ``lr`` to ``lr_end`` over the run."""

    epochs: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    lr_end: float = Field(gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)


class BianTrainParams(_Strict):
    """The three training stages (bian_pretrain@C, bian_sphere20, bian_joint@C)."""

    device: str = Field("auto", pattern=_DEVICE)
    workers: int = Field(4, ge=0)
    amp: bool = Field(True, description="bf16 autocast on CUDA; CosFace loss and MSE always fp32")
    seed: int = 2023
    checkpoint_every: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    flip: bool = Field(True, description="random horizontal flip of training faces (SphereFace/CosFace practice)")
    quantise: Literal["ste", "none"] = Field(
        "ste", description="rounding in training: straight-through (ste) or skipped (none, the paper's §2.2.2)"
    )
    # §2.2.3: MSE, SGD batch 20, 40 epochs, fixed lr 1e-4
    codec: BianStep = BianStep(epochs=40, batch_size=20, lr=1e-4, lr_end=1e-4)
    # §2.3 imports a CASIA-trained CosFace sphere20 (99.28 %) and retrains its classifier (batch 100,
    # lr 0.1 -> 1e-7, 6 epochs); no such weights offline: sphere20 is trained here end to end
    sphere20: BianStep = BianStep(epochs=30, batch_size=100, lr=0.1, lr_end=1e-4, weight_decay=5e-4)
    # §2.4: CompNet -> RecNet -> sphere20 -> LMCL only, SGD batch 100, lr 0.01 -> 1e-5, 40 epochs
    joint: BianStep = BianStep(epochs=40, batch_size=100, lr=0.01, lr_end=1e-5, weight_decay=5e-4)
    joint_trains_recogniser: bool = Field(True, description="sphere20 trains in the joint step too (§2.4)")


class CosFaceParams(_Strict):
    """LMCL (CosFace, Wang et al. 2018): pytorch-metric-learning ``CosFaceLoss``; paper s = 64, m = 0.35."""

    scale: float = Field(64.0, gt=0)
    margin: float = Field(0.35, ge=0, lt=1)


class BianParams(_Strict):
    """Bian et al. 2019 (stages bian_*, eval_lfw_bian_*, report_bian; docs/bian.md)."""

    reference: str = Field("sphereface_96x112", description="align.references set of the faces (112x96)")
    identities: BianIdentities = BianIdentities()
    channels: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4], description="C of the compact map: one CompNet per value (rate sweep)"
    )
    table_channels: int = Field(3, ge=1, description="the Table-1 model's C (must be in channels)")
    compnet: BianNetParams = BianNetParams()
    recnet: BianNetParams = BianNetParams()
    embedding: int = Field(512, ge=2, description="sphere20 feature size (CosFace: 512)")
    cosface: CosFaceParams = CosFaceParams()
    png_level: int = Field(9, ge=0, le=9, description="zlib level of the PNG files (rate = their bytes)")
    train: BianTrainParams = BianTrainParams()
    # decoded faces for Table 1 and the curves (eval_lfw_bian_codec@<codec>), through cdfv/encode/loop.py
    codecs: Annotated[list[str], _codec_names] = Field(
        default_factory=lambda: [
            "JPEG_Q1",
            "JPEG_Q5",
            "JPEG_Q10",
            "JPEG2000_mse_R48",
            "JPEG2000_mse_R64",
            "JPEG2000_mse_R88",
            "JPEG2000_mse_R134",
            "JPEG2000_mse_R200",
            "HEVC_QP51",
            "HEVC_QP46",
            "HEVC_QP41",
            "Balle2018_mse_Q1",
            "Balle2018_mse_Q2",
            "Balle2018_mse_Q3",
        ]
    )
    eval_flip: bool = Field(True, description="embedding = features of the face and its mirror, concatenated")
    batch_size: int = Field(128, ge=1, description="faces per coding / embedding batch")
    device: str = Field("auto", pattern=_DEVICE)
    bd_method: Literal["cubic", "pchip"] = "pchip"

    @model_validator(mode="after")
    def _consistent(self) -> BianParams:
        if any(c < 1 for c in self.channels) or len(set(self.channels)) != len(self.channels):
            raise ValueError("channels: distinct integers >= 1")
        if self.table_channels not in self.channels:
            raise ValueError(f"table_channels {self.table_channels} must be one of channels {self.channels}")
        return self


class XiaoSplitParams(_Strict):
    """Identity-disjoint LFW split of Xiao et al. 2023 (§4 Table 1; stage ``xiao_split``)."""

    seed: int = 2023
    test_fraction: float = Field(0.3, gt=0, lt=1, description="share of LFW images on the test side (≈4k of 13k)")


XIAO_CODEC_NAME = re.compile(r"Xiao_(L2|MSSSIM)_(REC|IP|IPR)_Q([1-8])")


class CodecTrainingEntry(_Strict):
    """One learned codec trained here (Xiao et al. 2023 §3; stage ``train_codec@<name>``)."""

    architecture: Literal["bmshj2018-hyperprior"] = "bmshj2018-hyperprior"
    quality: int = Field(ge=1, le=8, description="(N, M) as CompressAI's zoo: (128, 192) for 1-5, (192, 320) 6-8")
    lmbda: float = Field(gt=0, description="λ multiplying L_rate (bits per pixel)")
    distortion: Literal["mse", "ms-ssim"] = "mse"
    variant: Literal["REC", "IP", "IPR"] = "REC"
    lambda_id: float = Field(0.0, ge=0, description="λ_id multiplying L_id = 1 - cos(R(A(x)), R(A(x_hat)))")
    recogniser: Literal["resnet50"] = Field("resnet50", description="frozen R: the phase-2 ResNet50 trained here")
    data: list[Literal["lfw_train", "vggface2"]] = Field(
        default_factory=lambda: ["lfw_train"], description="LFW train split (250² padded to 256), VGGFace2 faces"
    )
    init: str | None = Field(None, description="another codec_training entry to start from (IP/IPR from REC)")
    steps: int = Field(ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-4, gt=0)
    aux_lr: float = Field(1e-3, gt=0, description="Adam on the entropy bottleneck's quantile (aux) loss")
    crop: int = Field(256, ge=64, description="random square crop side; a multiple of 64")
    clip_max_norm: float = Field(1.0, ge=0, description="0 = no gradient clipping")
    seed: int = 2023

    @property
    def channels(self) -> tuple[int, int]:
        """(N, M) of CompressAI's ``bmshj2018_hyperprior`` at this quality."""
        return (128, 192) if self.quality <= 5 else (192, 320)

    @model_validator(mode="after")
    def _consistent(self) -> CodecTrainingEntry:
        if self.crop % 64:
            raise ValueError(f"crop {self.crop}: the hyperprior needs sides divisible by 64")
        if (self.variant == "REC") != (self.lambda_id == 0):
            raise ValueError(f"variant {self.variant}: lambda_id must be {'0' if self.variant == 'REC' else '> 0'}")
        return self


def _validate_codec_training(v: dict[str, CodecTrainingEntry]) -> dict[str, CodecTrainingEntry]:
    for name, e in v.items():
        m = XIAO_CODEC_NAME.fullmatch(name)
        if m is None:
            raise ValueError(f"{name}: name a trained codec Xiao_<L2|MSSSIM>_<REC|IP|IPR>_Q<1-8>")
        want = ({"L2": "mse", "MSSSIM": "ms-ssim"}[m[1]], m[2], int(m[3]))
        if (e.distortion, e.variant, e.quality) != want:
            raise ValueError(
                f"{name}: the name says distortion/variant/quality {want}, the entry has "
                f"{(e.distortion, e.variant, e.quality)}"
            )
        seen = [name]
        while (init := v[seen[-1]].init) is not None:
            if init not in v:
                raise ValueError(f"{seen[-1]}.init: {init!r} is not a codec_training entry ({sorted(v)})")
            if init in seen:
                raise ValueError(f"{name}: init cycle {' -> '.join([*seen, init])}")
            if v[init].quality != v[seen[-1]].quality:
                raise ValueError(f"{seen[-1]}.init: {init} has another quality (architecture size)")
            seen.append(init)
    return v


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


class XiaoParams(_Strict):
    """Xiao et al. (2023) gallery protocol (stages ``eval_gallery@<model>``): FRR at fixed FAR on LFW."""

    gallery_per_identity: int = Field(1, ge=1, description="first n images (by name) of each identity enrol (LFW: 1)")
    far_targets: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.01, 0.001], min_length=1, description="FRR read at these FARs (paper: 1 %)"
    )
    models: list[str] = Field(
        default_factory=list,
        description="solutions <Recogniser>_<codec> whose eval_lfw_* embeddings are scored on all identities",
    )
    test_models: list[str] = Field(
        default_factory=list,
        description="solutions whose codec trained on LFW identities: only data/xiao/split.json's test identities",
    )

    @field_validator("models", "test_models")
    @classmethod
    def _solutions(cls, v: list[str]) -> list[str]:
        from cdfv.evaluate.solutions import parse_solution

        for m in v:
            parse_solution(m)
        return v


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
    tfqi: TfqiParams = TfqiParams()
    bian: BianParams = BianParams()
    xiao: XiaoParams = XiaoParams()
    weights: WeightsParams | None = None
    xiao_split: XiaoSplitParams = XiaoSplitParams()
    codec_training: Annotated[dict[str, CodecTrainingEntry], AfterValidator(_validate_codec_training)] = Field(
        default_factory=dict, description="learned codecs trained here, keyed by codec name (train_codec@<name>)"
    )

    @model_validator(mode="after")
    def _tfqi_reference(self) -> Params:
        f = self.tfqi.faces
        if f.crop != "similarity":
            return self
        ref = self.align.references.get(f.reference)
        if ref is None:
            raise ValueError(
                f"tfqi.faces.reference: {f.reference!r} is not in align.references {sorted(self.align.references)}"
            )
        if (ref.width, ref.height) != (f.size, f.size):
            raise ValueError(
                f"tfqi.faces.reference {f.reference!r} is {ref.width}x{ref.height}, but tfqi.faces.size is {f.size}: "
                "the similarity crop is the template's size"
            )
        return self

    @model_validator(mode="after")
    def _bian_references(self) -> Params:
        b, refs = self.bian, self.align.references
        for key in (b.reference, b.identities.vggface2_template):
            if key not in refs:
                raise ValueError(f"bian: reference set {key!r} is not in align.references ({sorted(refs)})")
        ref = refs[b.reference]
        if ref.width % 8 or ref.height % 8:
            raise ValueError(
                f"bian.reference {b.reference}: CompNet needs sides divisible by 8, not {ref.width}x{ref.height}"
            )
        return self

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


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1's base-60 numbers: ``4:2:0`` is the string DVC meant.

    ``dvc exp run -S`` rewrites ``params.yaml`` with ruamel (YAML 1.2), which writes ``subsampling: 4:2:0``
    unquoted; YAML 1.1 would read that as the integer 14520.
    """


ParamsLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    """Parse params YAML as written by hand or by DVC (:class:`ParamsLoader`)."""
    return yaml.load(text, Loader=ParamsLoader)  # a SafeLoader: no arbitrary objects


def load_params(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> Params:
    """Read and validate ``params.yaml`` (default: the one in the working directory)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found. Run from the repository root or pass --params PATH.")
    try:
        data = read_yaml(path.read_text()) or {}
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
