"""Alignment maths (thesis §5.4): additive resize, symmetric pad, eye-line rotation, borders."""

from __future__ import annotations

import numpy as np
import pytest

from cdfv.align.geometry import additive_size, align_face, eye_angle, symmetric_pad, transform_points
from cdfv.align.views import centre_crop, random_crop, resize_square, vggface2_view
from cdfv.encode.border import codec_input, strip_border
from cdfv.io import encode_png
from cdfv.io import read_rgb as load_face
from cdfv.models.preprocess import VGGFACE2_MEAN_RGB, subtract_mean


def test_paper_constants() -> None:
    assert VGGFACE2_MEAN_RGB == (131.0912, 103.8827, 91.4953)


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((180, 120), (224, 164)),  # the spec's example
        ((120, 180), (164, 224)),
        ((224, 224), (224, 224)),
        ((250, 250), (224, 224)),  # whole-image fallback: m = -26
        ((300, 100), (224, 24)),
        ((100, 101), (223, 224)),
    ],
)
def test_additive_resize(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert additive_size(*hw) == expected


def test_additive_resize_keeps_degenerate_side_and_rejects_empty() -> None:
    assert additive_size(20, 400) == (1, 224)
    with pytest.raises(ValueError):
        additive_size(0, 10)


def test_symmetric_pad_is_exact() -> None:
    assert symmetric_pad(224, 164) == (0, 0, 30, 30)
    assert symmetric_pad(223, 224) == (0, 1, 0, 0)
    assert symmetric_pad(1, 224) == (111, 112, 0, 0)
    for h in range(1, 225, 7):
        t, b, left, right = symmetric_pad(h, 224)
        assert t + b + h == 224 and left == right == 0 and b - t in (0, 1)
    with pytest.raises(ValueError):
        symmetric_pad(225, 10)


def _face_image() -> tuple[np.ndarray, np.ndarray]:
    """A 250x250 image with distinct blobs at tilted eye positions."""
    img = np.full((250, 250, 3), 90, np.uint8)
    lm = np.array([[100.0, 100.0], [150.0, 120.0], [128.0, 140.0], [105.0, 170.0], [145.0, 185.0]])
    for (x, y), c in zip(lm, [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]):
        img[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4] = c
    return img, lm


def test_eye_angle_sign_and_value() -> None:
    assert eye_angle((0, 0), (10, 0)) == 0.0
    assert eye_angle((0, 0), (10, 10)) == pytest.approx(45.0)
    assert eye_angle((0, 10), (10, 0)) == pytest.approx(-45.0)


@pytest.mark.parametrize(
    ("right", "left", "expected"),
    [((10, 0), (0, 0), 0.0), ((10, 10), (0, 0), 45.0), ((10, 0), (0, 10), -45.0), ((0, 10), (0, 0), 90.0)],
)
def test_swapped_eyes_give_the_same_eye_line(right, left, expected) -> None:
    """A detector that swaps the eyes describes the same line: level it, never turn the face over."""
    assert eye_angle(right, left) == pytest.approx(expected)
    assert -90.0 < eye_angle(right, left) <= 90.0


def test_swapped_landmarks_do_not_rotate_the_face_upside_down() -> None:
    img, lm = _face_image()
    swapped = lm.copy()
    swapped[[0, 1]] = lm[[1, 0]]
    upright = align_face(img, (70, 60, 180, 210), lm)
    again = align_face(img, (70, 60, 180, 210), swapped)
    assert abs(again.angle - upright.angle) < 1e-9
    np.testing.assert_array_equal(again.image, upright.image)
    # the mapped nose stays below the eyes (y grows downwards)
    assert again.landmarks[2, 1] > max(again.landmarks[0, 1], again.landmarks[1, 1])


@pytest.mark.parametrize("box", [(70, 60, 180, 210), (60, 70, 200, 190), (0, 0, 250, 250)])
def test_aligned_face_levels_eyes_and_is_224(box: tuple[int, int, int, int]) -> None:
    img, lm = _face_image()
    a = align_face(img, box, lm)
    assert a.image.shape == (224, 224, 3) and a.image.dtype == np.uint8
    assert a.angle == pytest.approx(np.degrees(np.arctan2(20, 50)))
    # landmarks went through the same matrix: eye line horizontal, right eye on the image left
    assert a.landmarks[0, 1] == pytest.approx(a.landmarks[1, 1], abs=1e-9)
    assert a.landmarks[0, 0] < a.landmarks[1, 0]
    assert a.landmarks[2, 1] > a.landmarks[0, 1]  # nose below the eyes
    np.testing.assert_allclose(transform_points(a.matrix, lm), a.landmarks)
    # the pixels moved with the landmarks: the eye blob colours are where the matrix says
    for k, colour in [(0, (255, 0, 0)), (1, (0, 255, 0))]:
        x, y = np.round(a.landmarks[k]).astype(int)
        assert tuple(a.image[y, x]) == colour, f"landmark {k} at {(x, y)}"
    # pad offsets are exact: black border of the reported width, content inside it
    t, b, left, right = a.pad
    h, w = 224 - t - b, 224 - left - right
    assert max(h, w) == 224
    assert (h, w) == additive_size(box[3] - box[1], box[2] - box[0])
    if left:
        assert not a.image[:, :left].any() and not a.image[:, 224 - right :].any()
        assert a.image[:, left].any() and a.image[:, 223 - right].any()
    if t:
        assert not a.image[:t].any() and not a.image[224 - b :].any()


def test_no_landmarks_means_no_rotation_and_exact_resize() -> None:
    img = np.random.default_rng(0).integers(0, 256, (250, 250, 3), dtype=np.uint8)
    a = align_face(img, (0, 0, 224, 224))
    assert a.angle == 0.0 and a.pad == (0, 0, 0, 0) and a.landmarks is None
    np.testing.assert_array_equal(a.image, img[:224, :224])  # identity: crop only


def test_box_is_clipped_and_empty_box_rejected() -> None:
    img, lm = _face_image()
    a = align_face(img, (-20, -10, 120, 300), lm)
    assert a.image.shape == (224, 224, 3)
    with pytest.raises(ValueError, match="empty"):
        align_face(img, (100, 100, 100, 150))
    with pytest.raises(ValueError, match="uint8"):
        align_face(img.astype(np.float32), (0, 0, 10, 10))
    with pytest.raises(ValueError, match="interpolation"):
        align_face(img, (0, 0, 100, 100), interpolation="magic")


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic", "area", "lanczos"])
def test_interpolations_all_give_224(interp: str) -> None:
    img, lm = _face_image()
    assert align_face(img, (70, 60, 180, 210), lm, interpolation=interp).image.shape == (224, 224, 3)


def test_codec_border_roundtrip() -> None:
    face = np.random.default_rng(1).integers(1, 256, (224, 224, 3), dtype=np.uint8)
    c = codec_input(face)
    assert c.shape == (256, 256, 3) and c.dtype == np.uint8
    assert not c[:16].any() and not c[-16:].any() and not c[:, :16].any() and not c[:, -16:].any()
    np.testing.assert_array_equal(strip_border(c), face)
    assert codec_input(face, pad=0).shape == (224, 224, 3)


def test_load_face_roundtrip_and_mean(tmp_path) -> None:
    face = np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    p = tmp_path / "f.png"
    p.write_bytes(encode_png(face))
    np.testing.assert_array_equal(load_face(p), face)
    x = subtract_mean(face)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], face[0, 0].astype(np.float32) - np.float32(VGGFACE2_MEAN_RGB))


def test_vggface2_view_shapes_and_determinism() -> None:
    img = np.random.default_rng(3).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    assert resize_square(img, 256).shape == (256, 256, 3)
    assert centre_crop(resize_square(img, 256), 224).shape == (224, 224, 3)
    v1 = vggface2_view(img, np.random.default_rng(5))
    v2 = vggface2_view(img, np.random.default_rng(5))
    assert v1.shape == (224, 224, 3)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(vggface2_view(img), centre_crop(resize_square(img, 256), 224))
    # grey with p=1: all channels equal
    g = vggface2_view(img, np.random.default_rng(0), grey_p=1.0)
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    # crops cover every offset
    offs = {
        random_crop(np.arange(256 * 256 * 3).reshape(256, 256, 3), 224, np.random.default_rng(s))[0, 0, 0]
        for s in range(200)
    }
    assert len(offs) > 50
    with pytest.raises(ValueError):
        centre_crop(img, 224)
