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
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
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
    def _order(self) -> "ThresholdSchedule":
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
    """The paper's detector (PyPI retina-face, PyTorch engine); weights never auto-downloaded."""

    weights: str | None = Field(
        None, description="path to retinaface.pth; null = $DEEPFACE_HOME/.deepface/weights or <cache_dir>/retinaface"
    )
    allow_upscaling: bool = True
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto = cuda when available")
    batch_size: int = Field(8, ge=1, description="images per network call (equal-size images only)")


class DetectParams(_Strict):
    """Detection + centre heuristic (thesis-spec §2)."""

    backend: Literal["retinaface", "dlib"] = "retinaface"
    thresholds: ThresholdSchedule = ThresholdSchedule()
    fallback: Literal["whole_image", "centre_crop"] = "whole_image"
    fallback_fraction: float = Field(0.6, gt=0, le=1, description="centre_crop: side as a fraction of min(W, H)")
    retinaface: RetinaFaceParams = RetinaFaceParams()
    dlib: DlibDetectParams = DlibDetectParams()
    chunk_size: int = Field(64, ge=1, description="images per task / progress update")


class AlignParams(_Strict):
    """Crop, rotate by the eye line, additive resize, pad (thesis-spec §3)."""

    size: int = Field(224, gt=0)
    codec_pad: int = Field(16, ge=0, description="black border added for codecs: 224 -> 256")
    interpolation: Literal["nearest", "bilinear", "bicubic", "area", "lanczos"] = "bilinear"
    rotate_interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] = Field(
        "bicubic", description="eye-line rotation (retina-face uses bicubic)"
    )
    contact_sheet: int = Field(16, ge=0, description="faces on the contact sheet; 0 = none")
    seed: int = 0


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


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (profiles such as smoke)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
