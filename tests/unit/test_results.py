"""Declared metrics + details (cdfv/results.py) and the key sets every stage declares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdfv import paths
from cdfv.complexity import COMPLEXITY_KEYS
from cdfv.detect.stage import DETECT_KIND
from cdfv.encode.stage import LATENT_KIND, RATE_KIND
from cdfv.evaluate.stage import EVAL_KIND
from cdfv.rd.stage import RD_KIND
from cdfv.results import MAX_KEYS, MetricKind, declared, read_results, results_dir, round_significant, write_results

KIND = MetricKind("test", ("tar", "bpp", "n"))
#: words that mark a run timing, a count or a settings echo: never a declared metric
NOT_RESULTS = ("second", "ms_per", "per_s", "time", "device", "rule", "count", "repeats", "images", "lr")


def is_result_key(key: str) -> bool:
    """False for a timing, count or settings echo (what moved to the details)."""
    return not (any(w in key for w in NOT_RESULTS) or key.startswith("n_"))


def test_round_significant_known_values() -> None:
    assert round_significant(0.123456789) == 0.123457
    assert round_significant(12345.678) == 12345.7
    assert round_significant(-9.87654321e-7) == -9.87654e-7
    assert round_significant(1.0000004) == 1.0  # last-bit noise of a re-run vanishes
    assert round_significant(0.0) == 0.0 and round_significant(float("inf")) == float("inf")


def test_declared_keeps_the_kind_keys_numbers_only() -> None:
    assert declared(KIND, {"tar": 0.91234567, "bpp": None, "n": 7}) == {"tar": 0.912346, "n": 7}
    with pytest.raises(ValueError, match=r"extra \['seconds'\]"):
        declared(KIND, {"tar": 0.9, "bpp": 0.1, "n": 1, "seconds": 3.0})
    with pytest.raises(ValueError, match=r"missing \['bpp'\]"):
        declared(KIND, {"tar": 0.9, "n": 1})
    with pytest.raises(TypeError, match="'tar' must be a number, got str 'floor'"):
        declared(KIND, {"tar": "floor", "bpp": 0.1, "n": 1})
    with pytest.raises(TypeError, match="got bool"):
        declared(KIND, {"tar": True, "bpp": 0.1, "n": 1})
    with pytest.raises(ValueError, match="1..12 distinct keys"):
        MetricKind("wide", tuple(f"k{i}" for i in range(MAX_KEYS + 1)))


def test_write_and_read_results(tmp_path: Path) -> None:
    rel = paths.METRICS / "eval" / "M.json"
    out = write_results(tmp_path, rel, KIND, {"tar": 0.5, "bpp": None, "n": 3}, {"seconds": 1.5, "rule": "floor"})
    assert out == {"seconds": 1.5, "rule": "floor", "tar": 0.5, "bpp": None, "n": 3}
    assert json.loads((tmp_path / "reports/metrics/eval/M.json").read_text()) == {"tar": 0.5, "n": 3}
    assert json.loads((tmp_path / "reports/details/eval/M.json").read_text()) == {"seconds": 1.5, "rule": "floor"}
    assert read_results(tmp_path, rel) == {"seconds": 1.5, "rule": "floor", "tar": 0.5, "n": 3}
    with pytest.raises(ValueError, match=r"keys \['tar'\] are declared metrics"):
        write_results(tmp_path, rel, KIND, {"tar": 0.5, "bpp": 0.1, "n": 3}, {"tar": 0.4})
    (tmp_path / "reports/details/eval/M.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"reports/details/eval/M.json: missing. Run `dvc repro eval_x`"):
        read_results(tmp_path, rel, "eval_x")


def test_results_dir_replaces_the_whole_directory(tmp_path: Path) -> None:
    d = paths.METRICS / "rd"
    with results_dir(tmp_path, d) as staging:
        for s in ("JPEG", "HEVC"):
            write_results(staging, d / f"{s}.json", KIND, {"tar": 1.0, "bpp": 0.1, "n": 1}, {"series": s})
    assert sorted(p.name for p in (tmp_path / d).iterdir()) == ["HEVC.json", "JPEG.json"]
    with results_dir(tmp_path, d) as staging:  # a series that no longer exists disappears
        write_results(staging, d / "JPEG.json", KIND, {"tar": 0.5, "bpp": 0.1, "n": 1}, {"series": "JPEG"})
    assert [p.name for p in (tmp_path / d).iterdir()] == ["JPEG.json"]
    assert [p.name for p in (tmp_path / "reports/details/rd").iterdir()] == ["JPEG.json"]
    with pytest.raises(RuntimeError), results_dir(tmp_path, d) as staging:  # killed half-way: nothing changes
        write_results(staging, d / "AV1.json", KIND, {"tar": 0.1, "bpp": 0.1, "n": 1}, {})
        raise RuntimeError("killed")
    assert [p.name for p in (tmp_path / d).iterdir()] == ["JPEG.json"]
    assert json.loads((tmp_path / d / "JPEG.json").read_text())["tar"] == 0.5
    assert not list((tmp_path / paths.DETAILS).glob(".results*"))  # no staging left behind


@pytest.mark.parametrize(
    "keys",
    [DETECT_KIND.keys, RATE_KIND.keys, LATENT_KIND.keys, RD_KIND.keys, EVAL_KIND.keys, COMPLEXITY_KEYS],
    ids=["detect", "rate", "latents", "rd", "eval", "complexity"],
)
def test_every_declared_key_set_is_small_and_holds_results_only(keys: tuple[str, ...]) -> None:
    assert 0 < len(keys) <= MAX_KEYS
    assert all(is_result_key(k) for k in keys), keys
    assert not is_result_key("embed_ms_per_image") and not is_result_key("n_pairs")  # the rule bites


def test_the_issue_examples_are_the_key_sets() -> None:
    """eval: TAR@1e-3, TAR@1e-2, EER, AUC, accuracy, bpp; rate: bpp, PSNR, MS-SSIM."""
    assert set(EVAL_KIND.keys) == {"tar_far_1e-3", "tar_far_1e-2", "eer", "auc", "accuracy", "bpp"}
    assert set(RATE_KIND.keys) == {"bpp", "psnr", "ms_ssim"}


def test_details_path_mirrors_the_metrics_path() -> None:
    assert paths.details_json(paths.eval_json("M")) == Path("reports/details/eval/M.json")
    assert paths.details_json(paths.COMPLEXITY_METRICS) == Path("reports/details/complexity")
    with pytest.raises(ValueError):
        paths.details_json(Path("reports/plots/fig4.csv"))
