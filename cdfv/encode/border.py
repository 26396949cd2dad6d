"""Black borders around codec inputs and their removal (thesis §5.4, §5.6, §6.2), pure numpy.

Codecs see images whose sides are multiples of 64 (CompressAI's constraint, kept for every codec so
rates compare): pipelines B2 and C pad the aligned 224^2 face by 16 px on every side (→ 256^2,
:func:`codec_input`); pipeline B1 pads the whole 250^2 image uniformly to the next multiple of 64
(→ 256^2, :func:`pad_to_multiple`). Decoded images are cropped back to the original window.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Learned codecs need H and W multiples of 64 (CompressAI; thesis §5.6).
CODEC_MULTIPLE = 64
#: Pipelines B2 / C: 224 + 2 x 16 = 256.
CODEC_PAD = 16

Pads = tuple[int, int, int, int]  # top, bottom, left, right


def uniform_pads(pad: int) -> Pads:
    """The same border ``pad`` on every side."""
    return pad, pad, pad, pad


def pad_to_multiple(height: int, width: int, multiple: int = CODEC_MULTIPLE) -> Pads:
    """Black border ``(top, bottom, left, right)`` bringing ``height x width`` to multiples of ``multiple``.

    Split uniformly over both sides (thesis §5.6); an odd pixel goes to the bottom/right.
    """
    if height <= 0 or width <= 0 or multiple <= 0:
        raise ValueError(f"bad size {height}x{width} / multiple {multiple}")
    dh = math.ceil(height / multiple) * multiple - height
    dw = math.ceil(width / multiple) * multiple - width
    return dh // 2, dh - dh // 2, dw // 2, dw - dw // 2


def pad_image(image: np.ndarray, pads: Pads) -> np.ndarray:
    """Add the black border ``pads`` (uint8 HxWx3)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected HxWx3, got {image.shape}")
    top, bottom, left, right = pads
    return cv2.copyMakeBorder(
        np.ascontiguousarray(image, dtype=np.uint8), top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )


def crop_padding(image: np.ndarray, pads: Pads) -> np.ndarray:
    """Inverse of :func:`pad_image`: the original ``H x W`` window of a padded (decoded) image."""
    top, bottom, left, right = pads
    h, w = image.shape[:2]
    if top + bottom >= h or left + right >= w:
        raise ValueError(f"cannot remove a {pads} border from a {h}x{w} image")
    return np.ascontiguousarray(image[top : h - bottom, left : w - right])


def codec_input(face224: np.ndarray, pad: int = CODEC_PAD) -> np.ndarray:
    """224x224 face → 256x256 uint8 with a ``pad``-px black border (codec input, multiple of 64)."""
    return pad_image(face224, uniform_pads(pad))


def strip_border(image: np.ndarray, pad: int = CODEC_PAD) -> np.ndarray:
    """Inverse of :func:`codec_input`: drop ``pad`` px on every side (256 → 224)."""
    if pad == 0:
        return image
    return crop_padding(image, uniform_pads(pad))
