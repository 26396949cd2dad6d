"""Li et al. 2019 (cdfv/tfqi): quantiser, feature bitstream, R-D fits, allocation, crops, params."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cdfv.tfqi import allocate as A
from cdfv.tfqi.bitstream import (
    UNARY_BINS,
    FeatureBitstreamError,
    adaptive_probabilities,
    binarise,
    decode_levels,
    encode_levels,
)
from cdfv.tfqi.quantise import dequantise, l2_normalise, q_step, quantise
from cdfv.tfqi.rd_models import (
    PAPER_FEATURE_FIT,
    PAPER_TEXTURE_FIT,
    Fit,
    feature_model,
    fit_feature,
    fit_texture,
    r_squared,
    texture_model,
)


# ------------------------------------------------------------------------------------------------
# Quantiser (eqs. 1-2, midpoint reconstruction)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("qp", "step"),
    [(4, 2.0**-10), (10, 2.0**-9), (22, 2.0**-7), (28, 2.0**-6), (64, 1.0), (51, 2.0 ** (47 / 6 - 10))],
)
def test_q_step_is_eq_1(qp: int, step: float) -> None:
    assert q_step(qp) == pytest.approx(step, rel=1e-15)


def test_quantise_floors_and_reconstructs_the_cell_midpoint() -> None:
    # QP 22: Q_step = 1/128. 0.3 * 128 = 38.4 -> 38; -0.3 -> floor(-38.4) = -39 (truncation towards -inf, eq. 2)
    c = np.array([0.3, -0.3, 0.0, -1e-9, 1.0, -1.0, 0.0078125])
    assert quantise(c, 22).tolist() == [38, -39, 0, -1, 128, -128, 1]
    assert dequantise(np.array([38, -39, 0, -1]), 22).tolist() == [38.5 / 128, -38.5 / 128, 0.5 / 128, -0.5 / 128]


@pytest.mark.parametrize("qp", [0, 4, 13, 22, 37, 51])
def test_dequantisation_error_is_at_most_half_a_step_per_component(qp: int) -> None:
    x = l2_normalise(np.random.default_rng(qp).normal(size=(200, 128)))
    err = np.abs(dequantise(quantise(x, qp), qp) - x)
    assert err.max() <= q_step(qp) / 2 * (1 + 1e-12)
    assert err.max() > q_step(qp) / 4  # not a trivially exact reconstruction


def test_l2_normalise_rejects_zero_rows() -> None:
    assert np.linalg.norm(l2_normalise(np.array([[3.0, 4.0]])), axis=1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="zero"):
        l2_normalise(np.zeros((2, 4)))


# ------------------------------------------------------------------------------------------------
# Feature bitstream: binarisation, adaptive contexts, constriction's range coder
# ------------------------------------------------------------------------------------------------
def test_binarisation_restated() -> None:
    """m = l or -l-1, truncated unary of UNARY_BINS context bins, EG0 of m - UNARY_BINS in bypass, then the sign."""
    cases = {
        0: [0, 0],
        -1: [0, 1],  # floor cell [-Q, 0): magnitude 0, negative
        2: [1, 1, 0, 0],
        -3: [1, 1, 0, 1],
        UNARY_BINS: [1] * UNARY_BINS + [1, 0],  # EG0(0) = "1"
        UNARY_BINS + 2: [1] * UNARY_BINS + [0, 1, 1, 0],  # EG0(2) = "011"
        -(UNARY_BINS + 6) - 1: [1] * UNARY_BINS + [0, 0, 1, 1, 1, 1],  # m = U + 6, EG0(6) = "00111", sign 1
    }
    for level, expected in cases.items():
        bins, ctx = binarise(np.array([level]))
        assert bins.tolist() == expected, level
        unary = min(level if level >= 0 else -level - 1, UNARY_BINS - 1) + 1
        assert ctx[-1] == 0 and (ctx[: min(unary, UNARY_BINS)] >= 1).all(), level


def test_adaptive_probabilities_are_krichevsky_trofimov_per_context() -> None:
    bins = np.array([1, 1, 0, 1, 0], dtype=np.int32)
    ctx = np.array([1, 1, 1, 0, -1])
    # context 1 saw nothing, then 1, then 1,1: (n1 + 1/2) / (n + 1); context 0 first use; bypass 1/2
    assert adaptive_probabilities(bins, ctx).tolist() == [0.5, 0.75, 2.5 / 3, 0.5, 0.5]


@pytest.mark.parametrize("qp", [0, 22, 51])
@pytest.mark.parametrize("dim", [128, 512])
def test_feature_bitstream_decodes_to_the_same_levels(qp: int, dim: int) -> None:
    x = l2_normalise(np.random.default_rng(dim + qp).normal(size=(20, dim)))
    for levels in quantise(x, qp):
        blob = encode_levels(levels, qp)
        assert isinstance(blob, bytes) and (len(blob) - 1) % 4 == 0  # QP byte + 32-bit words
        got_qp, got = decode_levels(blob, dim)
        assert got_qp == qp and np.array_equal(got, levels)


def test_extreme_levels_round_trip() -> None:
    levels = np.array([0, -1, 5000, -5001, UNARY_BINS - 1, UNARY_BINS, -UNARY_BINS - 1, 1, -2] * 3)
    assert np.array_equal(decode_levels(encode_levels(levels, 0), levels.size)[1], levels)


def test_payload_is_constrictions_range_code_of_the_bins() -> None:
    """The bytes after the QP header are exactly what constriction's range coder emits for those bins and
    probabilities (the coder is the library's, not ours), and cost the bins' information within one word."""
    import constriction

    levels = quantise(l2_normalise(np.random.default_rng(1).normal(size=(1, 128)))[0], 27)
    bins, ctx = binarise(levels)
    p = adaptive_probabilities(bins, ctx)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(bins, constriction.stream.model.Bernoulli(perfect=False), p)
    blob = encode_levels(levels, 27)
    assert blob[0] == 27 and blob[1:] == enc.get_compressed().astype(">u4").tobytes()
    information = -np.sum(np.log2(np.where(bins == 1, p, 1 - p)))
    assert information <= 8 * (len(blob) - 1) <= information + 64


def test_adaptive_contexts_beat_a_fixed_binary_code() -> None:
    """Skewed levels (a coarse QP) cost far fewer bits than one bit per bin would."""
    levels = quantise(l2_normalise(np.random.default_rng(2).normal(size=(1, 512)))[0], 40)
    bins, _ = binarise(levels)
    assert 8 * len(encode_levels(levels, 40)) < 0.9 * bins.size


def test_bad_streams_fail_clearly() -> None:
    with pytest.raises(FeatureBitstreamError, match="empty"):
        decode_levels(b"", 128)
    with pytest.raises(ValueError, match="header"):
        encode_levels(np.zeros(4, np.int32), 300)


# ------------------------------------------------------------------------------------------------
# R-D models (eq. 9)
# ------------------------------------------------------------------------------------------------
def test_texture_fit_recovers_known_parameters() -> None:
    r = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4])
    exact = fit_texture(r, texture_model(r, 293.4, -26.7))
    assert exact.ok and exact.params["a1"] == pytest.approx(293.4, rel=1e-6)
    assert exact.params["b1"] == pytest.approx(-26.7, rel=1e-6) and exact.r2 == pytest.approx(1.0)
    noisy = fit_texture(r, texture_model(r, 120.0, -8.0) * np.exp(np.random.default_rng(0).normal(0, 0.02, r.size)))
    assert noisy.params["a1"] == pytest.approx(120.0, rel=0.05) and noisy.params["b1"] == pytest.approx(-8.0, rel=0.05)


def test_feature_fit_recovers_known_parameters() -> None:
    """Parameters unlike the paper's (its fit is one of the starting points, so it is no test of the search)."""
    r = np.linspace(0.0, 0.6, 12)
    fit = fit_feature(r, feature_model(r, 0.05, -40.0, 0.01, 3.0))
    assert fit.ok and fit.r2 == pytest.approx(1.0)
    for k, v in {"a2": 0.05, "b2": -40.0, "c2": 0.01, "d2": 3.0}.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-4), k
    r = np.linspace(0.002, 0.06, 12)
    noisy = feature_model(r, 0.048, -276.8, 0.0068, 3.882) + np.random.default_rng(3).normal(0, 2e-4, r.size)
    fit = fit_feature(r, noisy)
    assert fit.params["a2"] == pytest.approx(0.048, rel=0.1) and fit.params["b2"] == pytest.approx(-276.8, rel=0.1)
    assert fit.params["c2"] == pytest.approx(0.0068, rel=0.1)


