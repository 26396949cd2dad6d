"""Identity-disjoint LFW train/test split (Xiao et al. 2023, §4 Table 1: ≈9k train images of ≈4k identities,
≈4k test images of ≈2k identities).

Identities are shuffled with a seeded generator and moved to the test side, in that order, until it
holds at least ``test_fraction`` of the images; every other identity trains. No identity is on both sides.
:func:`run_xiao_split` is the DVC stage ``xiao_split`` (I/O at the edge: ``images.parquet`` in, ``split.json`` out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cdfv import paths
from cdfv.config import Params
from cdfv.errors import CdfvError
from cdfv.io import read_parquet, write_json_atomic


class SplitError(CdfvError, ValueError):
    """An identity split that cannot be made as asked (too few identities), or a split file that is missing or
    malformed (:func:`cdfv.xiao.evaluate.read_split`)."""


def split_identities(identities: Iterable[str], seed: int, test_fraction: float) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}``, sorted identity names, from one identity label per image.

    Deterministic in ``seed`` (numpy PCG64) and independent of the order of ``identities``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test_fraction must lie in (0, 1), not {test_fraction}")
    counts = Counter(identities)
    if len(counts) < 2:
        raise SplitError(f"an identity-disjoint split needs >= 2 identities, got {len(counts)}")
    names = sorted(counts)
    order = np.random.default_rng(seed).permutation(len(names))
    target = test_fraction * sum(counts.values())
    test: list[str] = []
    held = 0
    for i in order:
        if held >= target or len(test) == len(names) - 1:
            break
        test.append(names[i])
        held += counts[names[i]]
    test_set = set(test)
    return {"train": [n for n in names if n not in test_set], "test": sorted(test_set)}


# --- stage xiao_split ---------------------------------------------------------------------------
def run_xiao_split(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Split the LFW identities of ``images.parquet`` (stage ``ingest_lfw``); returns counts."""
    p = params.xiao_split
    images = read_parquet(root / paths.LFW_IMAGES, "LFW images", stage="ingest_lfw")
    labels = images.column("identity").to_pylist()
    split = split_identities(labels, p.seed, p.test_fraction)
    write_json_atomic(root / paths.xiao_split(), {"seed": p.seed, **split})
    sides = {side: set(split[side]) for side in ("train", "test")}
    return {
        f"{side}_{what}": n
        for side, ids in sides.items()
        for what, n in (("identities", len(ids)), ("images", sum(lab in ids for lab in labels)))
    }
