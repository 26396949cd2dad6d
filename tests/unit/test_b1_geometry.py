"""Pipeline B1 (thesis ch. 5, decode then crop): pad/crop geometry, detection reuse, names and params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdfv import paths
from cdfv.align.stage import align_records
from cdfv.codecs.registry import get_codec
from cdfv.config import PAPER_B1_CODECS, AlignParams, ParamsError, parse_params
from cdfv.detect.base import LANDMARK_COLUMNS
from cdfv.encode.border import crop_padding, pad_image, pad_to_multiple
from cdfv.evaluate.solutions import SolutionNameError, parse_solution
from cdfv.evaluate.stage import stage_name
from cdfv.io import encode_png, read_rgb
from cdfv.rd.metrics import psnr


@pytest.mark.parametrize(
    ("h", "w", "pads", "out"),
    [
        ((250, 250), None, (3, 3, 3, 3), (256, 256)),  # LFW: 250 -> 256, 3 px each side (thesis §3.7)
        ((200, 250), None, (28, 28, 3, 3), (256, 256)),
        ((255, 130), None, (0, 1, 31, 31), (256, 192)),  # odd pixel to the bottom/right
        ((64, 128), None, (0, 0, 0, 0), (64, 128)),  # already multiples of 64
    ],
)
def test_pad_to_multiple_geometry(h: tuple[int, int], w: None, pads: tuple[int, ...], out: tuple[int, int]) -> None:
    got = pad_to_multiple(*h)
    assert got == pads
    rng = np.random.default_rng(0)
    img = rng.integers(1, 256, (*h, 3), dtype=np.uint8)  # no zeros: the border is the only black
    padded = pad_image(img, got)
    assert padded.shape == (*out, 3) and padded.shape[0] % 64 == 0 and padded.shape[1] % 64 == 0
    t, _, left, _ = got
    assert padded.sum() == img.astype(np.int64).sum()  # the border is black
    assert np.array_equal(padded[t : t + h[0], left : left + h[1]], img)
    assert np.array_equal(crop_padding(padded, got), img)  # decode-then-crop undoes the padding exactly


def test_pad_to_multiple_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        pad_to_multiple(0, 250)
    with pytest.raises(ValueError):
        crop_padding(np.zeros((6, 6, 3), np.uint8), (3, 3, 0, 0))


def _detection(image_id: str, box: tuple[int, int, int, int], eyes: tuple[float, ...]) -> dict:
    det = {c: None for c in LANDMARK_COLUMNS}
    lm = [*eyes, 125.0, 140.0, 140.0, 165.0, 110.0, 165.0]  # nose, mouth right, mouth left
    det.update(dict(zip(LANDMARK_COLUMNS, lm)))
    det.update(
        image_id=image_id,
        identity=image_id.split("/")[0],
        status="ok",
        fallback=None,
        x1=box[0],
        y1=box[1],
        x2=box[2],
        y2=box[3],
    )
    return det


def test_b1_faces_reuse_the_original_detection(tmp_path: Path, shared_dir: Path) -> None:
    """A decoded whole image aligned with the ORIGINAL detection: same geometry, pixels from the decoder."""
    src = sorted((shared_dir / "fixtures" / "lfw-mini" / "lfw").glob("*/*.jpg"))[0]
    original = read_rgb(src)
    assert original.shape == (250, 250, 3)
    pads = pad_to_multiple(250, 250)
    codec = get_codec("JPEG_Q90")  # any real codec through the registry: the geometry is codec-independent
    decoded = crop_padding(codec.decode(codec.encode(pad_image(original, pads))), pads)
    assert decoded.shape == original.shape
    image_id = f"{src.parent.name}/{src.stem}"
    for name, img in (("orig", original), ("dec", decoded)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "img.png").write_bytes(encode_png(img))
    det = _detection(image_id, (70, 60, 185, 200), (100.0, 110.0, 150.0, 104.0))  # tilted eye line
    ap = AlignParams()
    a = align_records([det], {image_id: "orig/img.png"}, ap, tmp_path / "A", tmp_path)[0]
    b = align_records(
        [det],
        {image_id: "dec/img.png"},
        ap,
        tmp_path / "B1",
        tmp_path,
        faces_dir=paths.full_faces_dir("Balle2018_mse_Q1") / "faces",
    )[0]
    assert b["path"] == f"data/processed/lfw_full_faces/Balle2018_mse_Q1/faces/{image_id}.png"
    assert a["path"] == f"{paths.LFW_FACES_DIR.as_posix()}/{image_id}.png"
    geometry = ["pad_top", "pad_bottom", "pad_left", "pad_right", "angle", *LANDMARK_COLUMNS]
    assert {k: b[k] for k in geometry} == {k: a[k] for k in geometry}
    assert a["angle"] != 0.0
    fa, fb = read_rgb(tmp_path / "A" / f"{image_id}.png"), read_rgb(tmp_path / "B1" / f"{image_id}.png")
    assert fa.shape == fb.shape == (224, 224, 3)
    assert not np.array_equal(fa, fb)  # the codec changed the pixels ...
    assert psnr(fa, fb) > 30  # ... of the same face at the same place
    # a lossless "codec" gives exactly the pipeline-A face: B1's geometry is A's geometry
    (tmp_path / "lossless").mkdir()
    (tmp_path / "lossless" / "img.png").write_bytes(encode_png(crop_padding(pad_image(original, pads), pads)))
    c = align_records([det], {image_id: "lossless/img.png"}, ap, tmp_path / "C", tmp_path)[0]
    assert np.array_equal(read_rgb(tmp_path / "C" / f"{image_id}.png"), fa) and c["sha256"] == a["sha256"]


def test_b1_solution_names_and_stages() -> None:
    s = parse_solution("ResNet50_B1_Balle2018_mse_Q1")
    assert (s.recogniser, s.pipeline, s.codec, s.series) == (
        "ResNet50",
        "B1",
        "Balle2018_mse_Q1",
        "ResNet50_B1_Balle2018_mse",
    )
    assert stage_name("ResNet50_B1_Balle2018_mse_Q1") == "eval_lfw_resnet50_b1@Balle2018_mse_Q1"
    assert stage_name("Dlib_B1_Cheng2020_msssim_Q6") == "eval_lfw_dlib_b1@Cheng2020_msssim_Q6"
    assert parse_solution("ResNet50_Balle2018_mse_Q1").pipeline == "B2"  # unchanged
    for bad in ("cResNet39_B1_Balle2018_mse_Q1", "ResNet50_B1_JPEG_Q1", "ResNet50_B1_Cheng2020_mse_Q7"):
        with pytest.raises(SolutionNameError):
            parse_solution(bad)


def test_b1_params_default_to_thesis_chapter_5() -> None:
    # ch. 5: every CompressAI zoo point, Ballé 2018 q1-8 and Cheng 2020 q1-6, MSE and MS-SSIM = 28 anchors
    assert len(PAPER_B1_CODECS) == 2 * 8 + 2 * 6
    p = parse_params({})
    assert p.eval.b1_codecs == p.eval.resnet50_b1 == PAPER_B1_CODECS
    # the off-the-shelf dlib recogniser needs no training: it runs the paper's points by default
    assert p.eval.dlib_b1 == PAPER_B1_CODECS and p.eval.dlib_decoded == p.eval.resnet50_decoded
    assert len(p.eval.dlib_decoded) == 4 + 16
    with pytest.raises(ParamsError, match="b1_codecs"):
        parse_params({"eval": {"b1_codecs": ["Balle2018_mse_Q1"], "dlib_b1": ["Balle2018_mse_Q2"], "resnet50_b1": []}})
    with pytest.raises(ParamsError, match="learned"):
        parse_params({"eval": {"b1_codecs": ["JPEG_Q1"], "resnet50_b1": []}})
