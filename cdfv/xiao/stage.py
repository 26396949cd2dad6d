"""DVC entry points of Xiao et al. 2023 (docs/codec-training.md): ``xiao_split`` writes the identity-disjoint LFW
split ``data/xiao/split.json`` = ``{"seed": int, "train": [identity, ...], "test": [identity, ...]}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cdfv import paths
from cdfv.config import Params
from cdfv.io import read_parquet, write_json_atomic


def run_xiao_split(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Split the LFW identities of ``images.parquet`` (stage ``ingest_lfw``); returns counts."""
    from cdfv.xiao.split import split_identities

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
