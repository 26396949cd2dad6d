"""The paper's centre heuristic on synthetic candidate lists (thesis §5.4)."""

from __future__ import annotations

import numpy as np
import pytest

from cdfv.config import ParamsError, parse_params
from cdfv.detect import fallback_box, schedule
from cdfv.detect.base import Face
from cdfv.detect.heuristic import centre_margin, choose_face, threshold_steps

LM = np.zeros((5, 2))
W = H = 250  # LFW: centre (125, 125)


def face(score: float, box: tuple[float, float, float, float]) -> Face:
    return Face(score=score, box=box, landmarks=LM)


def test_schedule_is_the_papers_58_steps_without_float_drift() -> None:
    steps = threshold_steps(0.985, 0.7, 0.005)
    assert len(steps) == 58  # (985 - 700) / 5 + 1
    assert steps[0] == 0.985 and steps[-1] == 0.7  # exact, not 0.7000000000000004
    assert steps[1] == 0.98 and steps[2] == 0.975
    assert all(a > b for a, b in zip(steps, steps[1:]))
    # naive repeated subtraction drifts: the reason for integer steps
    t, naive = 0.985, []
    while t >= 0.7:
        naive.append(t)
        t -= 0.005
    assert naive[-1] != 0.7 or len(naive) != 58


def test_schedule_other_grids() -> None:
    assert threshold_steps(1.0, -0.5, 0.05)[-1] == -0.5
    assert len(threshold_steps(1.0, -0.5, 0.05)) == 31
    assert threshold_steps(0.9, 0.9, 0.01) == (0.9,)
    assert threshold_steps(0.985, 0.7, 0.01)[-1] == 0.705  # stop off-grid: last step above it
    with pytest.raises(ValueError):
        threshold_steps(0.7, 0.985, 0.005)
    with pytest.raises(ValueError):
        threshold_steps(0.9, 0.7, 0.0)


def test_score_exactly_at_lowest_threshold_is_accepted() -> None:
    c = choose_face([face(0.7, (100, 100, 150, 150))], W, H)
    assert c.status == "ok" and c.index == 0 and c.threshold_used == 0.7


def test_score_just_below_lowest_threshold_is_no_face() -> None:
    c = choose_face([face(0.6999999, (100, 100, 150, 150))], W, H)
    assert c.status == "no_face" and c.index is None and c.threshold_used is None and c.n_containing == 0


def test_single_face_containing_centre() -> None:
    c = choose_face([face(0.999, (60, 50, 190, 200))], W, H)
    assert (c.status, c.index, c.threshold_used, c.n_containing) == ("ok", 0, 0.985, 1)


def test_faces_not_containing_centre_are_discarded_even_if_confident() -> None:
    faces = [face(0.9999, (0, 0, 100, 100)), face(0.75, (110, 110, 140, 140))]
    c = choose_face(faces, W, H)
    assert c.index == 1 and c.threshold_used == 0.75


def test_no_face_contains_centre() -> None:
    faces = [face(0.99, (0, 0, 100, 100)), face(0.98, (150, 150, 250, 250))]
    assert choose_face(faces, W, H).status == "no_face"
    assert choose_face([], W, H).status == "no_face"


def test_walk_down_stops_at_first_threshold_with_a_centre_face() -> None:
    # the high-score face wins as soon as it passes, before the lower one is even considered
    faces = [face(0.80, (120, 120, 130, 130)), face(0.90, (0, 0, 250, 250))]
    c = choose_face(faces, W, H)
    assert c.index == 1 and c.threshold_used == 0.9 and c.n_containing == 1


def test_several_at_same_threshold_take_most_centred() -> None:
    # both pass at 0.985; face 1 has the larger minimal distance from the centre to its edges
    faces = [face(0.99, (120, 20, 240, 240)), face(0.991, (60, 60, 190, 190))]
    c = choose_face(faces, W, H)
    assert c.index == 1 and c.n_containing == 2
    assert centre_margin(faces[0].box, 125, 125) == 5 and centre_margin(faces[1].box, 125, 125) == 65


