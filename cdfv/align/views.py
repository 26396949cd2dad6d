"""Square views of pre-aligned training faces (thesis §5.5.2 / §6.3.2 augmentation), pure numpy.

VGGFace2's 112x112 release is already aligned: training resizes it to 256 (bilinear), takes a
224 crop (random for training, central for validation) and greys it with probability 0.2.
"""

from __future__ import annotations

import cv2
import numpy as np

from cdfv.align.geometry import FACE_SIZE, interpolation_flag


def resize_square(image: np.ndarray, size: int, interpolation: str = "bilinear") -> np.ndarray:
    """Resize to ``size x size`` (VGGFace2: 112 → 256, bilinear)."""
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=interpolation_flag(interpolation))


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Central ``size x size`` crop (top-left rounding down, as torchvision)."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"{h}x{w} is smaller than the {size} crop")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return image[top : top + size, left : left + size]


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random ``size x size`` crop."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"{h}x{w} is smaller than the {size} crop")
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return image[top : top + size, left : left + size]


def to_grayscale_rgb(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma replicated on 3 channels (torchvision ``Grayscale(3)``)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


def vggface2_view(
    image: np.ndarray,
    rng: np.random.Generator | None = None,
    resize: int = 256,
    crop: int = FACE_SIZE,
    grey_p: float = 0.2,
    interpolation: str = "bilinear",
) -> np.ndarray:
    """VGGFace2 training view: resize 112→256, random crop 224, grey with prob. ``grey_p``.

    With ``rng=None`` (evaluation) the crop is central and no greying is applied.
    """
    img = resize_square(image, resize, interpolation)
    if rng is None:
        return np.ascontiguousarray(centre_crop(img, crop))
    img = random_crop(img, crop, rng)
    if grey_p > 0 and rng.random() < grey_p:
        img = to_grayscale_rgb(np.ascontiguousarray(img))
    return np.ascontiguousarray(img)
