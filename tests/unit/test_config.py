from pathlib import Path

import pytest
import yaml

from cdfv.config import ParamsError, deep_merge, load_params, parse_params
from cdfv.workspace import parse_overrides, profile_params

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_validate() -> None:
    p = load_params(REPO / "params.yaml")
    assert p.detect.thresholds.start == 0.985 and p.detect.thresholds.stop == 0.7
    assert p.align.size == 224 and p.align.codec_pad == 16
    assert p.vggface2 is not None and p.vggface2.val_identities == 863


def test_smoke_profile_validates(shared_dir: Path) -> None:
    data = profile_params(REPO, "smoke")
    p = parse_params(data)
    assert p.detect.backend == "dlib"
    assert Path(p.lfw.archive_url).is_absolute() and Path(p.lfw.archive_url).is_file()


def test_unknown_key_names_path() -> None:
    with pytest.raises(ParamsError, match=r"detect\.threshold: Extra inputs are not permitted"):
        parse_params({"detect": {"threshold": 0.9}})


def test_bad_value_names_path() -> None:
    with pytest.raises(ParamsError, match=r"detect\.backend"):
        parse_params({"detect": {"backend": "yolo"}})
    with pytest.raises(ParamsError, match=r"lfw\.archive_sha256"):
        parse_params({"lfw": {"archive_url": "x", "pairs_url": "y", "archive_sha256": "XYZ"}})
    with pytest.raises(ParamsError, match=r"detect\.thresholds"):
        parse_params({"detect": {"thresholds": {"start": 0.5, "stop": 0.7, "step": 0.005}}})


def test_load_params_errors(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "p.yaml"
    bad.write_text("detect: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_require_missing_section() -> None:
    with pytest.raises(ParamsError, match="no 'lfw:' section"):
        parse_params({}).require("lfw")


def test_merge_and_overrides() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    assert parse_overrides(["detect.backend=dlib", "lfw.workers=2"]) == {
        "detect": {"backend": "dlib"},
        "lfw": {"workers": 2},
    }
    with pytest.raises(ParamsError):
        parse_overrides(["nokey"])


def test_cli_rejects_invalid_params_before_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cdfv.cli import app

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["lfw"]["workres"] = 2
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(params))
    res = CliRunner().invoke(app, ["ingest-lfw", "--params", str(f)])
    assert res.exit_code == 2
    assert "lfw.workres" in res.output


@pytest.mark.parametrize("source", ["repo", "workspace"])
def test_params_rewritten_by_dvc_exp_run_set_param_still_validate(tmp_path: Path, source: str) -> None:
    """`dvc exp run -S` rewrites params.yaml with ruamel (YAML 1.2): `subsampling: 4:2:0` comes back unquoted."""
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` calls

    text = (REPO / "params.yaml").read_text()
    if source == "workspace":  # as `cdfv workspace` writes it (PyYAML)
        text = yaml.safe_dump(yaml.safe_load(text), sort_keys=False)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    apply_overrides(path, ["eval.tar_rule=linear"])
    rewritten = path.read_text()
    assert "subsampling: 4:2:0" in rewritten and yaml.safe_load(rewritten)["encode"]["jpeg"]["subsampling"] == 14520
    p = load_params(path)
    assert p.encode.jpeg.subsampling == "4:2:0" and p.eval.tar_rule == "linear"
    assert parse_overrides(["encode.jpeg.subsampling=4:4:4"]) == {"encode": {"jpeg": {"subsampling": "4:4:4"}}}
