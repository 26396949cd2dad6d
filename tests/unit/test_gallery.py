"""Gallery FRR@FAR (Xiao et al. §4) against small examples worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cdfv.evaluate.gallery import GalleryError, frr_at_far, gallery_mask, gallery_scores

# unit vectors at these angles (degrees): cosine similarity = cos(angle difference)
ANGLES = {"A_0001": 0, "A_0002": 10, "A_0003": 60, "B_0001": 90, "B_0002": 100, "C_0001": 180}
IMAGES = list(ANGLES)
IDS = [name[0] for name in IMAGES]
EMB = np.array([[np.cos(np.radians(a)), np.sin(np.radians(a))] for a in ANGLES.values()]) * 3.0  # norm ignored


def c(deg: float) -> float:
    return float(np.cos(np.radians(deg)))


def test_n1_scores_and_frr_by_hand() -> None:
    s = gallery_scores(EMB, IDS, IMAGES, n=1)
    # gallery A_0001, B_0001, C_0001; queries A_0002, A_0003, B_0002
    assert [IMAGES[i] for i in s.query] == ["A_0002", "A_0003", "B_0002"]
    np.testing.assert_allclose(s.genuine, [c(10), c(60), c(10)])
    np.testing.assert_allclose(s.impostor, [c(80), c(30), c(80)])  # B_0001, B_0001, C_0001 nearest
    # ROC: threshold cos10 accepts 2/3 genuine at FAR 0; cos30 admits one impostor (FAR 1/3); cos60 then
    # accepts the last genuine query with no further impostor (cos80 < cos60)
    assert frr_at_far(s, 0.01) == pytest.approx(1 / 3)
    assert frr_at_far(s, 0.001) == pytest.approx(1 / 3)
    assert frr_at_far(s, 0.3) == pytest.approx(1 / 3)
    assert frr_at_far(s, 1 / 3) == pytest.approx(0.0)


def test_identity_filter_keeps_gallery_and_queries_inside_the_subset() -> None:
    s = gallery_scores(EMB, IDS, IMAGES, n=1, keep={"A", "C"})
    assert [IMAGES[i] for i in s.query] == ["A_0002", "A_0003"]
    np.testing.assert_allclose(s.impostor, [c(170), c(120)])  # only C_0001 is an impostor now
    assert frr_at_far(s, 0.01) == 0.0  # every genuine score beats every impostor


def test_n2_gallery() -> None:
    assert gallery_mask(IDS, IMAGES, 2).tolist() == [True, True, False, True, True, True]
    s = gallery_scores(EMB, IDS, IMAGES, n=2)
    assert [IMAGES[i] for i in s.query] == ["A_0003"]
    np.testing.assert_allclose(s.genuine, [c(50)])  # nearest own gallery image A_0002
    np.testing.assert_allclose(s.impostor, [c(30)])  # B_0001
    assert frr_at_far(s, 0.01) == 1.0


def test_gallery_order_is_by_name_not_input_order() -> None:
    perm = [5, 2, 0, 4, 1, 3]
    s = gallery_scores(EMB[perm], [IDS[i] for i in perm], [IMAGES[i] for i in perm], n=1)
    np.testing.assert_allclose(sorted(s.genuine), sorted([c(10), c(60), c(10)]))


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(GalleryError, match="no queries"):
        gallery_scores(EMB, IDS, IMAGES, n=3)
    with pytest.raises(GalleryError, match="two identities"):
        gallery_scores(EMB, IDS, IMAGES, n=1, keep={"A"})
    with pytest.raises(GalleryError, match=">= 1"):
        gallery_mask(IDS, IMAGES, 0)
