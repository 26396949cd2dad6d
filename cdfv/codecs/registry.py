"""The codec registry: paper-style names -> :class:`~cdfv.codecs.base.Codec` objects that make real bitstreams.

>>> codec = get_codec("JPEG_Q25")
>>> data = codec.encode(rgb); rgb2 = codec.decode(data)

Heavy back ends are imported only when a codec of that family is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cdfv.codecs.base import Codec, CodecError
from cdfv.codecs.names import parse_codec_name

if TYPE_CHECKING:
    from cdfv.config import EncodeParams, Params


def get_codec(
    name: str, settings: EncodeParams | None = None, target_bpp: float | None = None, weights: Path | None = None
) -> Codec:
    """Build the codec ``name`` (e.g. ``HEVC_QP26``) with family settings from ``settings``.

    ``target_bpp`` applies to JPEG2000 only (default: the Ballé rate of its Q index); ``weights`` to
    pretrained learned codecs (the verified checkpoint, see :func:`codec_with_weights`).
    """
    from cdfv.config import EncodeParams

    spec = parse_codec_name(name)
    settings = settings or EncodeParams()
    if spec.family == "jpeg":
        from cdfv.codecs.jpeg import JpegCodec

        return JpegCodec(spec, settings.jpeg)
    if spec.family == "jpeg2000":
        from cdfv.codecs.jpeg2000 import Jpeg2000Codec

        return Jpeg2000Codec(spec, settings.jpeg2000, target_bpp)
    if target_bpp is not None:
        raise CodecError(f"{name}: target_bpp applies to JPEG2000 codecs only")
    if spec.family == "hevc":
        from cdfv.codecs.hevc import HevcCodec

        return HevcCodec(spec, settings.hevc)
    from cdfv.codecs.learned import LearnedCodec

    return LearnedCodec(spec, settings.learned, weights)


def codec_with_weights(name: str, params: Params, target_bpp: float | None = None) -> Codec:
    """The codec ``name`` with ``params.encode`` settings and, for a pretrained learned codec, its zoo
    checkpoint ``weights.codecs.learned.<name>`` (fetched on first use, verified on every use)."""
    weights = None
    if parse_codec_name(name).family == "learned":
        from cdfv.weights import codec_path

        weights = codec_path(params, name)
    return get_codec(name, params.encode, target_bpp, weights)


def codec_from_params(name: str, params: Params) -> Codec:
    """The codec ``name`` configured by ``params.yaml`` (must be listed under ``codecs:``)."""
    from cdfv.config import ParamsError

    entry = params.codecs.get(name)
    if entry is None:
        known = ", ".join(params.codecs) or "none"
        raise ParamsError(f"codec {name!r} is not listed under 'codecs:' in params.yaml (listed: {known})")
    return codec_with_weights(name, params, entry.target_bpp)