def test_paper_fits_are_the_papers_fig_2() -> None:
    assert PAPER_TEXTURE_FIT == {"a1": 293.4, "b1": -26.7, "r2": 0.9826}
    assert PAPER_FEATURE_FIT == {"a2": 0.048, "b2": -276.8, "c2": 0.0068, "d2": 3.882, "r2": 0.8393}


def test_fits_say_why_they_fail() -> None:
    constant = fit_feature([0.01, 0.02, 0.03, 0.04, 0.05], [0.0] * 5)
    assert not constant.ok and constant.status.startswith("fit failed: ") and "constant" in constant.reason
    few = fit_feature([0.01, 0.02, 0.03], [0.1, 0.05, 0.01])
    assert not few.ok and "3 points for 4 parameters" in few.reason
    assert "non-finite" in fit_texture([0.1, 0.2, float("nan")], [3.0, 2.0, 1.0]).reason
    with pytest.raises(ValueError, match="fit failed"):
        constant(0.1)


def test_r_squared_matches_sklearn() -> None:
    from sklearn.metrics import r2_score

    y, y_hat = np.array([3.0, 1.0, 4.0, 1.5]), np.array([2.5, 1.2, 3.9, 2.0])
    assert r_squared(y, y_hat) == pytest.approx(r2_score(y, y_hat))


