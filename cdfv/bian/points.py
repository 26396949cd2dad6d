"""Names of the coded LFW sets of Bian et al. ("points") and the stages that make them (pure)."""

from __future__ import annotations

from cdfv.config import Params
from cdfv.errors import CdfvError

MODELS = ("pretrain", "joint")
ORIGINAL = "Original"


class BianError(CdfvError, RuntimeError):
    """A Bian stage cannot run as configured; the message says what to change."""


def compnet_point(channels: int, model: str) -> str:
    """Point name of a CompNet coding: ``CompNet_C3_joint``."""
    return f"CompNet_C{channels}_{model}"


def parse_point(point: str) -> tuple[str, int | None, str | None]:
    """``("original", None, None)``, ``("compnet", C, model)`` or ``("codec", None, name)``."""
    if point == ORIGINAL:
        return "original", None, None
    if point.startswith("CompNet_C"):
        c, _, model = point[len("CompNet_C") :].partition("_")
        if not c.isdigit() or model not in MODELS:
            raise BianError(f"point {point!r}: expected CompNet_C<channels>_<pretrain|joint>")
        return "compnet", int(c), model
    from cdfv.codecs.names import parse_codec_name

    parse_codec_name(point)
    return "codec", None, point


def configured_points(params: Params) -> list[str]:
    """Every point the params ask for (what ``report_bian`` reads)."""
    b = params.bian
    return [ORIGINAL, *(compnet_point(c, m) for c in b.channels for m in MODELS), *b.codecs]


def code_stage(point: str) -> str:
    """The dvc.yaml stage that codes ``point``."""
    kind, channels, model = parse_point(point)
    if kind == "original":
        return "bian_code_original"
    if kind == "compnet":
        return f"bian_code_compnet@{channels}-{model}"
    return f"bian_code_codec@{point}"
