"""Gallery FRR@FAR of one solution from the embeddings its ``eval_lfw_*`` stage wrote (Xiao et al. §4).

The decoded-probe embeddings (role ``probe``) of every LFW View-2 image a solution scored are regrouped by
identity and run through :mod:`cdfv.evaluate.gallery`. With ``split`` given (an identity-disjoint split
``{"seed": int, "train": [...], "test": [...]}``), only the test identities are scored: a codec trained on
LFW identities must not be judged on faces it saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cdfv.evaluate.gallery import frr_at_far, gallery_scores
from cdfv.evaluate.metrics import TarRule, far_key
from cdfv.xiao.split import SplitError


def read_split(path: Path) -> dict[str, Any]:
    """The identity split, validated: ``seed`` int, disjoint ``train`` / ``test`` identity lists."""
    if not path.is_file():
        raise SplitError(f"{path}: identity split not found; run `dvc repro xiao_split` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SplitError(f"{path}: not JSON ({e}); rerun `dvc repro xiao_split`") from None
    if not (
        isinstance(data, dict)
        and isinstance(data.get("seed"), int)
        and all(isinstance(data.get(k), list) for k in ("train", "test"))
    ):
        raise SplitError(f"{path}: expected {{'seed': int, 'train': [identity, ...], 'test': [identity, ...]}}")
    both = set(data["train"]) & set(data["test"])
    if both:
        raise SplitError(f"{path}: {len(both)} identities in both train and test, e.g. {sorted(both)[:3]}")
    return data


def gallery_metrics(
    embeddings: pa.Table,
    n: int = 1,
    far_targets: tuple[float, ...] = (1e-2, 1e-3),
    split: dict[str, Any] | None = None,
    rule: TarRule = "floor",
) -> dict[str, Any]:
    """``frr_far_<t>`` per FAR target, plus the counts and the subset scored (``all`` or ``test``)."""
    role = embeddings.column("role").to_pylist()
    keep_rows = [i for i, r in enumerate(role) if r == "probe"]
    ids = [embeddings.column("image_id")[i].as_py() for i in keep_rows]
    emb = np.asarray([embeddings.column("embedding")[i].as_py() for i in keep_rows], dtype=np.float64)
    identity = [i.split("/", 1)[0] for i in ids]
    keep = None if split is None else set(split["test"])
    s = gallery_scores(emb, identity, ids, n=n, keep=keep)
    out: dict[str, Any] = {far_key(t).replace("tar_", "frr_", 1): frr_at_far(s, t, rule) for t in far_targets}
    scored = {identity[i] for i in s.query}
    out.update(
        subset="all" if split is None else "test",
        n_queries=int(s.query.size),
        n_query_identities=len(scored),
        gallery_per_identity=n,
    )
    return out
