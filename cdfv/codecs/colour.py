"""Exact, documented RGB <-> YCbCr conversion shared by the JPEG2000 'visual' and HEVC codecs.

ITU-T T.871 (JFIF) = BT.601 matrix, full range, 8-bit:
    Y  =       0.299 R + 0.587 G + 0.114 B
    Cb = 128 - 0.168736 R - 0.331264 G + 0.5 B
    Cr = 128 + 0.5 R - 0.418688 G - 0.081312 B
and its exact inverse. The same matrix as JPEG and the JPEG2000 ICT, so the three conventional
codecs see the same colour space. 4:2:0 chroma = mean of each 2x2 block (centre sited);
upsampling = bilinear at the matching (centre) phase (OpenCV ``INTER_LINEAR``).
"""

from __future__ import annotations

import cv2
import numpy as np

_M = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float64)
_MINV = np.linalg.inv(_M)
_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxWx3 float64 YCbCr (unrounded, 0..255 nominal)."""
    return rgb.astype(np.float64) @ _M.T + _OFFSET


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """HxWx3 float YCbCr -> HxWx3 uint8 RGB (rounded, clipped)."""
    rgb = (ycc.astype(np.float64) - _OFFSET) @ _MINV.T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def downsample420(plane: np.ndarray) -> np.ndarray:
    """Mean of 2x2 blocks (H and W must be even)."""
    h, w = plane.shape
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs even sizes, got {w}x{h}")
    return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def upsample420(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    return cv2.resize(plane.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
