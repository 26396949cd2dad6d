"""The :class:`Codec` interface every codec family implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from cdfv.codecs.names import CodecSpec
from cdfv.errors import CdfvError


class CodecError(CdfvError, RuntimeError):
    """An encoder/decoder failure; the message names the codec (and the image when known)."""


class LatentCheckError(CdfvError, RuntimeError):
    """Entropy-decoded ŷ differs from ``round(g_a(x))`` (a codec or device defect, never retried).

    ``indices`` are the positions, within the encoded batch, of the images that disagree.
    """

    def __init__(self, message: str, indices: list[int]) -> None:
        super().__init__(message)
        self.indices = indices


def check_rgb(rgb: np.ndarray, codec: str) -> np.ndarray:
    """Validate an HxWx3 uint8 image (C-contiguous copy when needed)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        raise CodecError(f"{codec}: expected an HxWx3 uint8 RGB image, got {got}")
    return np.ascontiguousarray(rgb)


class Codec(abc.ABC):
    """Encode RGB uint8 images to real bitstream bytes and decode them back.

    ``rate_bytes(bitstream)`` is what bpp counts (the whole bitstream for conventional codecs;
    the y and z strings for learned codecs, paper eq. 7).
    """

    #: file extension of one stored bitstream
    extension: str = ".bin"

    def __init__(self, spec: CodecSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @abc.abstractmethod
    def encode(self, rgb: np.ndarray) -> bytes:
        """One image to one self-contained bitstream."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """One bitstream back to an HxWx3 uint8 image."""

    def encode_batch(self, images: Sequence[np.ndarray]) -> list[bytes]:
        """Many images (override when a family can amortise start-up, e.g. one ffmpeg process)."""
        return [self.encode(im) for im in images]

    def decode_batch(self, blobs: Sequence[bytes]) -> list[np.ndarray]:
        return [self.decode(b) for b in blobs]

    def rate_bytes(self, data: bytes) -> int:
        """Bytes counted by bpp."""
        return len(data)
