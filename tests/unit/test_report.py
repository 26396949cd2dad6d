"""Fig. 4 / Table 7 regeneration from eval + complexity metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cdfv.evaluate import report as R

RATES = {1: 0.10, 3: 0.17, 6: 0.38, 8: 0.65}


def _result(model: str, series: str, bpp: float | None, tar3: float, pipeline: str = "B2", fb: int = 0) -> dict:
    return {
        "model": model,
        "series": series,
        "pipeline": pipeline,
        "bpp": bpp,
        "tar_far_1e-3": tar3,
        "tar_far_1e-2": min(1.0, tar3 + 0.05),
        "eer": 0.05,
        "auc": 0.99,
        "accuracy": 0.95,
        "accuracy_std": 0.01,
        "n_pairs": 6000,
        "n_fallback_pairs": fb,
    }


@pytest.fixture
def results() -> list[dict]:
    out = [_result("ResNet50_Original_Anchor", "ResNet50_Original_Anchor", None, 0.920, "A", fb=3)]
    for q, r in RATES.items():
        out.append(_result(f"ResNet50_Balle2018_mse_Q{q}", "ResNet50_Balle2018_mse", r, 0.80 + 0.1 * np.log10(r * 10)))
        # cResNet39: same curve at half the rate => BD-rate -50 %
        out.append(
            _result(
                f"cResNet39_Balle2018_mse_Q{q}", "cResNet39_Balle2018_mse", r / 2, 0.80 + 0.1 * np.log10(r * 10), "C"
            )
        )
        out.append(_result(f"Dlib_JPEG_Q{q}", "Dlib_JPEG", r * 1.5, 0.5, "B2"))
    return out


def _cx(gmac: float, conv: float, ms: float, e2e: float | None, repeats: int = 50) -> dict:
    return {
        "gmac": gmac,
        "gmac_paper_convention": conv,
        "kmac_per_px": gmac * 1e6 / 224**2,
        "kmac_per_px_paper_convention": conv * 1e6 / 224**2,
        "ms_per_batch": ms * 64,
        "ms_per_pair": ms,
        "e2e_ms_per_batch": None if e2e is None else e2e * 64,
        "e2e_ms_per_pair": e2e,
        "batch_pairs": 64,
        "repeats": repeats,
        "device": "CPU test",
    }


def _cells(md: str, model: str) -> list[str]:
    row = next(line for line in md.splitlines() if line.startswith(f"| {model} |"))
    return [c.strip() for c in row.strip("|").split("|")]


def test_table7_has_paper_values_and_differences(results: list[dict]) -> None:
    complexity = {
        "ResNet50_Original_Anchor": _cx(3.901, 3.901, 14.0, 20.0),
        "cResNet39_Balle2018_mse_Q1": _cx(2.366, 2.366, 2.5, 4.0),
    }
    md = R.table7_markdown(results, complexity)
    cells = _cells(md, "ResNet50_Original_Anchor")
    # GMAC ours true / paper conv. / paper / diff; kMAC/px true / paper conv. / paper
    assert cells[1:8] == ["3.90", "3.90", "3.89", "+0.01", "78", "78", "78"]
    # ms/batch net, e2e, paper; ms/pair net, e2e, paper
    assert cells[8:14] == ["896.0", "1280.0", "205.3", "14.000", "20.000", "3.216"]
    assert cells[14:17] == ["0.920", "0.910", "+0.010"]
    assert cells[17] == "–" and cells[18] == "–"  # the original anchor has no rate
    # every paper row present with its paper GMAC, kMAC/px, ms/pair and TAR@1e-3, incl. those not evaluated
    for model, vals in R.PAPER_TABLE7.items():
        c = _cells(md, model)
        assert (c[3], c[7], c[13], c[15]) == (f"{vals[0]:.2f}", f"{vals[1]:.0f}", f"{vals[3]:.3f}", f"{vals[4]:.3f}")
    assert "ours ×5.00 end-to-end, ×5.60 network only; paper ×4.81 (end-to-end)" in md
    assert "Dlib_JPEG_Q1" in md  # other solutions listed
    assert "ResNet50_Original_Anchor: 3" in md  # fallback pairs counted
    bd = next(line for line in md.splitlines() if line.startswith("| cResNet39_Balle2018_mse |"))
    assert "| -50.0 |" in bd


def test_table7_columns_say_their_convention(results: list[dict]) -> None:
    md = R.table7_markdown(results, {})
    head = next(line for line in md.splitlines() if line.startswith("| Model |"))
    for label in (
        "GMAC true",
        "GMAC paper conv.",
        "kMAC/px true",
        "kMAC/px paper conv.",
        "kMAC/px paper (paper conv.)",
        "ms/pair net",
        "ms/pair e2e",
        "ms/pair paper (e2e)",
    ):
        assert f"| {label} |" in head
    assert "GMAC / 224²" in md and "end-to-end per pair" in md


def test_table7_sentences_follow_complexity_json(results: list[dict]) -> None:
    """No hard-coded figure: the sentences change with complexity.json (known ratios)."""

    def table(dec_true: float, dec_conv: float, c39: float, e2e_anchor: float) -> str:
        return R.table7_markdown(
            results,
            {
                "ResNet50_Original_Anchor": _cx(3.9, 3.9, 10.0, e2e_anchor, repeats=7),
                "ResNet50_Balle2018_mse_Q1": _cx(dec_true, dec_conv, 12.0, 16.0, repeats=7),
                "cResNet39_Balle2018_mse_Q1": _cx(c39, c39, 2.0, 5.0, repeats=7),
            },
        )

    a, b = table(6.0, 13.5, 2.0, 15.0), table(8.0, 12.0, 4.0, 25.0)
    assert a != b
    assert "Balle2018_mse_Q1: the decoded anchor (g_s + ResNet50) is 6.00 GMAC" in a
    assert "13.50 in the paper's convention (output positions); the paper reports 13.55" in a
    assert "that is ×3.00 the MACs (×6.75 in the paper's convention; paper ×5.74)" in a
    assert "is 8.00 GMAC" in b and "that is ×2.00 the MACs (×3.00 in the paper's convention" in b
    assert "ours ×3.00 end-to-end, ×5.00 network only" in a and "ours ×5.00 end-to-end" in b
    assert "CPU test; mean of 7 batches of 64 pairs" in a
    for stale in ("6.3 GMAC", "≈×2.7", "≈6.3"):  # the old fixed sentence
        assert stale not in a and stale not in b
    empty = R.table7_markdown(results, {})
    assert "not measured" in empty and "GMAC with each ConvTranspose2d" not in empty


def test_bd_rows_known_offsets(results: list[dict]) -> None:
    rows = {test: (rate, met) for _, test, rate, met, _ in R.bd_rows(results, "ResNet50_Balle2018_mse")}
    assert rows["cResNet39_Balle2018_mse"][0] == pytest.approx(-50.0, abs=1e-6)
    assert rows["cResNet39_Balle2018_mse"][1] == pytest.approx(0.1 * np.log10(2), abs=1e-9)
    assert rows["Dlib_JPEG"][0] is None  # flat TAR: no metric overlap -> BD-rate undefined, noted
    assert R.bd_rows(results, "NoSuchSeries") == []


def _write_results(root: Path, results: list[dict], complexity: dict[str, dict]) -> None:
    """The eval / complexity stages' files: declared metrics + details (as cdfv.results writes them)."""
    from cdfv import paths
    from cdfv.complexity import COMPLEXITY_KEYS
    from cdfv.evaluate.stage import EVAL_KIND
    from cdfv.results import MetricKind, write_results

    for r in results:
        metrics = {k: r.get(k) for k in EVAL_KIND.keys}
        write_results(root, paths.eval_json(r["model"]), EVAL_KIND, metrics, {k: r[k] for k in r if k not in metrics})
    kind = MetricKind("complexity", COMPLEXITY_KEYS)
    for model, row in complexity.items():
        metrics = {k: row.get(k) for k in COMPLEXITY_KEYS}
        write_results(root, paths.complexity_json(model), kind, metrics, {k: row[k] for k in row if k not in metrics})