# ------------------------------------------------------------------------------------------------
# TFQI and the allocation (eqs. 3-8)
# ------------------------------------------------------------------------------------------------
def test_tfqi_is_eq_3() -> None:
    assert A.tfqi(10.0, 0.1, 0.5) == pytest.approx(-math.log10(0.5 * 10 + 0.5 * 0.1))
    assert A.tfqi(293.4, 0.0, 0.001) == pytest.approx(-math.log10(0.2934))
    with pytest.raises(ValueError):
        A.tfqi(1.0, 1.0, 1.0)


TEXTURE_QPS = [22, 27, 32, 37, 42, 47, 51]
FEATURE_QPS = [4, 10, 16, 22, 27, 32, 37, 42, 47, 51]


def _paper_grid() -> tuple[list[A.GridPoint], list[A.GridPoint]]:
    """A synthetic grid built from the paper's model forms: rates halve every 6 QP, distortions on eq. 9's curves."""
    tex = [A.GridPoint(q, 0.6 * 2 ** (-(q - 22) / 6), 0.0) for q in TEXTURE_QPS]
    fea = [A.GridPoint(q, 0.05 * 2 ** (-(q - 4) / 12), 0.0) for q in FEATURE_QPS]
    tex = [A.GridPoint(t.qp, t.rate, float(texture_model(t.rate, 293.4, -26.7))) for t in tex]
    fea = [A.GridPoint(f.qp, f.rate, float(feature_model(f.rate, 0.048, -276.8, 0.0068, 3.882))) for f in fea]
    return tex, fea


def test_model_allocation_is_the_grid_optimum_or_its_neighbour() -> None:
    tex, fea = _paper_grid()
    ft = fit_texture([t.rate for t in tex], [t.distortion for t in tex])
    ff = fit_feature([f.rate for f in fea], [f.distortion for f in fea])
    assert ft.ok and ff.ok
    rt_range = (min(t.rate for t in tex), max(t.rate for t in tex))
    rf_range = (min(f.rate for f in fea), max(f.rate for f in fea))
    checked = 0
    for w1 in (0.0005, 0.001, 0.01):
        for budget in A.budget_grid(tex, fea, 15):
            alloc = A.working_condition_allocation(ft, ff, w1, budget, rt_range, rf_range)
            grid = A.grid_optimum(tex, fea, budget, w1)
            if alloc is None or grid is None:
                continue
            model = A.grid_pair(tex, fea, budget, alloc.rate_t, ff, w1)
            assert model is not None and model.rate <= budget * (1 + 1e-12)
            di = abs(TEXTURE_QPS.index(model.qp1) - TEXTURE_QPS.index(grid.qp1))
            dj = abs(FEATURE_QPS.index(model.qp2) - FEATURE_QPS.index(grid.qp2))
            assert di <= 1 and dj <= 1, (w1, budget, model, grid)
            assert grid.tfqi >= model.tfqi - 1e-12
            checked += 1
    assert checked >= 30


def test_working_condition_holds_at_an_interior_optimum() -> None:
    """w1 D_t'(R_t) = w2 D_f'(R_f) (eq. 7) and R_t + R_f = R_c (eq. 8), restated with the paper's models."""
    ft = Fit("texture", True, {"a1": 293.4, "b1": -26.7}, 1.0, 7)
    ff = Fit("feature", True, {"a2": 0.048, "b2": -276.8, "c2": 0.0068, "d2": 3.882}, 1.0, 10)
    w1, budget = 0.001, 0.2
    alloc = A.working_condition_allocation(ft, ff, w1, budget, (0.01, 0.6), (0.001, 0.05))
    assert alloc is not None and not alloc.on_boundary
    assert alloc.rate_t + alloc.rate_f == pytest.approx(budget)
    dt = 293.4 * -26.7 * math.exp(-26.7 * alloc.rate_t)
    df = 0.048 * -276.8 * math.exp(-276.8 * alloc.rate_f) + 0.0068 * 3.882 * math.exp(3.882 * alloc.rate_f)
    assert w1 * dt == pytest.approx((1 - w1) * df, rel=1e-6)
    # it is the best R_t on a fine scan of the constraint line
    rts = np.linspace(max(0.01, budget - 0.05), min(0.6, budget - 0.001), 20001)
    scan = A.tfqi(texture_model(rts, 293.4, -26.7), feature_model(budget - rts, 0.048, -276.8, 0.0068, 3.882), w1)
    assert alloc.model_tfqi >= float(np.max(scan)) - 1e-9


