"""MTCNN on real LFW-mini bytes and the least-squares similarity alignment to the 96x112 template
(Bian et al. §3.2: MTCNN 112x96 faces)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cdfv.align.similarity import (
    align_to_reference,
    box_landmarks,
    realign,
    reference_points,
    similarity_matrix,
)
from cdfv.config import AlignParams, ParamsError, parse_params
from cdfv.detect import make_detector, schedule
from cdfv.detect.base import Detector
from cdfv.detect.heuristic import choose_face
from cdfv.io import read_rgb

pytest.importorskip("facenet_pytorch")

#: SphereFace / CosFace 96x112 reference points (x, y), as published with their alignment code.
SPHEREFACE = np.array(
    [[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]]
)


@pytest.fixture(scope="module")
def mtcnn() -> Detector:
    return make_detector(parse_params({"detect": {"backend": "mtcnn", "mtcnn": {"device": "cpu"}}}).detect)


@pytest.fixture(scope="module")
def lfw_mini(shared_dir: Path) -> list[np.ndarray]:
    files = sorted((shared_dir / "fixtures" / "lfw-mini" / "lfw").glob("*/*.jpg"))
    assert len(files) == 25
    return [read_rgb(f) for f in files]


@pytest.fixture(scope="module")
def detections(mtcnn: Detector, lfw_mini: list[np.ndarray]) -> list:  # type: ignore[type-arg]
    sched = schedule(parse_params({"detect": {"backend": "mtcnn"}}).detect)
    faces = mtcnn.detect_batch(lfw_mini, sched.stop)
    return [
        (img, f, choose_face(f, img.shape[1], img.shape[0], sched.start, sched.stop, sched.step))
        for img, f in zip(lfw_mini, faces)
    ]


def test_paper_reference_points_are_the_defaults() -> None:
    refs = AlignParams().references
    assert np.allclose(reference_points(refs["sphereface_96x112"]), SPHEREFACE)
    assert (refs["sphereface_96x112"].width, refs["sphereface_96x112"].height) == (96, 112)
    assert np.allclose(reference_points(refs["arcface_112x112"]), SPHEREFACE + [8.0, 0.0])
    assert np.allclose(reference_points(refs["facenet_160x160"]), (SPHEREFACE + [8.0, 0.0]) * 160 / 112, atol=1e-4)


def test_mtcnn_finds_the_centred_face_in_every_lfw_mini_image(mtcnn: Detector, detections: list) -> None:  # type: ignore[type-arg]
    assert mtcnn.forward_passes == 25  # one cascade pass per image, batched
    for img, faces, choice in detections:
        assert choice.status == "ok"
        f = faces[choice.index]
        h, w = img.shape[:2]
        x1, y1, x2, y2 = f.box
        assert x1 <= w / 2 <= x2 and y1 <= h / 2 <= y2
        assert abs((x1 + x2) / 2 - w / 2) < 0.15 * w and abs((y1 + y2) / 2 - h / 2) < 0.15 * h
        assert f.score >= 0.9
        re, le, nose, mr, ml = f.landmarks
        # project order: subject's right eye on the image's left; eyes above the nose above the mouth
        assert re[0] < le[0] and mr[0] < ml[0]
        assert max(re[1], le[1]) < nose[1] < min(mr[1], ml[1])
        assert x1 <= nose[0] <= x2 and y1 <= nose[1] <= y2


def test_similarity_is_the_least_squares_solution() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 250, (5, 2))
    dst = SPHEREFACE
    m = similarity_matrix(src, dst)
    # the definition restated: unknowns (a, b, tx, ty) of [[a, -b, tx], [b, a, ty]], 10 equations, lstsq
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    (a, b, tx, ty), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    assert np.allclose(m, [[a, -b, tx], [b, a, ty]], atol=1e-9)
    # an exact similarity is recovered exactly
    ang, s, t = np.radians(23.0), 2.7, np.array([40.0, -12.0])
    r = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    assert np.allclose(similarity_matrix(src, src @ r.T + t), np.hstack([r, t[:, None]]), atol=1e-9)


def _dot_centroids(img: np.ndarray, colours: np.ndarray) -> np.ndarray:
    out = []
    for c in colours:
        mask = (np.abs(img.astype(int) - c).sum(axis=2) < 60).astype(np.float64)
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0, f"dot {c} lost"
        out.append([xs.mean(), ys.mean()])
    return np.array(out)


def test_alignment_puts_marked_landmarks_on_the_reference_points() -> None:
    """Pixel oracle: dots drawn at landmarks of a rotated, scaled, shifted face end up on the template."""
    ref = AlignParams().references["sphereface_96x112"]
    ang, s, t = np.radians(-17.0), 2.4, np.array([61.0, 35.0])
    r = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    lm = SPHEREFACE @ r.T + t  # where the template points sit in a 300x300 "photo"
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]])
    img = np.full((300, 300, 3), 40, np.uint8)
    for (x, y), c in zip(lm, colours):
        cv2.circle(img, (int(round(x * 16)), int(round(y * 16))), 6 * 16, c.tolist(), -1, cv2.LINE_AA, shift=4)
    face = align_to_reference(img, lm, ref)
    assert face.image.shape == (112, 96, 3)
    assert face.residual < 1e-6 and abs(face.scale - 1 / s) < 1e-9 and abs(face.angle - 17.0) < 1e-9
    # the eyes (and every other dot) within 0.5 px of the reference points
    assert np.abs(_dot_centroids(face.image, colours) - SPHEREFACE).max() < 0.5


def test_lfw_mini_faces_land_on_the_template(detections: list, mtcnn: Detector) -> None:  # type: ignore[type-arg]
    """Independent check on real faces: MTCNN run again on the 96x112 aligned face (inside a black
    border) finds the eyes within 5 px (inter-ocular distance 35 px) of the reference points on every
    LFW-mini image, 2.5 px on average. Five real landmarks are never an exact similarity of the
    template, so least squares leaves a few pixels (measured: eyes 0.7-3.0 px, all points <= 6 px RMS)."""
    ref = AlignParams().references["sphereface_96x112"]
    pad, errors = 64, []
    for img, faces, choice in detections:
        face = align_to_reference(img, faces[choice.index].landmarks, ref)
        assert face.image.shape == (112, 96, 3)
        assert face.residual < 6.5
        assert np.abs(face.landmarks[:2] - SPHEREFACE[:2]).max() < 3.5
        again = mtcnn.detect(cv2.copyMakeBorder(face.image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0), 0.5)
        assert again, "no face in the aligned crop"
        eyes = again[0].landmarks[:2] - pad
        errors.append(np.abs(eyes - SPHEREFACE[:2]).max())
    assert max(errors) < 5.0 and float(np.mean(errors)) < 2.5, errors


def test_no_face_fallback_box_crops_its_centre_at_template_aspect() -> None:
    ref = AlignParams().references["sphereface_96x112"]
    img = np.random.default_rng(1).integers(0, 256, (250, 250, 3), dtype=np.uint8)
    lm = box_landmarks((0, 0, 250, 250), ref)
    face = align_to_reference(img, lm, ref, "nearest")
    s = 250 / 112  # height-limited: 112 rows span the box, 96 columns centred
    m = face.matrix
    assert np.allclose(m[:, :2], np.eye(2) / s) and np.allclose(m @ [125, 125, 1], [48, 56])


def test_pre_aligned_112_faces_realign_to_the_central_96_columns() -> None:
    refs = AlignParams().references
    img = np.random.default_rng(2).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    out = realign(img, refs["arcface_112x112"], refs["sphereface_96x112"])
    assert np.array_equal(out, img[:, 8:104])
    with pytest.raises(ValueError, match="template"):
        realign(img[:, :100], refs["arcface_112x112"], refs["sphereface_96x112"])


def test_reference_sets_are_validated() -> None:
    with pytest.raises(ParamsError, match="5 landmarks"):
        parse_params({"align": {"references": {"x": {"width": 96, "height": 112, "points": [[1, 2]] * 4}}}})
    with pytest.raises(ParamsError, match="mtcnn_sets"):
        parse_params({"align": {"mtcnn_sets": ["nope"]}})
    with pytest.raises(ParamsError, match="right eye"):
        pts = SPHEREFACE.tolist()
        pts[0], pts[1] = pts[1], pts[0]
        parse_params({"align": {"references": {"x": {"width": 96, "height": 112, "points": pts}}, "mtcnn_sets": []}})
