"""Stages ``eval_gallery@<model>`` (all identities) and ``eval_gallery_test@<model>`` (the test identities of
the identity split: codecs trained on LFW identities): Xiao et al.'s gallery FRR@FAR beside the View-2 numbers
(docs/xiao.md). The split itself, stage ``xiao_split``, is :func:`cdfv.xiao.split.run_xiao_split`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cdfv import paths
from cdfv.config import Params
from cdfv.evaluate.solutions import parse_solution
from cdfv.io import read_parquet
from cdfv.results import MetricKind, read_results, write_results
from cdfv.xiao.evaluate import gallery_metrics, read_split

#: ``xiao/gallery/<model>.json``: FRR at FAR 1 % / 0.1 % (gallery protocol), View-2 TAR@1e-3, EER, bpp
GALLERY_KIND = MetricKind("xiao_gallery", ("frr_far_1e-2", "frr_far_1e-3", "tar_far_1e-3", "eer", "bpp"))


def run_eval_gallery(params: Params, model: str, test: bool = False, root: Path = Path(".")) -> dict[str, Any]:
    """Score ``model``'s eval_lfw_* probe embeddings with the gallery protocol; add its View-2 metrics.

    ``test``: score only the test identities of the identity split (``xiao.test_models``: the codec trained on
    LFW identities); the result says which subset was scored.
    """
    x = params.xiao
    listed, key = (x.test_models, "test_models") if test else (x.models, "models")
    if model not in listed:
        raise ValueError(f"model {model!r} is not listed in params.yaml xiao.{key} ({listed})")
    sol = parse_solution(model)
    stage = f"eval_lfw_{sol.recogniser.lower()}@{sol.codec}" if sol.codec else "eval_lfw_*_anchor"
    emb = read_parquet(root / paths.eval_dir(model) / "embeddings.parquet", f"{model} embeddings", stage)
    split = read_split(root / paths.xiao_split()) if test else None
    out = gallery_metrics(emb, x.gallery_per_identity, tuple(x.far_targets), split, params.eval.tar_rule)
    view2 = read_results(root, paths.eval_json(model), stage)
    metrics = {k: out.pop(k, None) for k in ("frr_far_1e-2", "frr_far_1e-3")}
    metrics.update({k: view2.get(k) for k in ("tar_far_1e-3", "eer", "bpp")})
    details = {"model": model, "series": sol.series, "codec": sol.codec, "recogniser": sol.recogniser, **out}
    return write_results(root, paths.xiao_gallery_json(model, test), GALLERY_KIND, metrics, details)