def test_budget_outside_the_fitted_ranges_has_no_model_allocation() -> None:
    ft = Fit("texture", True, {"a1": 293.4, "b1": -26.7}, 1.0, 7)
    ff = Fit("feature", True, {"a2": 0.048, "b2": -276.8, "c2": 0.0068, "d2": 3.882}, 1.0, 10)
    assert A.working_condition_allocation(ft, ff, 0.01, 0.005, (0.05, 0.6), (0.005, 0.05)) is None


def test_grid_optimum_is_the_brute_force_maximum() -> None:
    rng = np.random.default_rng(7)
    tex = [
        A.GridPoint(q, float(r), float(d))
        for q, r, d in zip(TEXTURE_QPS, rng.uniform(0.05, 1, 7), rng.uniform(1, 300, 7))
    ]
    fea = [
        A.GridPoint(q, float(r), float(d))
        for q, r, d in zip(FEATURE_QPS, rng.uniform(0.005, 0.05, 10), rng.uniform(0, 0.3, 10))
    ]
    for budget in (0.1, 0.3, 0.7, 2.0):
        best = None
        for t, f in itertools.product(tex, fea):
            if t.rate + f.rate <= budget:
                v = -math.log10(0.01 * t.distortion + 0.99 * f.distortion)
                best = v if best is None else max(best, v)
        got = A.grid_optimum(tex, fea, budget, 0.01)
        assert (got is None and best is None) or got.tfqi == pytest.approx(best)


def test_curve_at_interpolates_in_log_rate_inside_the_range_only() -> None:
    assert A.curve_at([0.1, 0.4], [1.0, 3.0], 0.2) == pytest.approx(2.0)  # log 0.2 is halfway between log 0.1, log 0.4
    assert A.curve_at([0.1, 0.4], [1.0, 3.0], 0.5) is None and A.curve_at([0.1, 0.4], [1.0, 3.0], 0.05) is None


def test_budget_grid_spans_the_joint_rates_log_spaced() -> None:
    tex, fea = _paper_grid()
    b = A.budget_grid(tex, fea, 5, extra=[0.123])
    lo = min(t.rate for t in tex) + min(f.rate for f in fea)
    hi = max(t.rate for t in tex) + max(f.rate for f in fea)
    assert b[0] == pytest.approx(lo) and b[-1] == pytest.approx(hi) and 0.123 in b and len(b) == 6
    auto = [x for x in b if x != 0.123]
    assert np.allclose(np.diff(np.log(auto)), np.log(hi / lo) / 4)


# ------------------------------------------------------------------------------------------------
# Crops and params
# ------------------------------------------------------------------------------------------------
def test_box_crop_margin_is_in_output_pixels() -> None:
    from cdfv.tfqi.faces import box_crop, margin_window

    # a 100 px box, 32 px margin of a 160 crop: 32 * 100 / 128 = 25 source px, half on each side
    assert margin_window((100, 100, 200, 200), 400, 400, 160, 32) == (87.5, 87.5, 212.5, 212.5)
    img = np.zeros((300, 300, 3), np.uint8)
    img[100:200, 100:200] = 255  # the detected box is white, the margin black
    crop, window = box_crop(img, (100, 100, 200, 200), 160, 32, "nearest")
    assert crop.shape == (160, 160, 3) and window == (88.0, 88.0, 212.0, 212.0)
    assert crop[80, 80].tolist() == [255, 255, 255] and crop[5, 5].tolist() == [0, 0, 0]


def test_margin_window_clips_to_the_image() -> None:
    from cdfv.tfqi.faces import margin_window

    assert margin_window((0, 10, 100, 110), 150, 150, 160, 32) == (0.0, 0.0, 112.5, 122.5)


