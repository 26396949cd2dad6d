"""Pair scoring, solution names and the dlib recogniser on real fixture faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdfv.evaluate.score import MissingEmbeddingsError, NonFiniteScoresError, cosine_scores, score_pairs
from cdfv.evaluate.solutions import SolutionNameError, parse_solution
from cdfv.evaluate.stage import stage_name


def test_cosine_scores_match_sklearn() -> None:
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 16)), rng.normal(size=(50, 16))
    np.testing.assert_allclose(cosine_scores(a, b), np.diag(cosine_similarity(a, b)), atol=1e-12)


def test_missing_embeddings_are_listed_and_nan_rejected() -> None:
    table = {"a": np.ones(4), "b": np.ones(4), "z": np.zeros(4)}
    with pytest.raises(MissingEmbeddingsError, match=r"2 probe image\(s\).*c, d"):
        score_pairs(["a", "c", "d"], ["b", "b", "b"], table, table)
    with pytest.raises(NonFiniteScoresError, match=r"pairs \[7\]"):
        score_pairs(["a", "z"], ["b", "b"], table, table, pair_ids=[6, 7])
    assert score_pairs(["a"], ["b"], table, table)[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "pipeline", "series", "stage"),
    [
        ("ResNet50_Original_Anchor", "A", "ResNet50_Original_Anchor", "eval_lfw_resnet50_anchor"),
        ("Dlib_JPEG_Q1", "B2", "Dlib_JPEG", "eval_lfw_dlib@JPEG_Q1"),
        ("ResNet50_HEVC_QP26", "B2", "ResNet50_HEVC", "eval_lfw_resnet50@HEVC_QP26"),
        ("cResNet39_Balle2018_mse_Q6", "C", "cResNet39_Balle2018_mse", "eval_lfw_cresnet39@Balle2018_mse_Q6"),
    ],
)
def test_solution_names(name: str, pipeline: str, series: str, stage: str) -> None:
    sol = parse_solution(name)
    assert (sol.pipeline, sol.series, stage_name(name)) == (pipeline, series, stage)


@pytest.mark.parametrize("bad", ["VGG_JPEG_Q1", "cResNet39_JPEG_Q1", "cResNet39_Original_Anchor", "ResNet50_JPEG_Q0x"])
def test_bad_solution_names(bad: str) -> None:
    with pytest.raises(SolutionNameError):
        parse_solution(bad)


def test_dlib_recogniser_separates_real_identities(shared_dir: Path) -> None:
    """Real LFW fixture faces: same-identity cosine > different-identity cosine (dlib, 128-d)."""
    from cdfv.evaluate.recognisers import DlibRecogniser
    from cdfv.io import read_rgb

    root = shared_dir / "fixtures" / "lfw-mini"
    people = sorted(p for p in root.rglob("*") if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)
    if len(people) < 2:
        pytest.skip("lfw-mini fixture layout not as expected")
    a1, a2 = sorted(people[0].glob("*.jpg"))[:2]
    b1 = sorted(people[1].glob("*.jpg"))[0]
    # 250x250 LFW images: the centre 224 crop stands in for the aligned face here
    faces = np.stack([read_rgb(p)[13:237, 13:237] for p in (a1, a2, b1)])
    rec = DlibRecogniser()
    emb = rec.embed(faces, rec.geometry(faces))
    assert emb.shape == (3, 128) and np.isfinite(emb).all()
    same = cosine_scores(emb[:1], emb[1:2])[0]
    diff = cosine_scores(emb[:1], emb[2:3])[0]
    assert same > diff