def test_write_report_outputs(tmp_path: Path, results: list[dict]) -> None:
    """Fig. 4 CSV (every line, one file), PNG and Table 7 from the results' metrics AND details."""
    complexity = {"ResNet50_Original_Anchor": _cx(3.901, 3.901, 14.0, 20.0)}
    _write_results(tmp_path, results, complexity)
    out = R.write_report(tmp_path)
    assert out["plots"] == tmp_path / "reports/plots/fig4.csv"
    rows = list(csv.DictReader(out["plots"].open()))
    assert list(rows[0]) == list(R.CSV_FIELDS)
    assert {r["series"] for r in rows} == {"Dlib_JPEG", "ResNet50_Balle2018_mse", "cResNet39_Balle2018_mse"}
    assert len(rows) == 3 * len(RATES)  # the anchor (no rate) is a horizontal line in the PNG, not a point
    resnet = [r for r in rows if r["series"] == "ResNet50_Balle2018_mse"]
    assert [float(r["bpp"]) for r in resnet] == sorted(RATES.values())
    assert [r["model"] for r in resnet] == [f"ResNet50_Balle2018_mse_Q{q}" for q in sorted(RATES)]
    with Image.open(out["figure"]) as im:
        assert im.format == "PNG" and im.size[0] > 500
    table = out["table"].read_text()
    cells = _cells(table, "ResNet50_Original_Anchor")
    assert cells[8:14] == ["896.0", "1280.0", "205.3", "14.000", "20.000", "3.216"]  # ms from the details
    assert "0.9500 ± 0.0100" in table  # accuracy (metrics) ± accuracy_std (details)
    assert "ResNet50_Original_Anchor: 3" in table  # fallback pairs (details)