def test_similarity_crop_puts_landmarks_on_the_template() -> None:
    from cdfv.config import REFERENCE_SETS, ReferenceSet
    from cdfv.tfqi.faces import similarity_crop

    ref = ReferenceSet(**REFERENCE_SETS["facenet_160x160"])
    pts = np.asarray(ref.points)
    img = np.random.default_rng(0).integers(0, 255, (360, 360, 3), dtype=np.uint8)
    # the template scaled x2, turned 90 degrees ((x, y) -> (-y, x)) and shifted by (330, 20): the crop undoes it
    src = np.stack([330 - 2 * pts[:, 1], 20 + 2 * pts[:, 0]], axis=1)
    crop, window = similarity_crop(img, src, (0, 0, 360, 360), ref, "nearest")
    assert crop.shape == (160, 160, 3)
    assert window == pytest.approx((10.0, 20.0, 330.0, 340.0))
    for row, col in ((50, 60), (5, 150), (120, 7)):
        assert np.array_equal(crop[row, col], img[20 + 2 * col, 330 - 2 * row]), (row, col)


def test_landmark_columns_follow_the_detection_contract() -> None:
    from cdfv.detect.base import LANDMARK_COLUMNS
    from cdfv.tfqi.faces import LANDMARK_COLUMNS as TFQI_COLUMNS
    from cdfv.tfqi.faces import detection_landmarks

    assert TFQI_COLUMNS == LANDMARK_COLUMNS
    row = {c: float(i) for i, c in enumerate(LANDMARK_COLUMNS)}
    assert detection_landmarks(row).tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert detection_landmarks({**row, "nose_x": None}) is None


def test_tfqi_params_are_validated() -> None:
    from cdfv.config import ParamsError, parse_params

    ok = parse_params({}).tfqi
    assert ok.texture_qps == [22, 27, 32, 37, 42, 47, 51] and ok.faces.size == 160  # the paper's grid and crop
    bad = [
        ({"texture_qps": [22, 52]}, "outside the HEVC range"),
        ({"texture_qps": [27, 22]}, "ascending"),
        ({"feature": {"qps": [4, 4]}}, "duplicate"),
        ({"w1": [0.0]}, "outside (0, 1)"),
        ({"budgets": [-0.1]}, "must be > 0"),
        ({"faces": {"margin": 160}}, "smaller than size"),
        ({"faces": {"crop": "similarity", "reference": "nope"}}, "not in align.references"),
        ({"faces": {"crop": "similarity", "reference": "sphereface_96x112"}}, "96x112"),
    ]
    for tfqi, msg in bad:
        with pytest.raises(ParamsError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            parse_params({"tfqi": tfqi})


def test_facenet_weights_missing_names_the_file_and_the_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("facenet_pytorch")
    from cdfv.evaluate.recognisers import RecogniserError
    from cdfv.tfqi.features import FACENET_URL, FaceNetExtractor

    with pytest.raises(RecogniserError) as err:
        FaceNetExtractor(tmp_path / "none.pt", "cpu")
    assert str(tmp_path / "none.pt") in str(err.value) and FACENET_URL in str(err.value)
    (tmp_path / "bad.pt").write_bytes(b"not a state dict")
    with pytest.raises(RecogniserError, match="not a readable"):
        FaceNetExtractor(tmp_path / "bad.pt", "cpu")


def test_facenet_extractor_embeds_160_crops_to_unit_512_vectors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With weights of the right architecture (random here: the real ones are a download) the extractor loads
    them, drops the classifier head, and maps 160x160 crops to 512-d unit vectors."""
    pytest.importorskip("facenet_pytorch")
    import torch
    from facenet_pytorch import InceptionResnetV1

    from cdfv.tfqi.features import FaceNetExtractor, embed_images

    torch.manual_seed(0)
    net = InceptionResnetV1(classify=True, num_classes=7).eval()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    ext = FaceNetExtractor(tmp_path / "w.pt", "cpu")
    crops = [np.random.default_rng(i).integers(0, 255, (160, 160, 3), dtype=np.uint8) for i in range(2)]
    f = embed_images(ext, crops)
    assert f.shape == (2, 512) and np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    x = (torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() - 127.5) / 128.0
    with torch.inference_mode():
        net.classify = False
        assert np.allclose(f, net(x).numpy(), atol=1e-5)  # FaceNet's standardisation, embedding head


def test_workspaces_make_a_relative_facenet_weights_path_absolute() -> None:
    from pathlib import Path

    from cdfv.workspace import profile_params

    repo = Path(__file__).resolve().parents[2]
    data = profile_params(repo, None, {"tfqi": {"feature": {"facenet_weights": "../weights/facenet.pt"}}})
    assert data["tfqi"]["feature"]["facenet_weights"] == str((repo / "../weights/facenet.pt").resolve())
