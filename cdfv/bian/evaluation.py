"""LFW View-2 evaluation of the coded sets of Bian et al. and the ``report_bian`` entry point."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from cdfv import paths
from cdfv.bian.models import to_unit
from cdfv.bian.points import BianError, code_stage, configured_points, parse_point
from cdfv.bian.train import pick_device
from cdfv.chunks import chunked
from cdfv.config import Params, ParamsError
from cdfv.io import (
    read_parquet,
    read_rgb,
    write_bytes_atomic,
    write_parquet_atomic,
)
from cdfv.results import MetricKind, write_results

#: declared metrics of ``eval_lfw_bian_*`` (Table 1: size of the coded LFW set and accuracy; timings in the details)
BIAN_EVAL_KIND = MetricKind("bian_eval", ("accuracy", "tar_far_1e-3", "tar_far_1e-2", "eer", "auc", "size_mb", "bpp"))


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
def recogniser_file(point: str) -> Path:
    """The sphere20 a point is scored with: the joint model's own for ``*_joint``, else ``bian_sphere20``'s."""
    kind, channels, model = parse_point(point)
    if kind == "compnet" and model == "joint":
        return paths.bian_model_dir("joint", channels) / "model.pt"
    return paths.bian_model_dir("sphere20") / "model.pt"


@torch.no_grad()
def embed(sphere20: torch.nn.Module, images: list[np.ndarray], device: torch.device, flip: bool) -> np.ndarray:
    """sphere20 features of uint8 faces (concatenated with the mirrored face's when ``flip``)."""
    x = to_unit(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(device))
    f = sphere20(x).float()
    if flip:
        f = torch.cat([f, sphere20(x.flip(-1)).float()], dim=1)
    return f.cpu().numpy()


def run_bian_eval(params: Params, point: str, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``eval_lfw_bian_*``: LFW View 2 on the decoded faces of ``point`` (both images of each pair)."""
    from cdfv.bian.models import BianNet, Sphere20
    from cdfv.bian.train import load_net
    from cdfv.evaluate import metrics as M
    from cdfv.evaluate.score import score_pairs
    from cdfv.evaluate.stage import roc_csv

    if point not in configured_points(params):
        raise ParamsError(
            f"point {point!r} is not configured (bian.channels / bian.codecs): {configured_points(params)}"
        )
    t0 = time.perf_counter()
    pairs = read_parquet(root / paths.LFW_PAIRS, "LFW View-2 pairs", "ingest_lfw")
    index = read_parquet(root / paths.bian_point_index(point), f"LFW coded by {point}", code_stage(point)).to_pylist()
    by_id = {r["image_id"]: r for r in index}
    left, right = pairs.column("left_id").to_pylist(), pairs.column("right_id").to_pylist()
    need = sorted(set(left) | set(right))
    bad = [i for i in need if by_id.get(i, {}).get("status") != "ok"]
    if bad:
        raise BianError(
            f"{len(bad)} pair image(s) have no decoded face in {paths.bian_point_index(point)} (e.g. {bad[:5]}); "
            f"rerun `dvc repro {code_stage(point)}` with encode.on_error: fail to see why"
        )
    net, _ = load_net(root / recogniser_file(point), params)
    sphere20 = net.sphere20 if isinstance(net, BianNet) else net
    assert isinstance(sphere20, Sphere20)
    device = pick_device(params.bian.device)
    sphere20.to(device)
    t_embed = time.perf_counter()
    emb: dict[str, np.ndarray] = {}
    for part in tqdm(chunked(need, params.bian.batch_size), desc=f"sphere20 {point}", unit="batch"):
        feats = embed(sphere20, [read_rgb(root / by_id[i]["decoded"]) for i in part], device, params.bian.eval_flip)
        emb.update(zip(part, feats))
    t_embed = time.perf_counter() - t_embed
    scores = score_pairs(left, right, emb, emb, pairs.column("pair_id").to_pylist())
    labels = np.asarray(pairs.column("same").to_pylist(), dtype=bool)
    folds = np.asarray(pairs.column("fold").to_pylist())
    out = M.verification_metrics(labels, scores, folds, rule=params.eval.tar_rule)
    ok = [r for r in index if r["status"] == "ok"]
    result = {
        "accuracy": out["accuracy"],
        "tar_far_1e-3": out["tar_far_1e-3"],
        "tar_far_1e-2": out["tar_far_1e-2"],
        "eer": out["eer"],
        "auc": out["auc"],
        "size_mb": sum(r["bytes"] for r in ok) / 1e6,  # the whole coded LFW set, as Table 1
        "bpp": float(np.mean([r["bpp"] for r in ok])),
    }
    info = {
        "point": point,
        "recogniser": str(recogniser_file(point)),
        "images_coded": len(ok),
        "n_pairs": int(labels.size),
        "accuracy_std": out["accuracy_std"],
        "n_folds": out["n_folds"],
        "tar_rule": params.eval.tar_rule,
        "eval_flip": params.bian.eval_flip,
        "embed_ms_per_image": 1000.0 * t_embed / max(len(need), 1),
        "seconds": round(time.perf_counter() - t0, 3),
        "device": str(device),
    }
    d = root / paths.bian_eval_dir(point)
    table = pa.table(
        {"pair_id": pairs.column("pair_id"), "fold": pairs.column("fold"), "same": labels, "score": scores}
    )
    write_parquet_atomic(d / "scores.parquet", table)
    write_bytes_atomic(root / paths.BIAN_ROC_PLOTS / f"{point}.csv", roc_csv(labels, scores).encode())
    return write_results(root, paths.bian_eval_json(point), BIAN_EVAL_KIND, result, info)