def test_write_report_without_results_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro eval_lfw"):
        R.write_report(tmp_path)


def test_metrics_table_markdown(results: list[dict]) -> None:
    md = R.metrics_table_markdown(results[:2])
    lines = md.strip().splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    assert "0.9500 ± 0.0100" in lines[2]


def test_report_builds_from_the_metrics_that_exist_and_marks_the_rest(tmp_path: Path, results: list[dict]) -> None:
    """Without VGGFace2 only the Dlib rows exist: the report is still written, each configured solution
    without metrics is marked "not run: <why>" (its Table 7 cell and a section with the reasons)."""
    from cdfv.evaluate.stage import why_not_run

    dlib = [r for r in results if r["model"].startswith("Dlib_")]
    stale = {**dlib[0], "model": "ResNet50_Stale_Q1", "series": "ResNet50_Stale"}
    _write_results(tmp_path, [*dlib, stale], {})  # ResNet50_Stale_Q1: not configured, ignored
    models = ["ResNet50_Original_Anchor", "cResNet39_Balle2018_mse_Q3", *(r["model"] for r in dlib), "Dlib_JPEG_Q62"]
    out = R.write_report(tmp_path, models=models, why_not_run=why_not_run)
    table = out["table"].read_text()
    section = table.split("## Not run")[1].split("##")[0]
    assert (
        "- ResNet50_Original_Anchor: not run: eval_lfw_resnet50_anchor needs the trained ResNet50 "
        "(models/resnet50/model.pt from train_resnet50, which needs VGGFace2)"
    ) in section
    assert "- cResNet39_Balle2018_mse_Q3: not run: eval_lfw_cresnet39@Balle2018_mse_Q3 needs the trained" in section
    assert "- Dlib_JPEG_Q62: not run: eval_lfw_dlib@JPEG_Q62 wrote no metrics" in section
    assert section.count("- ") == 3
    row = next(line for line in table.splitlines() if line.startswith("| cResNet39_Balle2018_mse_Q3 |"))
    assert "| not run |" in row
    assert "| Dlib_JPEG_Q1 |" in table and "ResNet50_Stale" not in table
    assert {r["series"] for r in csv.DictReader(out["plots"].open())} == {"Dlib_JPEG"}
    # nothing evaluated yet: still a report (every configured row not run), not an error
    empty = tmp_path / "empty"
    out = R.write_report(empty, models=["Dlib_Original_Anchor"], why_not_run=why_not_run)
    assert "- Dlib_Original_Anchor: not run:" in out["table"].read_text()
