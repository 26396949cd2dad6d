"""The bitstream of Bian et al. (§2.2.2): the quantised compact map stored as a lossless PNG.

A ``C x h x w`` uint8 map (eq. 1) becomes one PNG file, whose size in bytes is the rate:

* C = 1, 2, 3, 4: PNG's own colour types (grey, grey + alpha, RGB, RGBA), one sample per channel;
* C > 4 (PNG has no such colour type): the C planes stacked vertically in one ``(C*h) x w`` grey image.

Encoding is Pillow's PNG writer with zlib level ``bian.png_level`` (9 by default); decoding gives back
the exact samples (PNG is lossless) — :func:`decode_map` checks the shape against what the decoder
expects and fails naming the mismatch.
"""

from __future__ import annotations

import io

import numpy as np

from cdfv.errors import CdfvError


class MapPngError(CdfvError, ValueError):
    """A PNG that does not hold a compact map of the expected shape."""


def encode_map(q: np.ndarray, level: int = 9) -> bytes:
    """PNG bytes of a ``C x h x w`` uint8 map."""
    from PIL import Image

    q = np.asarray(q)
    if q.dtype != np.uint8 or q.ndim != 3:
        raise MapPngError(f"expected a C x h x w uint8 map, got {q.shape} {q.dtype}")
    c = q.shape[0]
    arr = q[0] if c == 1 else np.ascontiguousarray(q.transpose(1, 2, 0)) if c <= 4 else q.reshape(-1, q.shape[2])
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def decode_map(data: bytes, channels: int, height: int, width: int) -> np.ndarray:
    """The ``channels x height x width`` uint8 map stored by :func:`encode_map`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            arr = np.asarray(im)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise MapPngError(f"not a readable PNG ({err})") from None
    if channels == 1 or channels > 4:
        want = (height * channels, width) if channels > 4 else (height, width)
        if arr.shape != want:
            raise MapPngError(f"PNG holds {arr.shape}, expected {want} for a {channels}-channel map")
        return arr.reshape(channels, height, width).astype(np.uint8)
    if arr.shape != (height, width, channels):
        raise MapPngError(f"PNG holds {arr.shape}, expected {(height, width, channels)}")
    return np.ascontiguousarray(arr.transpose(2, 0, 1)).astype(np.uint8)
