"""The `cdfv repro` planner on a small graph shaped like dvc.yaml's (pure: no DVC, no files), the input
table on real params, and the planner on the real dvc.yaml without VGGFace2."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdfv.config import load_params, parse_params
from cdfv.repro.externals import EXTERNALS, InputChecker
from cdfv.repro.plan import StageNode, compact, edges, make_plan, outcome, summary, topological

REPO = Path(__file__).resolve().parents[2]
VGG = "VGGFace2 not found: set vggface2.root"

GRAPH = [
    StageNode("ingest", ("lfw",), ("cdfv/data",), ("data/lfw",)),
    StageNode("ingest_vgg", ("vggface2",), ("cdfv/data",), ("data/vgg",)),
    StageNode("train", ("train",), ("data/vgg",), ("models/net.pt",)),
    StageNode("encode@A", ("codecs.A",), ("data/lfw",), ("data/enc/A", "reports/metrics/rate/A.json")),
    StageNode("encode@B", ("codecs.B",), ("data/lfw",), ("data/enc/B", "reports/metrics/rate/B.json")),
    StageNode("eval_dlib@A", (), ("data/lfw", "data/enc/A"), ("reports/metrics/eval/dlib_A.json",)),
    StageNode("eval_net@A", (), ("data/enc/A", "models/net.pt"), ("reports/metrics/eval/net_A.json",)),
    StageNode("rd", (), ("reports/metrics/rate",), ("reports/rd.md",)),
    StageNode("report", (), ("reports/metrics",), ("reports/table.md",)),
]
ALL = {s.name for s in GRAPH}


def _missing(vgg: bool = False) -> tuple[list[str], object]:
    seen: list[str] = []

    def check(stage: StageNode) -> str | None:
        seen.append(stage.name)
        return VGG if "vggface2" in stage.params and not vgg else None

    return seen, check


def test_edges_split_required_and_collected_dependencies() -> None:
    e = edges(GRAPH)
    assert e.required["eval_net@A"] == ["encode@A", "train"]
    assert e.required["rd"] == [] and e.collected["rd"] == {"reports/metrics/rate": ["encode@A", "encode@B"]}
    assert set(e.collected["report"]["reports/metrics"]) == {"encode@A", "encode@B", "eval_dlib@A", "eval_net@A"}
    assert e.orphans["ingest"] == ["cdfv/data"]
    order = topological(GRAPH, e)
    for s in GRAPH:  # every producer before its consumers
        assert all(order.index(u) < order.index(s.name) for u in e.upstream(s.name))


def test_without_vggface2_everything_else_runs_and_the_report_collects_what_exists() -> None:
    seen, check = _missing()
    plan = make_plan(GRAPH, ALL, check, exists=lambda p: p.startswith("cdfv/"))
    assert plan.run == ["ingest", "encode@A", "encode@B", "eval_dlib@A", "rd", "report"]
    assert plan.skipped == {"ingest_vgg": VGG, "train": VGG, "eval_net@A": VGG}
    assert plan.blocked_by == {"train": "ingest_vgg", "eval_net@A": "ingest_vgg"}
    assert "train" not in seen and "eval_net@A" not in seen  # no input is fetched for a stage that cannot run
    text = summary(outcome(GRAPH, plan, set()))
    assert f"- {VGG}" in text and "skipped: ingest_vgg, train, eval_net@A" in text
    assert "done: ingest, encode@{A,B}, eval_dlib@A, rd, report" in text


def test_up_to_date_stages_need_no_inputs_and_a_skipped_upstream_does_not_rerun_collectors() -> None:
    seen, check = _missing()
    changed = {"ingest_vgg", "train", "eval_net@A"}  # never ran (no VGGFace2); the rest is cached
    plan = make_plan(GRAPH, changed, check, exists=lambda p: True)
    assert plan.run == [] and set(plan.up_to_date) == ALL - changed and seen == ["ingest_vgg"]
    # a code change in encode@B reruns it and its collectors, not the others
    plan = make_plan(GRAPH, changed | {"encode@B"}, check, exists=lambda p: True)
    assert plan.run == ["encode@B", "rd", "report"]


def test_orphan_deps_and_collectors_with_nothing_to_collect() -> None:
    _, check = _missing()
    plan = make_plan(GRAPH, ALL, check, exists=lambda p: False)  # cdfv/ gone: nothing can run
    assert plan.run == [] and "restore it" in plan.skipped["ingest"]
    assert plan.skipped["rd"] == plan.skipped["encode@A"]  # no producer can write, no directory


def test_outcome_separates_failures_from_their_consequences() -> None:
    _, check = _missing(vgg=True)
    plan = make_plan(GRAPH, ALL, check, exists=lambda p: p.startswith("cdfv/"))
    assert plan.skipped == {}
    o = outcome(GRAPH, plan, {"encode@A", "eval_dlib@A", "eval_net@A"})
    assert o.failed == ["encode@A"] and o.after_failure == {"eval_dlib@A": "encode@A", "eval_net@A": "encode@A"}
    assert o.exit_code == 1 and "FAILED (see the dvc output above): encode@A" in summary(o)
    assert outcome(GRAPH, plan, set()).exit_code == 0
    _, check = _missing()
    skipped_only = make_plan(GRAPH, ALL, check, exists=lambda p: p.startswith("cdfv/"))
    assert outcome(GRAPH, skipped_only, set()).exit_code == 0  # missing inputs are not failures


def test_compact_groups_foreach_items() -> None:
    assert compact(["a", "enc@X", "enc@Y", "b@Z"]) == "a, enc@{X,Y}, b@Z"


def test_input_table_finds_inputs_through_the_params_keys_a_stage_lists(tmp_path: Path) -> None:
    assert {e.key for e in EXTERNALS} == {"vggface2", "lfw", "weights"}
    (tmp_path / "vgg" / "n000001").mkdir(parents=True)
    params = parse_params({"vggface2": {"root": str(tmp_path / "nowhere")}})
    check = InputChecker(params)
    msg = check(StageNode("ingest_vggface2", ("vggface2",)))
    assert msg and "VGGFace2 not found at" in msg and "vggface2.root" in msg and "README › Data" in msg
    assert check(StageNode("train_resnet50", ("train.device", "seed"))) is None
    assert (
        InputChecker(parse_params({"vggface2": {"root": str(tmp_path / "vgg")}}))(StageNode("x", ("vggface2.root",)))
        is None
    )
    # weights not needed by these params (dlib backend) are not looked for; a listed section that is
    # absent from params.yaml is reported, not raised
    assert InputChecker(parse_params({"detect": {"backend": "dlib"}}))(StageNode("d", ("weights.retinaface",))) is None
    assert "no 'vggface2:' section" in InputChecker(parse_params({}))(StageNode("i", ("vggface2",)))


def test_real_graph_without_vggface2_skips_exactly_the_training_branch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dvc.yaml with the paper's params, no VGGFace2, everything else present (inputs stubbed): the
    skipped stages are those that need a trained network, and nothing else."""
    from cdfv.repro.run import read_graph

    stages, _ = read_graph(REPO)
    params = load_params(REPO / "params.yaml")
    monkeypatch.chdir(tmp_path)  # vggface2.root (data/raw/vggface2) does not exist here
    real = InputChecker(params)

    def check(stage: StageNode) -> str | None:
        return real(stage) if any(p.startswith("vggface2") for p in stage.params) else None

    plan = make_plan(stages, {s.name for s in stages}, check, exists=lambda p: p.startswith("cdfv"))
    skipped = set(plan.skipped)
    names = {s.name for s in stages}
    needs_training = {
        n
        for n in names
        if n.startswith(("ingest_vggface2", "latents_vggface2", "train_", "eval_lfw_resnet50", "eval_lfw_cresnet39"))
        # Bian et al.: its networks train on VGGFace2 when CASIA is absent; coding the faces does not need them
        or n.startswith(("bian_faces", "bian_pretrain", "bian_sphere20", "bian_joint", "bian_code_compnet"))
        or n.startswith(("eval_lfw_bian_", "report_bian"))
        or n.startswith(("eval_gallery@ResNet50_", "eval_gallery_test@ResNet50_"))  # Xiao et al., ResNet50 lines
    }
    assert skipped == needs_training
    assert {"report", "rd_report", "complexity", "eval_lfw_dlib_anchor", "detect_lfw"} <= set(plan.run)
    assert sum(n.startswith("eval_lfw_dlib@") for n in plan.run) == 25  # the paper's B2 points + HEVC CRF, dlib
    assert sum(n.startswith("eval_gallery@Dlib_") for n in plan.run) == 9  # Xiao et al.: CRF sweep + JPEG
    assert sum(n.startswith("eval_lfw_dlib_b1@") for n in plan.run) == 28  # and its B1 points
    assert "bian_code_original" in plan.run and any(n.startswith("bian_code_codec@") for n in plan.run)
    assert all("vggface2.root" in plan.skipped[n] for n in skipped)


def test_dry_run_plans_without_downloading_or_running(tmp_path: Path) -> None:
    from cdfv.repro.run import run_repro
    from cdfv.workspace import create_workspace

    ws = create_workspace(REPO, tmp_path / "ws", profile="smoke", overrides={"vggface2": {"root": "nowhere"}})
    lines: list[str] = []
    o = run_repro(ws, echo=lines.append, dry_run=True)
    assert o.exit_code == 0 and "ingest_lfw" in o.done and "report" in o.done and "train_resnet50" in o.skipped
    assert "would run: ingest_lfw" in lines[-1] and "VGGFace2 not found at nowhere" in lines[-1]
    assert not (ws / "data").exists() and not (ws / "dvc.lock").exists()  # nothing ran
