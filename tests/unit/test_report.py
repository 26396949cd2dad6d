"""Fig. 4 / Table 7 regeneration from eval + complexity metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cdfv.evaluate import report as R

RATES = {1: 0.10, 3: 0.17, 6: 0.38, 8: 0.65}


def _result(model: str, series: str, bpp: float | None, tar3: float, pipeline: str = "B2", fb: int = 0) -> dict:
    return {
        "model": model, "series": series, "pipeline": pipeline, "bpp": bpp, "tar_far_1e-3": tar3,
        "tar_far_1e-2": min(1.0, tar3 + 0.05), "eer": 0.05, "auc": 0.99, "accuracy": 0.95, "accuracy_std": 0.01,
        "n_pairs": 6000, "n_fallback_pairs": fb,
    }


@pytest.fixture
def results() -> list[dict]:
    out = [_result("ResNet50_Original_Anchor", "ResNet50_Original_Anchor", None, 0.920, "A", fb=3)]
    for q, r in RATES.items():
        out.append(_result(f"ResNet50_Balle2018_mse_Q{q}", "ResNet50_Balle2018_mse", r, 0.80 + 0.1 * np.log10(r * 10)))
        # cResNet39: same curve at half the rate => BD-rate -50 %
        out.append(_result(f"cResNet39_Balle2018_mse_Q{q}", "cResNet39_Balle2018_mse", r / 2, 0.80 + 0.1 * np.log10(r * 10), "C"))
        out.append(_result(f"Dlib_JPEG_Q{q}", "Dlib_JPEG", r * 1.5, 0.5, "B2"))
    return out


def test_table7_has_paper_values_and_differences(results: list[dict]) -> None:
    complexity = {
        "ResNet50_Original_Anchor": {"gmac": 3.901, "gmac_paper_convention": 3.901, "kmac_per_px": 77.7,
                                     "ms_per_batch": 900.0, "ms_per_pair": 14.0, "device": "cpu"},
        "cResNet39_Balle2018_mse_Q1": {"gmac": 2.366, "gmac_paper_convention": 2.366, "kmac_per_px": 47.2,
                                       "ms_per_batch": 160.0, "ms_per_pair": 2.5, "device": "cpu"},
    }
    md = R.table7_markdown(results, complexity)
    row = next(line for line in md.splitlines() if line.startswith("| ResNet50_Original_Anchor |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # ours 3.90, paper 3.89, diff +0.01 ; TAR ours 0.920 paper 0.910 diff +0.010
    assert cells[1:5] == ["3.90", "3.90", "3.89", "+0.01"]
    assert cells[11:14] == ["0.920", "0.910", "+0.010"]
    assert cells[14] == "–" and cells[15] == "–"  # the original anchor has no rate
    # every paper row present with its paper TAR@1e-3, incl. those not evaluated
    for model, vals in R.PAPER_TABLE7.items():
        line = next(x for x in md.splitlines() if x.startswith(f"| {model} |"))
        assert f"| {vals[4]:.3f} |" in line
    assert "ours 5.60x, paper 4.81x" in md
    assert "Dlib_JPEG_Q1" in md  # other solutions listed
    assert "ResNet50_Original_Anchor: 3" in md  # fallback pairs counted
    bd = next(line for line in md.splitlines() if line.startswith("| cResNet39_Balle2018_mse |"))
    assert "| -50.0 |" in bd


def test_bd_rows_known_offsets(results: list[dict]) -> None:
    rows = {test: (rate, met) for _, test, rate, met, _ in R.bd_rows(results, "ResNet50_Balle2018_mse")}
    assert rows["cResNet39_Balle2018_mse"][0] == pytest.approx(-50.0, abs=1e-6)
    assert rows["cResNet39_Balle2018_mse"][1] == pytest.approx(0.1 * np.log10(2), abs=1e-9)
    assert rows["Dlib_JPEG"][0] is None  # flat TAR: no metric overlap -> BD-rate undefined, noted
    assert R.bd_rows(results, "NoSuchSeries") == []


def test_write_report_outputs(tmp_path: Path, results: list[dict]) -> None:
    d = tmp_path / "reports" / "metrics" / "eval"
    d.mkdir(parents=True)
    for r in results:
        (d / f"{r['model']}.json").write_text(json.dumps(r))
    out = R.write_report(tmp_path)
    files = sorted(p.name for p in out["plots"].iterdir())
    assert files == ["Dlib_JPEG.csv", "ResNet50_Balle2018_mse.csv", "cResNet39_Balle2018_mse.csv"]
    rows = list(csv.DictReader((out["plots"] / "ResNet50_Balle2018_mse.csv").open()))
    assert [float(r["bpp"]) for r in rows] == sorted(RATES.values())
    assert set(rows[0]) == set(R.CSV_FIELDS)
    with Image.open(out["figure"]) as im:
        assert im.format == "PNG" and im.size[0] > 500
    assert "Table 7" in out["table"].read_text()
    assert "not measured" in out["table"].read_text()  # no complexity.json yet


def test_write_report_without_results_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro eval_lfw"):
        R.write_report(tmp_path)


def test_metrics_table_markdown(results: list[dict]) -> None:
    md = R.metrics_table_markdown(results[:2])
    lines = md.strip().splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    assert "0.9500 ± 0.0100" in lines[2]
