"""Detector backends on real bytes: dlib on the LFW-mini faces and real scenes, RetinaFace's real
network (random weights: no download possible here) through retina-face's own post-processing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdfv.config import parse_params
from cdfv.detect import make_detector
from cdfv.detect.base import Detector, Face
from cdfv.detect.heuristic import choose_face
from cdfv.detect.stage import detect_records, detection_row
from cdfv.io import encode_png, read_rgb

DLIB_SCHEDULE = (1.0, -0.5, 0.05)


@pytest.fixture(scope="module")
def dlib_detector() -> Detector:
    pytest.importorskip("dlib")
    return make_detector(parse_params({"detect": {"backend": "dlib"}}).detect)


@pytest.fixture(scope="module")
def lfw_mini(shared_dir: Path) -> list[Path]:
    files = sorted((shared_dir / "fixtures" / "lfw-mini" / "lfw").glob("*/*.jpg"))
    assert len(files) == 25
    return files


def test_dlib_finds_a_centred_face_in_every_lfw_mini_image(dlib_detector: Detector, lfw_mini: list[Path]) -> None:
    before = dlib_detector.forward_passes
    for path in lfw_mini:
        img = read_rgb(path)
        h, w = img.shape[:2]
        faces = dlib_detector.detect(img, DLIB_SCHEDULE[1])
        c = choose_face(faces, w, h, *DLIB_SCHEDULE)
        assert c.status == "ok", path.name
        f = faces[c.index]
        x1, y1, x2, y2 = f.box
        # near the centre: the box centre is within 15% of the image size of the image centre
        assert abs((x1 + x2) / 2 - w / 2) < 0.15 * w and abs((y1 + y2) / 2 - h / 2) < 0.15 * h, path.name
        re, le, nose, mr, ml = f.landmarks
        # contract: subject's right eye / mouth corner on the image left; eyes above nose above mouth
        assert re[0] < le[0] and mr[0] < ml[0], path.name
        assert max(re[1], le[1]) < nose[1] < min(mr[1], ml[1]), path.name
        assert all(x1 - 5 <= x <= x2 + 5 and y1 - 5 <= y <= y2 + 15 for x, y in f.landmarks), path.name
    assert dlib_detector.forward_passes - before == len(lfw_mini)  # one pass per image


def _shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Translate with black fill (same size)."""
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    ys, xs = slice(max(dy, 0), min(h + dy, h)), slice(max(dx, 0), min(w + dx, w))
    out[ys, xs] = img[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("scene", ["couple.jpg", "selfie-many-people.jpg"])
def test_dlib_scenes_heuristic_picks_the_face_under_the_centre(
    dlib_detector: Detector, shared_dir: Path, scene: str
) -> None:
    img = read_rgb(shared_dir / "fixtures" / "scenes" / scene)
    h, w = img.shape[:2]
    faces = dlib_detector.detect(img, DLIB_SCHEDULE[1])
    assert len(faces) >= 2
    # as photographed no face covers the centre: the heuristic must refuse the off-centre faces
    if all(not (f.box[0] <= w / 2 <= f.box[2] and f.box[1] <= h / 2 <= f.box[3]) for f in faces):
        assert choose_face(faces, w, h, *DLIB_SCHEDULE).status == "no_face"
    # move each detected face under the centre in turn: the heuristic picks exactly that face
    for target in faces:
        bx, by = (target.box[0] + target.box[2]) / 2, (target.box[1] + target.box[3]) / 2
        dx, dy = int(round(w / 2 - bx)), int(round(h / 2 - by))
        shifted = _shift(img, dx, dy)
        cands = dlib_detector.detect(shifted, DLIB_SCHEDULE[1])
        c = choose_face(cands, w, h, *DLIB_SCHEDULE)
        assert c.status == "ok", scene
        gx1, gy1, gx2, gy2 = cands[c.index].box
        assert _iou((gx1 - dx, gy1 - dy, gx2 - dx, gy2 - dy), target.box) > 0.6, (scene, target.box)


def test_five_point_landmarks_mapping(dlib_detector: Detector, lfw_mini: list[Path]) -> None:
    from cdfv.detect.dlib_backend import DlibDetector, landmarks_from_5

    five = DlibDetector(landmarks="five_point")
    img = read_rgb(lfw_mini[0])
    f5 = five.detect(img, -0.5)[0]
    f68 = dlib_detector.detect(img, -0.5)[0]
    # the two models agree on the eyes within a few pixels
    np.testing.assert_allclose(f5.landmarks[:2], f68.landmarks[:2], atol=6)
    # derived mouth corners: 0.9 inter-ocular distances below each eye, perpendicular to the eye line
    pts = np.array([[60.0, 50], [50, 50], [30, 50], [20, 50], [40, 70]])  # level eyes
    lm = landmarks_from_5(pts)
    np.testing.assert_allclose(lm[0], [25, 50]) and np.testing.assert_allclose(lm[1], [55, 50])
    np.testing.assert_allclose(lm[3], [25, 77]) and np.testing.assert_allclose(lm[4], [55, 77])


class _Spy(Detector):
    """Counts calls; returns one fixed face per image."""

    name = "spy"

    def detect_batch(self, images, min_score):  # type: ignore[no-untyped-def]
        self.forward_passes += len(images)
        self.min_scores = getattr(self, "min_scores", []) + [min_score]
        return [[Face(0.8, (50, 50, 150, 150), np.tile([[100.0, 100.0]], (5, 1)))] for _ in images]


def test_stage_detects_once_per_image_at_lowest_threshold_and_survives_bad_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
    (tmp_path / "ok.png").write_bytes(encode_png(rgb))
    from PIL import Image

    Image.fromarray(rng.integers(0, 65535, (250, 250), dtype=np.uint16)).save(tmp_path / "grey16.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    (tmp_path / "corrupt.png").write_bytes(encode_png(rgb)[:200])
    recs = [
        {"image_id": f"X/{n}", "identity": "X", "path": n}
        for n in ["ok.png", "grey16.png", "cmyk.jpg", "corrupt.png", "missing.png"]
    ]
    spy = _Spy()
    params = parse_params({}).detect
    rows = detect_records(recs, spy, params, tmp_path, batch_size=2)
    assert [r["image_id"] for r in rows] == [r["image_id"] for r in recs]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "unreadable", "unreadable"]
    assert spy.forward_passes == 3  # once per readable image, never per threshold step
    assert set(spy.min_scores) == {0.7}
    assert rows[0]["threshold_used"] == pytest.approx(0.8) and rows[0]["n_candidates"] == 1
    assert "corrupt.png" in rows[3]["error"] and rows[3]["x1"] is None


def test_detection_row_no_face_records_fallback() -> None:
    img = np.zeros((250, 200, 3), np.uint8)
    off = [Face(0.99, (0, 0, 40, 40), np.zeros((5, 2)))]
    p = parse_params({"detect": {"fallback": "centre_crop"}}).detect
    row = detection_row({"image_id": "a/b", "identity": "a"}, img, off, p, "spy")
    assert row["status"] == "no_face" and row["fallback"] == "centre_crop" and row["n_candidates"] == 1
    assert (row["x1"], row["y1"], row["x2"], row["y2"]) == (40, 65, 160, 185)
    assert row["right_eye_x"] is None and row["score"] is None
    row = detection_row({"image_id": "a/b", "identity": "a"}, img, off, parse_params({}).detect, "spy")
    assert (row["x1"], row["y1"], row["x2"], row["y2"]) == (0, 0, 200, 250)


# --------------------------------------------------------------------------------------------
# RetinaFace (its weights: tests/unit/test_weights.py)
# --------------------------------------------------------------------------------------------
def test_retinaface_real_network_batched_equals_single(lfw_mini: list[Path]) -> None:
    """Random weights (offline) with a biased stride-32 face logit so the library's decoding, score
    filter and NMS produce boxes; batching must not change them; one pass per image."""
    torch = pytest.importorskip("torch")
    from cdfv.detect.retinaface_backend import RetinaFaceDetector

    torch.manual_seed(0)
    det = RetinaFaceDetector(pretrained=False, allow_upscaling=False, device="cpu", batch_size=2)
    with torch.no_grad():
        det.net.face_rpn_stride32.cls_score.bias[2:4] += 6.0  # face channels of the 2 anchors
    import cv2

    imgs = [cv2.resize(read_rgb(p), (160, 160), interpolation=cv2.INTER_AREA) for p in lfw_mini[:2]]  # CPU time
    batched = det.detect_batch(imgs, 0.7)
    assert det.network_calls == 1 and det.forward_passes == 2
    single = [det.detect(i, 0.7) for i in imgs]
    assert det.network_calls == 3 and det.forward_passes == 4
    for b, s, img in zip(batched, single, imgs):
        assert len(b) > 0 and len(b) == len(s)
        h, w = img.shape[:2]
        for fb, fs in zip(b, s):
            assert fb.score >= 0.7 and fb.landmarks.shape == (5, 2)
            assert 0 <= fb.box[0] <= fb.box[2] <= w and 0 <= fb.box[1] <= fb.box[3] <= h
            assert fb.score == pytest.approx(fs.score, abs=1e-4)
            np.testing.assert_allclose(fb.box, fs.box, atol=1)
        assert [f.score for f in b] == sorted((f.score for f in b), reverse=True)


def test_retinaface_filtering_one_pass_equals_rerunning_at_each_threshold(lfw_mini: list[Path]) -> None:
    """The [INF] claim behind detect-once: retina-face's own detect_faces at threshold t returns
    exactly our threshold-0.7 candidates with score >= t (score filter + greedy NMS commute)."""
    torch = pytest.importorskip("torch")
    import cv2

    from cdfv.detect.retinaface_backend import RetinaFaceDetector, _Replay, faces_from_response

    torch.manual_seed(1)
    det = RetinaFaceDetector(pretrained=False, allow_upscaling=False, device="cpu")
    with torch.no_grad():  # spread face probabilities over ~0.6-0.95 (coarse strides: few boxes, fast NMS)
        for head in (det.net.face_rpn_stride32, det.net.face_rpn_stride16):
            head.cls_score.bias[2:4] += 1.5
    img = cv2.resize(read_rgb(lfw_mini[3]), (128, 128), interpolation=cv2.INTER_AREA)
    once = det.detect(img, 0.7)
    assert det.forward_passes == 1 and len(once) > 3
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    tensor, _, _ = det._pre.preprocess_image(bgr, False)
    outs = [torch.from_numpy(o) for o in det._forward(tensor)]
    scores = sorted(f.score for f in once)
    for t in [0.7, scores[len(scores) // 4], scores[len(scores) // 2], scores[-2]]:
        rerun = faces_from_response(
            det._rf.detect_faces(bgr, threshold=t, model=_Replay(outs, tensor.shape), allow_upscaling=False)
        )
        filtered = [f for f in once if f.score >= t]
        assert [f.box for f in rerun] == [f.box for f in filtered], t
        assert [f.score for f in rerun] == pytest.approx([f.score for f in filtered]), t
