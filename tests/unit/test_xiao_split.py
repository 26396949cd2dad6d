"""Identity-disjoint LFW split of Xiao et al. 2023 (§4 Table 1) and its stage ``xiao_split``."""

from __future__ import annotations

import json
import random
from collections import Counter

import pyarrow as pa
import pytest

from cdfv import paths, schemas
from cdfv.config import parse_params
from cdfv.io import write_parquet_atomic
from cdfv.xiao.split import SplitError, run_xiao_split, split_identities


def _lfw_like() -> list[str]:
    """One label per image with LFW's shape: 5749 identities, 13233 images, 4069 of them single-image,
    a Zipf-like tail plus one identity with 530 (the published LFW statistics)."""
    counts = [1] * 4069 + [530]
    rest, n_rest = 13233 - 4069 - 530, 5749 - 4069 - 1
    rng = random.Random(0)
    extra = [2] * n_rest
    weights = [1 / (i + 1) for i in range(n_rest)]  # Zipf-like: a few identities hold many images
    for i in rng.choices(range(n_rest), weights, k=rest - 2 * n_rest):
        extra[i] += 1
    counts += extra
    return [f"Person_{i:04d}" for i, c in enumerate(counts) for _ in range(c)]


def test_disjoint_complete_sorted_and_share() -> None:
    labels = _lfw_like()
    counts = Counter(labels)
    assert len(counts) == 5749 and len(labels) == 13233
    s = split_identities(labels, seed=2023, test_fraction=0.3)
    train, test = s["train"], s["test"]
    assert not set(train) & set(test)
    assert set(train) | set(test) == set(counts)
    assert train == sorted(train) and test == sorted(test)
    held = sum(counts[t] for t in test)
    # the test side holds at least the share asked, and no more than one identity beyond it
    assert held >= 0.3 * len(labels)
    assert held - max(counts[t] for t in test) < 0.3 * len(labels)
    # Xiao et al. Table 1 (LFW): 9k train images / 4k identities, 4k test images / 2k identities
    assert round((len(labels) - held) / 1000) == 9 and round(held / 1000) == 4
    assert round(len(train) / 1000) == 4 and round(len(test) / 1000) == 2


def test_deterministic_order_free_and_seeded() -> None:
    labels = _lfw_like()
    a = split_identities(labels, seed=7, test_fraction=0.3)
    shuffled = labels[:]
    random.Random(1).shuffle(shuffled)
    assert split_identities(shuffled, seed=7, test_fraction=0.3) == a
    assert split_identities(labels, seed=8, test_fraction=0.3) != a


@pytest.mark.parametrize(("labels", "fraction"), [(["A", "A"], 0.3), (["A", "B"], 0.0), (["A", "B"], 1.0)])
def test_bad_input_is_named(labels: list[str], fraction: float) -> None:
    with pytest.raises(SplitError):
        split_identities(labels, seed=0, test_fraction=fraction)


def test_two_identities_always_one_each_side() -> None:
    s = split_identities(["A"] * 9 + ["B"], seed=0, test_fraction=0.99)
    assert len(s["train"]) == 1 and len(s["test"]) == 1


def test_stage_writes_the_shared_schema(tmp_path) -> None:
    labels = ["Ann", "Ann", "Bob", "Cid", "Cid", "Cid", "Dee", "Eve"]
    rows = [
        {"image_id": f"{n}/{n}_{i:04d}", "identity": n, "path": "x.png", "width": 250, "height": 250, "sha256": ""}
        for i, n in enumerate(labels)
    ]
    write_parquet_atomic(
        tmp_path / paths.LFW_IMAGES, pa.Table.from_pylist(rows, schemas.LFW_IMAGES), schemas.LFW_IMAGES
    )
    params = parse_params({"xiao_split": {"seed": 5, "test_fraction": 0.25}})
    m = run_xiao_split(params, root=tmp_path)
    out = json.loads((tmp_path / "data/xiao/split.json").read_text())
    assert set(out) == {"seed", "train", "test"} and out["seed"] == 5
    assert sorted(out["train"] + out["test"]) == sorted(set(labels))
    assert m["train_images"] + m["test_images"] == len(labels)
    assert m["test_images"] >= 2


def test_stage_names_the_missing_input(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro ingest_lfw"):
        run_xiao_split(parse_params({}), root=tmp_path)


def test_params_are_strict() -> None:
    with pytest.raises(ValueError, match="xiao_split"):
        parse_params({"xiao_split": {"seed": 1, "test_fration": 0.3}})
