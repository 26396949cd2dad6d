"""`make smoke`: the whole DAG offline on ../shared/fixtures, then the review loop a DVC user runs there.

One `make smoke` per module (the workspace is a git repository with its results committed); the tests
after the first review it as docs/reviewing.md does: `dvc metrics show`, `dvc plots show`, a forced
re-run, an experiment with `dvc metrics diff` / `dvc plots diff`. They run in file order; the last one
changes the workspace (an experiment).
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cdfv import paths
from cdfv.align.stage import ALIGN_MTCNN_KIND
from cdfv.bian.evaluation import BIAN_EVAL_KIND
from cdfv.complexity import COMPLEXITY_KEYS
from cdfv.detect.stage import DETECT_KIND
from cdfv.encode.stage import LATENT_KIND, RATE_KIND
from cdfv.evaluate.stage import EVAL_KIND
from cdfv.rd.stage import RD_KIND
from cdfv.results import MAX_KEYS, read_results
from cdfv.tfqi import stage as tfqi
from cdfv.xiao.stage import GALLERY_KIND
from tests.conftest import BIN, REPO, run_dvc
from tests.unit.test_results import is_result_key

# `make smoke` (the module fixture) runs the whole DAG on 2 CPU cores: ~10 min, beyond the default 600 s
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

TRAIN_KEYS = ("phase1.loss", "phase1.accuracy", "phase2.loss", "phase2.accuracy", "phase2.val_loss", "step")
#: the declared key set of every kind of metrics file (by path prefix, first match)
KINDS = {
    "reports/metrics/detect_lfw.json": DETECT_KIND.keys,
    "reports/metrics/rate/": RATE_KIND.keys,
    "reports/metrics/rate_full/": RATE_KIND.keys,
    "reports/metrics/latents_vggface2/": LATENT_KIND.keys,
    "reports/metrics/rd/": RD_KIND.keys,
    "reports/metrics/complexity/": COMPLEXITY_KEYS,
    "reports/metrics/eval/": EVAL_KIND.keys,
    "reports/train/resnet50/": TRAIN_KEYS,
    "reports/train/cresnet39/": TRAIN_KEYS,
    "reports/train/bian/pretrain/": ("loss", "psnr", "step"),
    "reports/train/bian/": ("loss", "accuracy", "step"),  # sphere20 and the joint CompNet -> sphere20
    "reports/metrics/detect_lfw_mtcnn.json": DETECT_KIND.keys,
    "reports/metrics/align_lfw_mtcnn/": ALIGN_MTCNN_KIND.keys,
    "reports/metrics/tfqi/embed.json": tfqi.EMBED_KIND.keys,
    "reports/metrics/tfqi/texture/": tfqi.TEXTURE_KIND.keys,
    "reports/metrics/tfqi/feature/": tfqi.FEATURE_KIND.keys,
    "reports/metrics/tfqi/fit.json": tfqi.FIT_KIND.keys,
    "reports/metrics/tfqi/allocate.json": tfqi.ALLOCATE_KIND.keys,
    "reports/metrics/bian/eval/": BIAN_EVAL_KIND.keys,
    "reports/metrics/xiao/": GALLERY_KIND.keys,
}
#: the smoke profile's codec series (profiles/smoke.yaml codecs:)
SMOKE_SERIES = {"JPEG", "JPEG2000_mse", "JPEG2000_visual", "HEVC", "HEVC_444", "Balle2018_mse"}


def _git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=True).stdout


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys joined with '.', as `dvc metrics show` prints them (one column each)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def _with_params(node: Any) -> list[dict[str, Any]]:
    """Every revision entry (with its params) of `dvc exp show --json`, experiments included."""
    if isinstance(node, list):
        return [d for v in node for d in _with_params(v)]
    if not isinstance(node, dict):
        return []
    here = isinstance(node.get("params"), dict) and "params.yaml" in node["params"]
    return ([node] if here else []) + [d for v in node.values() for d in _with_params(v)]


def _kind(path: str) -> tuple[str, ...]:
    return next(keys for prefix, keys in KINDS.items() if path.startswith(prefix))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    """`make smoke` in a fresh folder; ``CDFV_SMOKE_WS`` reuses a finished one (same recipe, built by hand:
    `cdfv workspace DIR --profile smoke --git`, `dvc repro`, commit) when iterating on these tests."""
    if os.environ.get("CDFV_SMOKE_WS"):
        return Path(os.environ["CDFV_SMOKE_WS"]).resolve()
    ws = tmp_path_factory.mktemp("smoke") / "smoke"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(
        ["make", "-C", str(REPO), "smoke", f"SMOKE_DIR={ws}", f"VENV={BIN.parent}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return ws


def test_make_smoke_runs_the_whole_dag(smoke: Path) -> None:
    ws = smoke
    # every stage ran, nothing is left to do, and the results are committed (a clean git baseline)
    status = run_dvc(ws, "status").stdout
    assert "Data and pipelines are up to date" in status, status
    assert _git(ws, "status", "--porcelain") == ""
    assert len(_git(ws, "log", "--format=%s").splitlines()) == 2  # workspace, then `make smoke: dvc repro`
    evals = {p.stem: read_results(ws, paths.eval_json(p.stem)) for p in (ws / paths.EVAL_METRICS).glob("*.json")}
    assert {"ResNet50_Original_Anchor", "Dlib_Original_Anchor", "cResNet39_Balle2018_mse_Q1", "Dlib_JPEG_Q1"} <= set(
        evals
    )
    assert {m["pipeline"] for m in evals.values()} == {"A", "B1", "B2", "C"}  # all four pipelines (thesis ch. 5-6)
    for name, m in evals.items():
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["eer"] <= 1.0, name
    # the off-the-shelf dlib recogniser separates the fixture pairs well
    assert evals["Dlib_Original_Anchor"]["auc"] > 0.95
    table = (ws / "reports/table7.md").read_text()
    for name in evals:
        assert name in table, name
    assert "## Not run" not in table  # with VGGFace2 every configured solution is evaluated
    assert (ws / "reports/figures/fig4.png").stat().st_size > 10_000
    assert (ws / "reports/figures/align_contact_sheet.png").is_file()
    anchor = read_results(ws, paths.complexity_json("ResNet50_Original_Anchor"))
    assert abs(anchor["gmac"] - 3.89) / 3.89 < 0.005 and anchor["ms_per_pair"] > 0  # MACs declared, ms in details


def test_a_teammate_pulls_the_cached_stages_from_a_dvc_remote(smoke: Path, tmp_path: Path) -> None:
    """Shared caches: `dvc push` to a directory remote, `dvc pull` in a fresh clone, the pulled stages are
    up to date (nothing to recompute) while the ones not pulled are not."""
    remote, clone = tmp_path / "remote", tmp_path / "clone"
    target = "eval_lfw_dlib@JPEG_Q1"  # ingest -> detect -> align -> encode JPEG_Q1 -> dlib evaluation
    run_dvc(smoke, "remote", "add", "--local", "-f", "team", str(remote))  # .dvc/config.local: not in git
    run_dvc(smoke, "push", "--with-deps", "-r", "team", target)
    subprocess.run(["git", "clone", "-q", str(smoke), str(clone)], check=True)
    assert not (clone / "data").exists()  # cached outputs are not in git
    run_dvc(clone, "remote", "add", "-d", "team", str(remote))
    before = run_dvc(clone, "status", "--with-deps", target).stdout
    assert "deleted:" in before and "data/interim/lfw/detections.parquet" in before, before
    run_dvc(clone, "pull", "--with-deps", target)
    after = run_dvc(clone, "status", "--with-deps", target).stdout
    assert "Data and pipelines are up to date" in after, after
    assert (clone / "data/processed/lfw/JPEG_Q1/index.parquet").is_file()
    assert "train_resnet50" in run_dvc(clone, "status", "train_resnet50").stdout  # not pulled: still to do


def test_metrics_show_is_one_short_row_per_result(smoke: Path) -> None:
    shown = json.loads(run_dvc(smoke, "metrics", "show", "--json").stdout)[""]  # "" = the workspace
    files = shown["data"]
    assert len(files) >= 25 and "error" not in shown
    for path, content in files.items():
        assert "error" not in content, path
        flat = flatten(content["data"])
        assert len(flat) <= MAX_KEYS, (path, sorted(flat))
        assert set(flat) <= set(_kind(path)), (path, sorted(flat))  # one common key set per kind of file
        assert all(is_result_key(k) for k in flat), (path, sorted(flat))
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat.values()), path
    eval_files = [p for p in files if p.startswith("reports/metrics/eval/")]
    assert len(eval_files) == 9
    assert all(set(files[p]["data"]) == set(EVAL_KIND.keys) for p in eval_files if "Anchor" not in p)
    # one kind as its own table: `dvc metrics show reports/metrics/rate`
    rate = json.loads(run_dvc(smoke, "metrics", "show", "--json", "reports/metrics/rate").stdout)
    rows = rate[""]["data"]
    assert len(rows) == 7 and all(set(r["data"]) == {"bpp", "psnr", "ms_ssim"} for r in rows.values())


def test_plots_show_draws_every_series_without_warnings(smoke: Path, tmp_path: Path) -> None:
    proc = run_dvc(smoke, "plots", "show", "-o", str(tmp_path / "html"))
    assert "failed to load" not in (proc.stdout + proc.stderr).lower(), proc.stderr
    assert (tmp_path / "html" / "index.html").is_file()
    shown = json.loads(run_dvc(smoke, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    shown = shown["data"]
    # Fig. 4: one line per evaluated series with a rate (read from the eval results, not the plot file)
    evals = [read_results(smoke, paths.eval_json(p.stem)) for p in (smoke / paths.EVAL_METRICS).glob("*.json")]
    lines = {r["series"] for r in evals if r.get("bpp") is not None}
    assert len(lines) == 6
    for plot_id, y in (("fig4_tar_far_1e-3", "tar_far_1e-3"), ("fig4_eer", "eer"), ("rd_psnr", "psnr")):
        (plot,) = shown[plot_id]
        data = plot["content"]["data"]["values"]
        assert {d["series"] for d in data} == (SMOKE_SERIES if plot_id.startswith("rd") else lines), plot_id
        assert all(y in d and "bpp" in d for d in data), plot_id
        assert plot["content"]["encoding"]["color"]["field"] == "series"  # .dvc/plots/series.json
    assert any(p["type"] == "image" for p in shown["reports/figures/fig4.png"])


def test_forced_rerun_without_change_leaves_metrics_diff_empty(smoke: Path) -> None:
    """`dvc repro -f` of one stage of every kind of metrics file: timings move, declared metrics do not."""
    stages = [
        "detect_lfw",
        "encode_lfw@JPEG_Q1",
        "encode_lfw@Balle2018_mse_Q1",
        "encode_lfw_full@Balle2018_mse_Q2",
        "latents_vggface2@Balle2018_mse_Q1",
        "rd_report",
        "complexity",
        "eval_lfw_dlib_anchor",
        "eval_lfw_resnet50@Balle2018_mse_Q1",
        "eval_lfw_cresnet39@Balle2018_mse_Q1",
        "report",
        "train_resnet50",
    ]
    run_dvc(smoke, "repro", "-f", "--single-item", *stages)
    assert json.loads(run_dvc(smoke, "metrics", "diff", "--json").stdout) == {}
    # the stages did run: their timings (details) changed
    changed = _git(smoke, "diff", "--name-only").split()
    assert "reports/details/detect_lfw.json" in changed and "reports/details/eval/Dlib_Original_Anchor.json" in changed


def test_experiment_diff_shows_only_the_results_that_moved(smoke: Path) -> None:
    """A codec setting (optimised JPEG Huffman tables: same pixels, fewer bits) as a DVC experiment."""
    proc = run_dvc(smoke, "exp", "run", "-S", "encode.jpeg.optimize=true")
    out = proc.stdout + proc.stderr
    assert "Running stage 'encode_lfw@JPEG_Q1'" in out and "Running stage 'encode_lfw@HEVC_QP35'" not in out
    diff = json.loads(run_dvc(smoke, "metrics", "diff", "--json").stdout)
    rows = {(f, k) for f, keys in diff.items() for k in keys}
    assert rows, "the experiment moved no metric"
    for f, k in rows:
        assert is_result_key(k) and k in _kind(f), (f, k)  # no timing, count or settings row
        assert f.startswith(
            (
                "reports/metrics/rate/JPEG_",
                "reports/metrics/eval/",
                "reports/metrics/rd/",
                "reports/metrics/bian/eval/",
                "reports/metrics/xiao/",  # the gallery FRR of the JPEG solutions
            )
        ), f
        assert "JPEG" in f or f.startswith("reports/metrics/rd/"), f  # only what the JPEG branch feeds
    # the rate files: bpp dropped, PSNR / MS-SSIM identical (lossless entropy coding change) so not listed
    for codec in ("JPEG_Q1", "JPEG_Q25"):
        change = diff[f"reports/metrics/rate/{codec}.json"]
        assert set(change) == {"bpp"} and change["bpp"]["diff"] < 0, change
    # the experiments table: baseline (False), the recorded experiment and the workspace (True)
    shown = json.loads(run_dvc(smoke, "exp", "show", "--json").stdout)
    optimize = [d["params"]["params.yaml"]["data"]["encode"]["jpeg"]["optimize"] for d in _with_params(shown)]
    assert optimize.count(False) == 1 and optimize.count(True) == 2, optimize
    # Fig. 4 and the RD curves of the baseline and the experiment, in one figure each
    plots = json.loads(run_dvc(smoke, "plots", "diff", "HEAD", "--json").stdout)
    assert not plots.get("errors"), plots.get("errors")
    plots = plots["data"]
    for plot_id in ("fig4_tar_far_1e-3", "rd_psnr"):
        (plot,) = plots[plot_id]
        assert set(plot["revisions"]) == {"HEAD", "workspace"}, plot_id
        assert {d["rev"] for d in plot["content"]["data"]["values"]} == {"HEAD", "workspace"}, plot_id
    assert {r for p in plots["reports/figures/fig4.png"] for r in p["revisions"]} == {"HEAD", "workspace"}


def test_related_systems_outputs(smoke: Path) -> None:
    """Li et al. (tfqi_*) and Bian et al. (bian_*, report_bian) in the same smoke DAG."""
    ws = smoke
    # Li et al. 2019 (tfqi_*): both streams at every smoke QP, the fits, the allocation table, the curves
    for qp in (22, 32, 42, 51):
        assert json.loads((ws / f"reports/metrics/tfqi/texture/QP{qp}.json").read_text())["bpp"] > 0
    for qp in (4, 16, 28, 40, 51):
        assert json.loads((ws / f"reports/metrics/tfqi/feature/QP{qp}.json").read_text())["bpp"] > 0
    fit = json.loads((ws / "reports/tfqi/fit.json").read_text())
    assert fit["texture"]["status"] == "ok" and fit["texture"]["r2"] > 0.9
    assert fit["feature"]["status"] == "ok" or fit["feature"]["status"].startswith("fit failed: ")
    allocation = json.loads((ws / "reports/tfqi/allocation.json").read_text())
    assert len(allocation["rows"]) == 3 * 12 and all("grid_tfqi" in r or "grid_note" in r for r in allocation["rows"])
    assert "293.4" in (ws / "reports/table_tfqi.md").read_text()
    assert (ws / "reports/figures/tfqi.png").stat().st_size > 20_000
    for name in ("joint_model", "joint_grid", "texture_only", "feature_only"):
        assert (ws / f"reports/plots/tfqi/{name}.csv").is_file()
    # Bian et al. 2019: MTCNN faces, the three training steps, every coded point, Table 1 and the curves
    assert read_results(ws, Path("reports/metrics/detect_lfw_mtcnn.json"))["ok"] == 25
    bian = {p.stem: json.loads(p.read_text()) for p in (ws / "reports/metrics/bian/eval").glob("*.json")}
    assert {"Original", "CompNet_C3_joint", "CompNet_C3_pretrain", "JPEG_Q1", "JPEG2000_mse_R88"} <= set(bian)
    for name, m in bian.items():
        assert 0.0 <= m["accuracy"] <= 1.0 and m["size_mb"] > 0 and m["bpp"] > 0, name
    for c in (1, 2, 3):
        index = pq.read_table(ws / f"data/processed/bian/CompNet_C{c}_joint/index.parquet").to_pylist()
        assert len(index) == 25 and all(
            (ws / r["bitstream"]).stat().st_size == r["bytes"] for r in index
        )  # the rate is the PNG files' size
    table_bian = (ws / "reports/table_bian.md").read_text()
    assert "| 30.6 |" in table_bian and "| 89.48 |" in table_bian and "CompNet_C3_joint" in table_bian
    assert (ws / "reports/figures/fig4_bian.png").stat().st_size > 10_000
    assert (ws / "reports/plots/bian/rate_metric/Sphere20_CompNet_joint.csv").is_file()
    # Xiao et al. 2023: gallery FRR@FAR on lfw-mini (one enrolled image per identity) and report_xiao
    for m in ("Dlib_JPEG_Q1", "Dlib_JPEG_Q25"):
        g = read_results(ws, paths.xiao_gallery_json(m))
        assert g["subset"] == "all" and g["n_query_identities"] == 9 and 0.0 <= g["frr_far_1e-2"] <= 1.0, m
        assert g["bpp"] == read_results(ws, paths.eval_json(m))["bpp"], m
    xiao = (ws / paths.XIAO_REPORT).read_text()
    assert "| HEVC | 0.76 | 1.25 % | not run |" in xiao and "| Dlib_JPEG |" in xiao
    assert (ws / paths.XIAO_FIGURE).stat().st_size > 10_000