def test_most_centred_beats_higher_score_within_the_same_step() -> None:
    faces = [face(0.9999, (124, 124, 250, 250)), face(0.986, (100, 100, 150, 150))]
    c = choose_face(faces, W, H)
    assert c.index == 1


def test_ties_on_margin_go_to_higher_score_then_first() -> None:
    box = (100, 100, 150, 150)
    assert choose_face([face(0.99, box), face(0.995, box)], W, H).index == 1
    assert choose_face([face(0.99, box), face(0.99, box)], W, H).index == 0
    # same score, different but equally centred boxes
    faces = [face(0.99, (95, 100, 150, 160)), face(0.99, (100, 100, 150, 150))]
    assert choose_face(faces, W, H).index == 0


def test_centre_on_box_edge_counts_as_contained() -> None:
    c = choose_face([face(0.99, (125, 125, 200, 200))], W, H)
    assert c.status == "ok"
    c = choose_face([face(0.99, (125.0001, 0, 200, 200))], W, H)
    assert c.status == "no_face"


def test_odd_image_size_uses_float_centre() -> None:
    # 251 wide: centre x = 125.5, so a box ending at 125 does not contain it
    assert choose_face([face(0.99, (0, 0, 125, 251))], 251, 251).status == "no_face"
    assert choose_face([face(0.99, (0, 0, 126, 251))], 251, 251).status == "ok"


def test_dlib_scale_schedule() -> None:
    faces = [face(-0.3, (100, 100, 150, 150))]
    c = choose_face(faces, W, H, start=1.0, stop=-0.5, step=0.05)
    assert c.status == "ok" and c.threshold_used == -0.3
    assert choose_face(faces, W, H).status == "no_face"  # paper's schedule stops at 0.7


def test_exhaustive_matches_direct_definition() -> None:
    """Random candidate sets: the walk-down equals its closed form."""
    rng = np.random.default_rng(0)
    steps = threshold_steps(0.985, 0.7, 0.005)
    for _ in range(500):
        n = int(rng.integers(0, 6))
        faces = []
        for _ in range(n):
            x1, y1 = rng.integers(0, 200, size=2)
            w, h = rng.integers(10, 250, size=2)
            faces.append(face(float(rng.uniform(0.5, 1.0)), (x1, y1, x1 + w, y1 + h)))
        c = choose_face(faces, W, H)
        inside = [i for i, f in enumerate(faces) if centre_margin(f.box, 125, 125) >= 0]
        passing = [t for t in steps if any(faces[i].score >= t for i in inside)]
        if not passing:
            assert c.status == "no_face"
            continue
        t = passing[0]
        kept = [i for i in inside if faces[i].score >= t]
        best = max(centre_margin(faces[i].box, 125, 125) for i in kept)
        assert c.threshold_used == t and c.n_containing == len(kept)
        assert centre_margin(faces[c.index].box, 125, 125) == best


def test_fallback_boxes() -> None:
    assert fallback_box(250, 250, "whole_image") == (0, 0, 250, 250)
    assert fallback_box(250, 250, "centre_crop", 0.6) == (50, 50, 200, 200)
    assert fallback_box(300, 200, "centre_crop", 0.5) == (100, 50, 200, 150)
    with pytest.raises(ValueError):
        fallback_box(250, 250, "nope")


def test_params_defaults_are_the_papers_and_backend_is_validated() -> None:
    p = parse_params({})
    assert (p.detect.thresholds.start, p.detect.thresholds.stop, p.detect.thresholds.step) == (0.985, 0.7, 0.005)
    assert p.detect.backend == "retinaface" and schedule(p.detect) is p.detect.thresholds
    assert schedule(parse_params({"detect": {"backend": "dlib"}}).detect).stop == -0.5
    with pytest.raises(ParamsError, match="detect.backend"):
        parse_params({"detect": {"backend": "yolo"}})
    with pytest.raises(ParamsError, match="detect.thresholds"):
        parse_params({"detect": {"thresholds": {"start": 0.5, "stop": 0.7}}})
