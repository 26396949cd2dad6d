"""Codec names as the paper spells them, parsed into a :class:`CodecSpec` (pure, no heavy imports).

Grammar (one codec x one quality point per name):

* ``JPEG_Q<quality>``                 quality 1..100 (paper: 1, 5, 25, 62)
* ``JPEG2000_<mse|visual>_Q<k>``      k = the Ballé quality whose rate it matches (paper: 1, 3, 6, 8)
* ``JPEG2000_<mse|visual>_R<ratio>``  compression ratio: raw 8-bit RGB bytes / codestream bytes, i.e.
                                      24 / ratio bits per coded pixel (Bian et al. Table 1: R88, R134)
* ``HEVC_QP<qp>``                     qp 0..51 (paper: 41, 35, 26, 19), chroma format ``encode.hevc.pix_fmt``
* ``HEVC_<444|420>_QP<qp>``           the same with the chroma format fixed by the name (4:4:4 points beside
                                      the 4:2:0 paper default form their own RD series, ``HEVC_444``)
* ``HEVC[_<444|420>]_CRF<k>``         k 0..51: x265 constant rate factor instead of constant QP (Xiao et
                                      al.'s HEVC baseline, CRF 23 = x265's default); its own RD series
* ``Balle2018_<mse|msssim>_Q<q>``     CompressAI ``bmshj2018-hyperprior``, q 1..8
* ``Cheng2020_<mse|msssim>_Q<q>``     CompressAI ``cheng2020-attn``, q 1..6
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from cdfv.errors import CdfvError

Family = Literal["jpeg", "jpeg2000", "hevc", "learned"]

#: Ballé-2018 MSE rates the JPEG2000 points are tuned to (thesis ch. 6, bits per 256^2 pixel).
JPEG2000_DEFAULT_TARGET_BPP: dict[int, float] = {1: 0.10, 3: 0.17, 6: 0.38, 8: 0.65}

#: CompressAI zoo architecture, quality range and latent channels N per quality (thesis §4).
LEARNED_MODELS: dict[str, tuple[str, range]] = {
    "Balle2018": ("bmshj2018-hyperprior", range(1, 9)),
    "Cheng2020": ("cheng2020-attn", range(1, 7)),
}


class CodecNameError(CdfvError, ValueError):
    """An unknown or malformed codec name."""


@dataclass(frozen=True)
class CodecSpec:
    """What a codec name means."""

    name: str
    family: Family
    quality: int  # JPEG quality, JPEG2000 matched Ballé quality, HEVC QP, or learned quality
    metric: str | None = None  # jpeg2000: "mse"|"visual"; learned: "mse"|"ms-ssim"
    architecture: str | None = None  # learned: CompressAI zoo name
    chroma: str | None = None  # hevc: "444" | "420" when the name fixes it, else the family setting
    ratio: int | None = None  # jpeg2000 ``_R<ratio>``: compression ratio over raw 8-bit RGB (quality = ratio)
    rate_control: Literal["qp", "crf"] | None = None  # hevc: constant QP (quality = QP) or CRF (quality = CRF)

    @property
    def series(self) -> str:
        """The rate-distortion curve this point belongs to (name without the quality)."""
        if self.rate_control == "crf":  # the CRF sweep is a curve of its own beside the QP one
            return re.sub(r"\d+$", "", self.name)
        return re.sub(r"_(QP|Q|R)\d+$", "", self.name)

    @property
    def has_latents(self) -> bool:
        """True when the entropy-decoded ŷ is a plain integer tensor, ``round(g_a(x))``.

        Only the zero-mean scale hyperprior (Ballé 2018) qualifies: Cheng 2020 codes ŷ - μ with
        predicted means, so its ŷ is not an integer tensor (thesis §5.2).
        """
        return self.architecture == "bmshj2018-hyperprior"

    @property
    def latent_channels(self) -> int | None:
        """N of the main latent ŷ (192/320 for Ballé, 128/192 for Cheng), None for conventional."""
        if self.architecture == "bmshj2018-hyperprior":
            return 192 if self.quality <= 5 else 320
        if self.architecture == "cheng2020-attn":
            return 128 if self.quality <= 3 else 192
        return None


_PATTERNS = [
    (re.compile(r"JPEG_Q(\d+)"), "jpeg"),
    (re.compile(r"JPEG2000_(mse|visual)_Q(\d+)"), "jpeg2000"),
    (re.compile(r"JPEG2000_(mse|visual)_R(\d+)"), "jpeg2000_ratio"),
    (re.compile(r"HEVC(?:_(444|420))?_QP(\d+)"), "hevc"),
    (re.compile(r"HEVC(?:_(444|420))?_CRF(\d+)"), "hevc_crf"),
    (re.compile(r"(Balle2018|Cheng2020)_(mse|msssim)_Q(\d+)"), "learned"),
]

EXAMPLES = (
    "JPEG_Q1, JPEG2000_mse_Q3, JPEG2000_mse_R88, JPEG2000_visual_Q6, HEVC_QP26, HEVC_444_QP26, HEVC_CRF23, "
    "Balle2018_mse_Q6, Cheng2020_msssim_Q3"
)


def parse_codec_name(name: str, family: Family | None = None) -> CodecSpec:
    """Parse a paper-style codec name; raise :class:`CodecNameError` naming valid forms.

    ``family`` restricts the accepted names (e.g. ``"learned"`` where a network needs ``g_a``).
    """
    spec = _parse(name)
    if family is not None and spec.family != family:
        raise CodecNameError(f"{name!r} is not a {family} codec (e.g. {_FAMILY_EXAMPLE[family]})")
    return spec


_FAMILY_EXAMPLE: dict[str, str] = {
    "jpeg": "JPEG_Q25",
    "jpeg2000": "JPEG2000_mse_Q3",
    "hevc": "HEVC_QP26",
    "learned": "Balle2018_mse_Q1 .. Q8",
}


def _parse(name: str) -> CodecSpec:
    for pattern, family in _PATTERNS:
        m = pattern.fullmatch(name)
        if not m:
            continue
        if family == "jpeg":
            q = int(m.group(1))
            _check(name, q, range(1, 101), "JPEG quality")
            return CodecSpec(name, "jpeg", q)
        if family == "jpeg2000":
            q = int(m.group(2))
            _check(name, q, range(1, 9), "JPEG2000 matched Ballé quality")
            return CodecSpec(name, "jpeg2000", q, metric=m.group(1))
        if family == "jpeg2000_ratio":
            r = int(m.group(2))
            _check(name, r, range(2, 10001), "JPEG2000 compression ratio")
            return CodecSpec(name, "jpeg2000", r, metric=m.group(1), ratio=r)
        if family == "hevc":
            q = int(m.group(2))
            _check(name, q, range(0, 52), "HEVC QP")
            return CodecSpec(name, "hevc", q, chroma=m.group(1), rate_control="qp")
        if family == "hevc_crf":
            k = int(m.group(2))
            _check(name, k, range(0, 52), "HEVC CRF")
            return CodecSpec(name, "hevc", k, chroma=m.group(1), rate_control="crf")
        arch, qualities = LEARNED_MODELS[m.group(1)]
        q = int(m.group(3))
        _check(name, q, qualities, f"{m.group(1)} quality")
        metric = "mse" if m.group(2) == "mse" else "ms-ssim"
        return CodecSpec(name, "learned", q, metric=metric, architecture=arch)
    raise CodecNameError(f"unknown codec name {name!r}; expected names like {EXAMPLES}")


def _check(name: str, value: int, allowed: range, what: str) -> None:
    if value not in allowed:
        raise CodecNameError(f"codec {name!r}: {what} {value} outside {allowed.start}..{allowed.stop - 1}")
