"""Identity-disjoint LFW train/test split (Xiao et al. 2023, §4 Table 1: ≈9k train images of ≈4k identities,
≈4k test images of ≈2k identities).

Pure logic: identities are shuffled with a seeded generator and moved to the test side, in that order, until it
holds at least ``test_fraction`` of the images; every other identity trains. No identity is on both sides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np


class SplitError(ValueError):
    """The images cannot be split as asked (too few identities)."""


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
