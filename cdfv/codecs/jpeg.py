"""Baseline JPEG through Pillow (libjpeg-turbo), in process."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cdfv.codecs.base import Codec, CodecError, check_rgb
from cdfv.codecs.names import CodecSpec
from cdfv.config import JpegSettings
from cdfv.io import ImageReadError, read_rgb


class JpegCodec(Codec):
    """``JPEG_Q<q>``: Pillow ``quality=q``; chroma subsampling and Huffman optimisation from params.

    With the defaults (4:2:0, no optimisation) the bytes equal ``compressai.utils.bench``'s JPEG.
    """

    extension = ".jpg"

    def __init__(self, spec: CodecSpec, settings: JpegSettings | None = None) -> None:
        super().__init__(spec)
        self.settings = settings or JpegSettings()

    def encode(self, rgb: np.ndarray) -> bytes:
        rgb = check_rgb(rgb, self.name)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(
            buf,
            format="JPEG",
            quality=self.spec.quality,
            subsampling=self.settings.subsampling,
            optimize=self.settings.optimize,
        )
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        """JPEG bytes to RGB uint8: one decode and one copy (read_rgb's normalisation only when not RGB)."""
        try:
            with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
                if im.mode == "RGB":
                    return np.array(im)
        except (OSError, SyntaxError, ValueError) as err:
            raise CodecError(f"<{self.name} bitstream>: cannot decode JPEG ({err})") from None
        try:
            return read_rgb(data, name=f"<{self.name} bitstream>")
        except ImageReadError as err:
            raise CodecError(str(err)) from None
