"""A weights file is a declared dependency: its sha256 lives in params.yaml and every stage that reads
the file lists that key, so a new file reruns exactly those stages. The oracle is DVC's own reading of
each stage's params (``ParamsDependency.read_params``) before and after editing params.yaml."""

from __future__ import annotations

import contextlib
import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _param_values(ws: Path) -> dict[str, dict[str, Any]]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with contextlib.chdir(ws), Repo(".") as repo:  # stage names relative to the workspace
        return {
            s.addressing: {k: v for d in s.deps if isinstance(d, ParamsDependency) for k, v in d.read_params().items()}
            for s in repo.index.stages
        }


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, dict[str, Any]]]:
    """A workspace with the paper's dvc.yaml/params.yaml (one codec trained online): path, params, values."""
    from dvc.repo import Repo

    tmp = tmp_path_factory.mktemp("ws")
    shutil.copy(REPO / "dvc.yaml", tmp / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    c = params["train"]["cresnet39"]  # one codec trained online so that stage group exists too
    c["codecs"], c["online_codecs"] = [x for x in c["codecs"] if x != "Balle2018_mse_Q3"], ["Balle2018_mse_Q3"]
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    Repo.init(str(tmp), no_scm=True)
    return tmp, params, _param_values(tmp)


def _rerun_after(ws: tuple[Path, dict[str, Any], dict[str, dict[str, Any]]], edit: Any) -> set[str]:
    """Stages whose declared params values change when ``edit`` is applied to params.yaml."""
    path, params, before = ws
    edited = copy.deepcopy(params)
    edit(edited)
    (path / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    try:
        after = _param_values(path)
    finally:
        (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return {s for s in before if before[s] != after[s]}


def _new_sha(entry: dict[str, Any]) -> None:
    entry["sha256"] = "0123456789abcdef" * 4


def test_a_new_retinaface_file_reruns_detection_only(ws: Any) -> None:
    assert _rerun_after(ws, lambda p: _new_sha(p["weights"]["retinaface"])) == {"detect_lfw"}


def test_a_new_codec_checkpoint_reruns_the_stages_that_read_it(ws: Any) -> None:
    learned_b2 = {f"encode_lfw@Balle2018_mse_Q{q}" for q in (1, 3, 6, 8)}  # read weights.codecs.learned
    rerun = _rerun_after(ws, lambda p: _new_sha(p["weights"]["codecs"]["learned"]["Balle2018_mse_Q1"]))
    assert rerun == {
        "latents_vggface2@Balle2018_mse_Q1",
        "encode_lfw_full@Balle2018_mse_Q1",
        "complexity",
        *learned_b2,
    }
    rerun = _rerun_after(ws, lambda p: _new_sha(p["weights"]["codecs"]["learned"]["Balle2018_mse_Q3"]))
    assert rerun == {"train_cresnet39_online@Balle2018_mse_Q3", "encode_lfw_full@Balle2018_mse_Q3", "complexity"} | (
        learned_b2
    )
    rerun = _rerun_after(ws, lambda p: _new_sha(p["weights"]["codecs"]["learned"]["Cheng2020_msssim_Q4"]))
    assert rerun == {"encode_lfw_full@Cheng2020_msssim_Q4", "complexity", *learned_b2}


def test_every_stage_that_builds_a_learned_codec_or_the_detector_lists_its_weights(ws: Any) -> None:
    values = ws[2]
    for stage, params in values.items():
        item = stage.partition("@")[2]
        if stage.startswith(("latents_vggface2@", "encode_lfw_full@", "train_cresnet39_online@")):
            assert f"weights.codecs.learned.{item}" in params, stage
        elif stage.startswith("encode_lfw@"):
            family = "learned" if item.startswith(("Balle", "Cheng")) else item.split("_")[0].lower()
            assert f"weights.codecs.{family}" in params, stage
        elif stage in ("complexity",):
            assert "weights.codecs.learned" in params
        elif stage == "detect_lfw":
            assert "weights.retinaface" in params
        else:  # nothing else reads weights: a new file never reruns them
            assert not any(k.startswith("weights") for k in params), stage
