"""Training params and stage definitions: augmentation variants, shards vs online, exact deps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cdfv.config import ParamsError, load_params, parse_params
from cdfv.train.fingerprint import stage_deps
from cdfv.workspace import profile_params

REPO = Path(__file__).resolve().parents[2]


def c39(**kw) -> dict:
    return {"train": {"cresnet39": kw}}


def test_paper_default_has_a_fresh_variant_per_epoch() -> None:
    p = load_params(REPO / "params.yaml")
    c = p.train.cresnet39
    assert (c.phase1.epochs, c.phase2.epochs) == (6, 3)  # thesis §6.3.2
    assert p.encode.vggface2.variants == 10 == c.phase1.epochs + c.phase2.epochs + 1
    assert c.codecs and c.online_codecs == []  # the default reads shards, whatever the hardware
    smoke = parse_params(profile_params(REPO, "smoke"))
    assert smoke.encode.vggface2.variants >= smoke.train.cresnet39.epochs + 1


def test_too_few_variants_for_the_epochs_is_refused_up_front() -> None:
    with pytest.raises(ParamsError, match=r"encode.vggface2.variants: 9 latents .* 6 \+ 3 epochs.*>= 10"):
        parse_params({"encode": {"vggface2": {"variants": 9}}})
    with pytest.raises(ParamsError, match=r">= 5"):
        parse_params({**c39(phase1={"epochs": 2}, phase2={"epochs": 2}), "encode": {"vggface2": {"variants": 4}}})
    parse_params({**c39(phase1={"epochs": 2}, phase2={"epochs": 2}), "encode": {"vggface2": {"variants": 5}}})
    # online training draws its augmentation in the loop: no shard variants needed
    parse_params({**c39(codecs=[], online_codecs=["Balle2018_mse_Q1"]), "encode": {"vggface2": {"variants": 1}}})


def test_shards_and_online_lists() -> None:
    p = parse_params(c39(codecs=["Balle2018_mse_Q1"], online_codecs=["Balle2018_mse_Q6"]))
    assert (
        p.train.cresnet39.mode("Balle2018_mse_Q1") == "shards"
        and p.train.cresnet39.mode("Balle2018_mse_Q6") == "online"
    )
    with pytest.raises(ParamsError, match="neither train.cresnet39.codecs"):
        p.train.cresnet39.mode("Balle2018_mse_Q3")
    with pytest.raises(ParamsError, match=r"in both codecs and online_codecs"):
        parse_params(c39(codecs=["Balle2018_mse_Q1"], online_codecs=["Balle2018_mse_Q1"]))
    with pytest.raises(ParamsError, match=r"train.cresnet39.*online_codecs"):
        parse_params(c39(latents="online"))  # the old switch names its replacement
    with pytest.raises(ParamsError, match="hyperprior"):
        parse_params(c39(online_codecs=["JPEG_Q1"]))


def dvc_stage(name: str) -> dict:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    s = stages[name]
    return s.get("do", s)


def test_each_cresnet39_stage_group_declares_what_it_reads() -> None:
    shards, online = dvc_stage("train_cresnet39"), dvc_stage("train_cresnet39_online")
    assert "data/processed/vggface2/latents/${item}" in shards["deps"]
    assert "data/interim/vggface2/png" not in shards["deps"] and "train.augment" not in shards["params"]
    assert "data/interim/vggface2/png" in online["deps"] and "cdfv/codecs/learned.py" in online["deps"]
    assert not any("latents" in d for d in online["deps"])
    assert "train.augment" in online["params"] and "encode.learned.pretrained" in online["params"]
    for s in (shards, online):
        # the lists only choose the stage group: editing them must not rerun the other codecs' training
        assert not any(
            p in ("train.cresnet39", "train.cresnet39.codecs", "train.cresnet39.online_codecs") for p in s["params"]
        )
    assert shards["cmd"].endswith("--latents shards") and online["cmd"].endswith("--latents online")


def test_checkpoints_are_no_stage_output() -> None:
    for name in ("train_resnet50", "train_cresnet39", "train_cresnet39_online"):
        s = dvc_stage(name)
        outs = [o if isinstance(o, str) else next(iter(o)) for o in s["outs"]]
        assert not any("checkpoints" in o for o in outs)
        for group in ("outs", "metrics", "plots"):
            assert not any(isinstance(o, dict) and next(iter(o.values())).get("persist") for o in s.get(group, []))


def test_fingerprint_reads_the_stage_deps_from_dvc_yaml() -> None:
    assert stage_deps("train_cresnet39", "Balle2018_mse_Q3", REPO) == [
        d.replace("${item}", "Balle2018_mse_Q3") for d in dvc_stage("train_cresnet39")["deps"]
    ]
    assert "data/interim/vggface2/png" in stage_deps("train_resnet50", None, REPO)
