"""Evaluated solutions, named as the paper names them (pure).

Grammar ``<Recogniser>_<codec name>`` or ``<Recogniser>_Original_Anchor``:

* ``ResNet50_Original_Anchor`` / ``Dlib_Original_Anchor`` — pipeline **A** (original faces).
* ``ResNet50_<codec>`` / ``Dlib_<codec>`` (e.g. ``ResNet50_JPEG_Q1``) — pipeline **B2**, decoded
  anchor: probe = decoded face of ``<codec>``, reference = original face.
* ``cResNet39_<learned codec>`` (e.g. ``cResNet39_Balle2018_mse_Q1``) — pipeline **C**, compressed
  domain: both images as entropy-decoded latents of ``<codec>``.
* ``ResNet50_B1_<learned codec>`` / ``Dlib_B1_<learned codec>`` (e.g. ``ResNet50_B1_Cheng2020_mse_Q3``)
  — pipeline **B1** (thesis ch. 5, decode then crop): the whole 250^2 probe image padded to 256,
  coded, decoded, cropped back, then aligned with the original's detection; reference original.

``Dlib`` is the off-the-shelf dlib ResNet (``face_recognition_models``, 128-d), no training needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cdfv.codecs.names import CodecNameError, parse_codec_name
from cdfv.errors import CdfvError

Pipeline = Literal["A", "B1", "B2", "C"]
RECOGNISERS = ("ResNet50", "cResNet39", "Dlib")
ORIGINAL = "Original_Anchor"
B1_TAG = "B1_"


class SolutionNameError(CdfvError, ValueError):
    """A model name outside the grammar above."""


@dataclass(frozen=True)
class Solution:
    name: str
    recogniser: str  # ResNet50 | cResNet39 | Dlib
    pipeline: Pipeline
    codec: str | None

    @property
    def series(self) -> str:
        """Line of Fig. 4 this point belongs to: name without the quality (``ResNet50_JPEG``)."""
        if self.codec is None:
            return self.name
        tag = B1_TAG if self.pipeline == "B1" else ""
        return f"{self.recogniser}_{tag}{parse_codec_name(self.codec).series}"


def parse_solution(name: str) -> Solution:
    """``"ResNet50_JPEG_Q1"`` -> Solution(recogniser="ResNet50", pipeline="B2", codec="JPEG_Q1")."""
    rec, _, rest = name.partition("_")
    if rec not in RECOGNISERS or not rest:
        raise SolutionNameError(
            f"model {name!r}: expected <Recogniser>_<codec> or <Recogniser>_{ORIGINAL} with Recogniser in {RECOGNISERS}"
        )
    if rest == ORIGINAL:
        if rec == "cResNet39":
            raise SolutionNameError(f"model {name!r}: cResNet39 works on latents, it has no original anchor")
        return Solution(name, rec, "A", None)
    b1 = rest.startswith(B1_TAG)
    if b1:
        rest = rest[len(B1_TAG) :]
    try:
        spec = parse_codec_name(rest)
    except CodecNameError as err:
        raise SolutionNameError(f"model {name!r}: {err}") from None
    if b1:
        if rec == "cResNet39" or spec.family != "learned":
            raise SolutionNameError(f"model {name!r}: B1 (decode then crop) takes ResNet50/Dlib and a learned codec")
        return Solution(name, rec, "B1", rest)
    if rec == "cResNet39":
        if spec.family != "learned":
            raise SolutionNameError(f"model {name!r}: cResNet39 needs a learned codec's latents, not {spec.family}")
        return Solution(name, rec, "C", rest)
    return Solution(name, rec, "B2", rest)
