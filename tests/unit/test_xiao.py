"""Xiao et al.: the paper's numbers, the identity split reader, gallery FRR@FAR from eval embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cdfv import schemas
from cdfv.io import read_parquet, write_parquet_atomic
from cdfv.xiao import paper
from cdfv.xiao.evaluate import SplitError, gallery_metrics, read_split


def test_paper_constants() -> None:
    pts = {p.method: (p.bpp, p.frr) for p in paper.FIG1_POINTS}
    assert pts == {"HEVC": (0.76, 0.0125), "REC": (0.16, 0.0416), "IPR": (0.29, 0.0110), "IP": (0.22, 0.0145)}
    assert paper.IPR_RATE_FRACTION_OF_HEVC == 0.38
    assert paper.FAR_TARGETS == (1e-2, 1e-3) and paper.LFW_GALLERY_PER_IDENTITY == 1


ANGLES = {"A/A_0001": 0, "A/A_0002": 10, "A/A_0003": 60, "B/B_0001": 90, "B/B_0002": 100, "C/C_0001": 180}


def _embeddings(tmp_path: Path) -> pa.Table:
    """An eval embeddings Parquet as eval_lfw_* writes it: decoded probes plus (ignored) original references."""
    rows = [(i, "probe", [np.cos(np.radians(a)), np.sin(np.radians(a))]) for i, a in ANGLES.items()]
    rows += [(i, "reference", [1.0, 0.0]) for i in ANGLES]  # would break every score if read
    t = pa.table(
        {
            "image_id": [r[0] for r in rows],
            "role": [r[1] for r in rows],
            "embedding": [np.asarray(r[2], np.float32).tolist() for r in rows],
        }
    )
    write_parquet_atomic(tmp_path / "embeddings.parquet", t, schemas.LFW_EMBEDDINGS)
    return read_parquet(tmp_path / "embeddings.parquet", "embeddings", "eval")


def test_gallery_metrics_all_and_test_subset(tmp_path: Path) -> None:
    emb = _embeddings(tmp_path)
    out = gallery_metrics(emb, n=1)
    # queries A_0002 (gen cos10, imp cos80), A_0003 (cos60 vs cos30), B_0002 (cos10 vs cos80): at FAR <= 1 %
    # the threshold sits above cos30, A_0003 is rejected
    assert out["frr_far_1e-2"] == pytest.approx(1 / 3) and out["frr_far_1e-3"] == pytest.approx(1 / 3)
    assert (out["subset"], out["n_queries"], out["n_query_identities"]) == ("all", 3, 2)
    split = {"seed": 0, "train": ["B"], "test": ["A", "C"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    out = gallery_metrics(emb, n=1, split=read_split(tmp_path / "split.json"))
    assert (out["subset"], out["n_queries"], out["frr_far_1e-2"]) == ("test", 2, 0.0)


def test_split_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SplitError, match="dvc repro xiao_split"):
        read_split(tmp_path / "missing.json")
    (tmp_path / "s.json").write_text(json.dumps({"seed": 0, "train": ["A"], "test": ["A", "B"]}))
    with pytest.raises(SplitError, match="1 identities in both"):
        read_split(tmp_path / "s.json")
    (tmp_path / "s.json").write_text(json.dumps({"train": [], "test": []}))
    with pytest.raises(SplitError, match="expected"):
        read_split(tmp_path / "s.json")


def test_eval_gallery_stage_reads_eval_outputs_and_says_which_subset(tmp_path: Path) -> None:
    from cdfv import paths
    from cdfv.config import parse_params
    from cdfv.evaluate.stage import EVAL_KIND
    from cdfv.results import read_results, write_results
    from cdfv.xiao.stage import run_eval_gallery

    model = "ResNet50_HEVC_CRF23"
    params = parse_params({"xiao": {"models": [model], "test_models": [model]}})
    with pytest.raises(FileNotFoundError, match="eval_lfw_resnet50@HEVC_CRF23"):
        run_eval_gallery(params, model, root=tmp_path)
    (tmp_path / paths.eval_dir(model)).mkdir(parents=True)
    _embeddings(tmp_path / paths.eval_dir(model))
    view2 = {"tar_far_1e-3": 0.5, "tar_far_1e-2": 0.6, "eer": 0.1, "auc": 0.9, "accuracy": 0.8, "bpp": 0.76}
    write_results(tmp_path, paths.eval_json(model), EVAL_KIND, view2, {"model": model})
    r = run_eval_gallery(params, model, root=tmp_path)
    assert (r["subset"], r["frr_far_1e-2"], r["bpp"], r["eer"]) == ("all", pytest.approx(1 / 3), 0.76, 0.1)
    with pytest.raises(SplitError, match="xiao_split"):
        run_eval_gallery(params, model, test=True, root=tmp_path)
    (tmp_path / paths.xiao_split()).parent.mkdir(parents=True)
    (tmp_path / paths.xiao_split()).write_text(json.dumps({"seed": 1, "train": ["B"], "test": ["A", "C"]}))
    run_eval_gallery(params, model, test=True, root=tmp_path)
    t = read_results(tmp_path, paths.xiao_gallery_json(model, test=True))
    assert (t["subset"], t["n_queries"], t["frr_far_1e-2"]) == ("test", 2, 0.0)
    with pytest.raises(ValueError, match="xiao.models"):
        run_eval_gallery(params, "Dlib_HEVC_CRF23", root=tmp_path)


def test_report_xiao_paper_beside_ours_measure_and_not_run(tmp_path: Path) -> None:
    from cdfv import paths
    from cdfv.config import parse_params
    from cdfv.results import write_results
    from cdfv.xiao.report import method_of, run_report_xiao
    from cdfv.xiao.stage import GALLERY_KIND

    crf = {19: (1.0, 0.010), 23: (0.8, 0.012), 27: (0.5, 0.020), 31: (0.3, 0.040), 35: (0.2, 0.080)}
    models = [f"Dlib_HEVC_CRF{k}" for k in crf] + ["Dlib_JPEG_Q5"]
    params = parse_params({"xiao": {"models": models}})
    for k, (bpp, frr) in crf.items():
        m = {"frr_far_1e-2": frr, "frr_far_1e-3": 2 * frr, "tar_far_1e-3": 0.9, "eer": 0.01, "bpp": bpp}
        write_results(tmp_path, paths.xiao_gallery_json(f"Dlib_HEVC_CRF{k}"), GALLERY_KIND, m, {"subset": "all"})
    assert method_of("HEVC_CRF23") == "HEVC" and method_of("Xiao_L2_IPR_Q3") == "IPR" and method_of("JPEG_Q5") is None
    assert run_report_xiao(params, tmp_path) == {"points": 5, "not_run": 1}
    md = (tmp_path / paths.XIAO_REPORT).read_text()
    assert "| HEVC | 0.76 | 1.25 % | Dlib_HEVC_CRF23 (all) | 0.800 | 1.20 % |" in md
    assert "| IPR | 0.29 | 1.10 % | not run |" in md and "paper: 38 % on LFW" in md
    assert "| Dlib_HEVC_CRF |" in md and "anchor" in md and "Not run: Dlib_JPEG_Q5" in md
    assert (tmp_path / paths.XIAO_FIGURE).stat().st_size > 1000


def test_rate_at_frr_interpolates_log_rate() -> None:
    from cdfv.xiao.report import rate_at_frr

    curve = [{"frr_far_1e-2": 0.01, "bpp": 1.0}, {"frr_far_1e-2": 0.03, "bpp": 0.25}]
    assert rate_at_frr(curve, 0.02) == pytest.approx(0.5)  # geometric mean half-way
    assert rate_at_frr(curve, 0.05) is None
