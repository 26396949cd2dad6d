"""`cdfv` command line: one thin command per DVC stage (run from the workspace root).

Each command loads and validates ``params.yaml`` first, then calls the stage's ``run_*`` function.
Errors a user can fix (bad params, missing data, corrupt input) print one clear message and exit 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from cdfv.config import load_params
from cdfv.errors import CdfvError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file to read")]
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn user-fixable exceptions (:class:`cdfv.errors.CdfvError`, missing files) into one line + exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (CdfvError, FileNotFoundError) as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@app.command("validate-params")
@friendly
def validate_params(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate params.yaml and exit (0 = valid)."""
    load_params(params)
    typer.echo(f"{params}: ok")


@app.command("ingest-lfw")
@friendly
def ingest_lfw(params: ParamsOpt = Path("params.yaml")) -> None:
    """Download, verify and convert LFW + View-2 pairs to PNG and Parquet."""
    from cdfv.data.lfw import run_ingest_lfw

    run_ingest_lfw(load_params(params))


@app.command("ingest-vggface2")
@friendly
def ingest_vggface2(params: ParamsOpt = Path("params.yaml")) -> None:
    """Index a local VGGFace2 tree, resize to 112x112 PNG, split identities train/val."""
    from cdfv.data.vggface2 import run_ingest_vggface2

    run_ingest_vggface2(load_params(params))


@app.command("detect-lfw")
@friendly
def detect_lfw(params: ParamsOpt = Path("params.yaml")) -> None:
    """Detect faces once per LFW image and pick one with the paper's centre heuristic."""
    from cdfv.detect.stage import run_detect_lfw

    m = run_detect_lfw(load_params(params))
    typer.echo(f"detect_lfw: {m['ok']} ok, {m['no_face']} no_face, {m['unreadable']} unreadable ({m['backend']})")


@app.command("align-lfw")
@friendly
def align_lfw(params: ParamsOpt = Path("params.yaml")) -> None:
    """Crop, level the eyes, additive-resize and pad every LFW face to 224x224 (+ contact sheet)."""
    from cdfv.align.stage import run_align_lfw

    m = run_align_lfw(load_params(params))
    typer.echo(f"align_lfw: {m['aligned']} faces aligned ({m['no_face_fallback']} from the no-face fallback)")


@app.command("detect-lfw-mtcnn")
@friendly
def detect_lfw_mtcnn(params: ParamsOpt = Path("params.yaml")) -> None:
    """MTCNN (facenet-pytorch, offline) + the centre heuristic on every LFW image (its own detections)."""
    from cdfv.detect.stage import run_detect_lfw_mtcnn

    m = run_detect_lfw_mtcnn(load_params(params))
    typer.echo(f"detect_lfw_mtcnn: {m['ok']} ok, {m['no_face']} no_face, {m['unreadable']} unreadable")


@app.command("align-lfw-mtcnn")
@friendly
def align_lfw_mtcnn(
    reference: Annotated[str, typer.Argument(help="reference set in align.references, e.g. sphereface_96x112")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Similarity-transform alignment of the MTCNN landmarks to a 5-point template (e.g. 96x112)."""
    from cdfv.align.stage import run_align_lfw_mtcnn

    m = run_align_lfw_mtcnn(load_params(params), reference)
    typer.echo(
        f"align_lfw_mtcnn {reference}: {m['aligned']} faces {m['width']}x{m['height']} "
        f"({m['no_face_fallback']} from the no-face fallback), landmark RMS {m['landmark_rms_px']} px"
    )


@app.command("encode-lfw")
@friendly
def encode_lfw(
    codec: Annotated[str, typer.Argument(help="codec x quality listed under codecs:, e.g. JPEG_Q1, HEVC_QP26")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Encode + decode every aligned LFW face with one codec (bitstreams, decoded faces, bpp/PSNR/MS-SSIM)."""
    from cdfv.encode.stage import run_encode_lfw

    s = run_encode_lfw(load_params(params), codec)
    a = s["all"]
    typer.echo(f"encode_lfw {codec}: {a['n']} faces, bpp_256 {a['bpp_256']}, PSNR {a['psnr']}, failed {s['n_failed']}")


@app.command("latents-vggface2")
@friendly
def latents_vggface2(
    codec: Annotated[str, typer.Argument(help="Balle2018 codec, e.g. Balle2018_mse_Q1")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Latent shards (entropy-decoded ŷ, 14x14 crops) of every VGGFace2 image x variant for cResNet39."""
    from cdfv.encode.stage import run_latents_vggface2

    s = run_latents_vggface2(load_params(params), codec)
    typer.echo(f"latents_vggface2 {codec}: {s['latents']} latents, storage/bitstream {s['storage_vs_bitstream']:.2f}")


@app.command("rd-report")
@friendly
def rd_report(params: ParamsOpt = Path("params.yaml")) -> None:
    """RD curves per codec series (dvc plots) and Bjøntegaard deltas vs encode.report.anchor."""
    from cdfv.rd.stage import run_rd_report

    m = run_rd_report(load_params(params))
    typer.echo(f"rd_report: {m['points']} points, anchor {m['anchor']}")


@app.command("encode-lfw-full")
@friendly
def encode_lfw_full(
    codec: Annotated[str, typer.Argument(help="learned codec listed in eval.b1_codecs, e.g. Cheng2020_mse_Q3")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Pipeline B1 (thesis ch. 5): whole 250^2 probe images padded to 256 -> codec -> decode -> crop to 250."""
    from cdfv.encode.stage import run_encode_lfw_full

    s = run_encode_lfw_full(load_params(params), codec)
    p = s["probes"]
    typer.echo(
        f"encode_lfw_full {codec}: {s['n_probes']} probes, bpp_256 {p['bpp_256']}, PSNR {p['psnr']}, "
        f"failed {s['n_failed']}"
    )


@app.command("align-lfw-full")
@friendly
def align_lfw_full(
    codec: Annotated[str, typer.Argument(help="learned codec listed in eval.b1_codecs")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Pipeline B1: align the decoded whole images with the detections of the ORIGINAL images."""
    from cdfv.align.stage import run_align_lfw_full

    m = run_align_lfw_full(load_params(params), codec)
    typer.echo(
        f"align_lfw_full {codec}: {m['faces']} faces aligned ({m['no_face_fallback']} from the no-face fallback)"
    )


@app.command("eval-lfw")
@friendly
def eval_lfw(
    model: Annotated[
        str, typer.Argument(help="solution, e.g. ResNet50_Original_Anchor, Dlib_JPEG_Q1, cResNet39_Balle2018_mse_Q1")
    ],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Embed, score and evaluate one solution on LFW View 2 (metrics JSON + ROC CSV)."""
    from cdfv.evaluate.stage import run_eval_lfw

    r = run_eval_lfw(load_params(params), model)
    bpp = "-" if r.get("bpp") is None else f"{r['bpp']:.3f}"
    typer.echo(
        f"eval_lfw {model}: TAR@1e-3 {r['tar_far_1e-3']:.3f}  TAR@1e-2 {r['tar_far_1e-2']:.3f}  "
        f"EER {r['eer']:.4f}  AUC {r['auc']:.4f}  bpp {bpp}  ({r['n_pairs']} pairs, {r['n_fallback_pairs']} fallback)"
    )


@app.command("report")
@friendly
def report(params: ParamsOpt = Path("params.yaml")) -> None:
    """Fig. 4 (PNG + rate-metric CSVs) and reports/table7.md from the eval and complexity metrics."""
    from cdfv.evaluate.stage import run_report

    out = run_report(load_params(params))
    typer.echo(f"report: {out['table']}, {out['figure']}")


def _maybe_torchrun(argv: list[str], params: Path) -> None:
    """Re-exec under torchrun (DDP) when more than one GPU is visible (train.device auto/cuda)."""
    import os

    from cdfv.train.distributed import torchrun_argv

    cmd = torchrun_argv([*argv, "--params", str(params)], load_params(params).train.device)
    if cmd:
        typer.echo(f"relaunching under torchrun: {' '.join(cmd)}", err=True)
        os.execv(cmd[0], cmd)


def _say_main(line: str) -> None:
    """Echo ``line`` from the main process only (every DDP rank runs the command)."""
    from cdfv.train.distributed import DistEnv

    if DistEnv.from_env().is_main:
        typer.echo(line)


@app.command("train-resnet50")
@friendly
def train_resnet50(params: ParamsOpt = Path("params.yaml")) -> None:
    """Two-phase ResNet50 training on VGGFace2 (CE over all ids, then FC2048 + ArcFace); resumes."""
    from cdfv.train.stage import run_train_resnet50

    _maybe_torchrun(["train-resnet50"], params)
    model = run_train_resnet50(load_params(params))
    _say_main(f"train_resnet50: {getattr(model, 'meta', {}).get('steps', '?')} steps -> models/resnet50/model.pt")


@app.command("train-cresnet39")
@friendly
def train_cresnet39(
    codec: Annotated[str, typer.Argument(help="learned codec whose latents are the input, e.g. Balle2018_mse_Q1")],
    params: ParamsOpt = Path("params.yaml"),
    latents: Annotated[
        str | None,
        typer.Option(
            help="shards (latents_vggface2 output) | online (g_a in the loop); "
            "default: the train.cresnet39 list holding CODEC"
        ),
    ] = None,
) -> None:
    """Two-phase cResNet39 training on VGGFace2 latents of CODEC (shards or online g_a); resumes."""
    from cdfv.train.stage import run_train_cresnet39

    _maybe_torchrun(["train-cresnet39", codec, *(["--latents", latents] if latents else [])], params)
    run_train_cresnet39(load_params(params), codec, latents=latents)
    _say_main(f"train_cresnet39 {codec}: -> models/cresnet39/{codec}/model.pt")


@app.command("complexity")
@friendly
def complexity(params: ParamsOpt = Path("params.yaml")) -> None:
    """GMAC (both conventions), kMAC/px, parameters and ms/pair of every Table-7 model."""
    from cdfv.complexity import run_complexity

    rows = run_complexity(load_params(params))
    for name, r in rows.items():
        ms = "-" if r["ms_per_pair"] is None else f"{r['ms_per_pair']:.2f}"
        e2e = "-" if r["e2e_ms_per_pair"] is None else f"{r['e2e_ms_per_pair']:.2f}"
        typer.echo(
            f"{name:32s} {r['gmac']:6.2f} GMAC ({r['gmac_paper_convention']:6.2f} paper)  "
            f"{ms} ms/pair network only, {e2e} end-to-end  {r['device']}"
        )


# ---- Li et al. 2019: joint texture + feature coding, TFQI bit allocation (docs/tfqi.md) ----------
QpArg = Annotated[int, typer.Argument(help="quantisation parameter of the grid (tfqi.texture_qps / tfqi.feature.qps)")]


@app.command("tfqi-faces")
@friendly
def tfqi_faces(params: ParamsOpt = Path("params.yaml")) -> None:
    """The 160x160 crops of every LFW View-2 pair image (detection box + margin, resized)."""
    from cdfv.tfqi.stage import run_tfqi_faces

    s = run_tfqi_faces(load_params(params))
    typer.echo(f"tfqi_faces: {s['cropped']} of {s['images']} crops ({s['from_fallback_box']} from a fallback box)")


@app.command("tfqi-embed")
@friendly
def tfqi_embed(params: ParamsOpt = Path("params.yaml")) -> None:
    """The L2-normalised deep feature of every lossless crop (FaceNet or dlib) and its LFW accuracy."""
    from cdfv.tfqi.stage import run_tfqi_embed

    s = run_tfqi_embed(load_params(params))
    typer.echo(f"tfqi_embed: {s['images']} {s['extractor']} features ({s['dim']}-d), accuracy {s['accuracy']:.4f}")


@app.command("tfqi-texture")
@friendly
def tfqi_texture(qp: QpArg, params: ParamsOpt = Path("params.yaml")) -> None:
    """HEVC intra of every crop at QP1; D1 = MSE; texture-only accuracy of the decoded crops."""
    from cdfv.tfqi.stage import run_tfqi_texture

    s = run_tfqi_texture(load_params(params), qp)
    typer.echo(
        f"tfqi_texture QP{qp}: {s['bpp']:.4f} bpp, MSE {s['mse']:.2f}, texture-only accuracy {s['accuracy']:.4f}"
    )


@app.command("tfqi-feature")
@friendly
def tfqi_feature(qp: QpArg, params: ParamsOpt = Path("params.yaml")) -> None:
    """Quantise at QP2, range-code, decode every feature; D2 = 1 - accuracy of the decoded features."""
    from cdfv.tfqi.stage import run_tfqi_feature

    s = run_tfqi_feature(load_params(params), qp)
    typer.echo(f"tfqi_feature QP{qp}: {s['bpp']:.5f} bpp, accuracy {s['accuracy']:.4f}")


@app.command("tfqi-fit")
@friendly
def tfqi_fit(params: ParamsOpt = Path("params.yaml")) -> None:
    """Fit D_t = a1 e^(b1 R_t) and D_f = a2 e^(b2 R_f) + c2 e^(d2 R_f) to the measured points."""
    from cdfv.tfqi.stage import run_tfqi_fit

    r = run_tfqi_fit(load_params(params))
    typer.echo(f"tfqi_fit: texture {r['texture']['status']}, feature {r['feature']['status']}")


@app.command("tfqi-allocate")
@friendly
def tfqi_allocate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Working-condition bit allocation vs the brute-force (QP1, QP2) grid at every budget and w1."""
    from cdfv.tfqi.stage import run_tfqi_allocate

    r = run_tfqi_allocate(load_params(params))
    for key, s in r["summary"].items():
        lost = "–" if s["max_tfqi_lost"] is None else f"{s['max_tfqi_lost']:.4f}"
        typer.echo(f"tfqi_allocate {key}: {s['budgets']} budgets, max TFQI lost by the model {lost}")


@app.command("tfqi-report")
@friendly
def tfqi_report(params: ParamsOpt = Path("params.yaml")) -> None:
    """reports/table_tfqi.md (ours beside the paper's), the figure and the rate-TFQI / rate-accuracy CSVs."""
    from cdfv.tfqi.stage import run_tfqi_report

    out = run_tfqi_report(load_params(params))
    typer.echo(f"tfqi_report: {out['table']}, {out['figure']}")


# ---- Bian et al. 2019 (docs/bian.md) ---------------------------------------------------------
@app.command("bian-faces")
@friendly
def bian_faces(params: ParamsOpt = Path("params.yaml")) -> None:
    """Bian training faces at 112x96: CASIA via MTCNN + alignment, else VGGFace2 re-aligned."""
    from cdfv.bian.faces import run_bian_faces

    m = run_bian_faces(load_params(params))
    typer.echo(f"bian_faces: {m['images']} faces, {m['identities']} identities ({m['source']})")


@app.command("bian-train")
@friendly
def bian_train(
    step: Annotated[str, typer.Argument(help="pretrain | sphere20 | joint")],
    channels: Annotated[int | None, typer.Argument(help="C of the compact map (pretrain, joint)")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Train one step of Bian et al.: codec MSE pre-training, sphere20 + LMCL, or joint LMCL training."""
    from cdfv.bian.stage import run_bian_train

    out = run_bian_train(load_params(params), step, channels)
    typer.echo(f"bian {step}{'' if channels is None else f' C={channels}'}: -> {out['model']}")


@app.command("bian-code-original")
@friendly
def bian_code_original(params: ParamsOpt = Path("params.yaml")) -> None:
    """The aligned LFW faces as PNG files (Table 1's original set)."""
    from cdfv.bian.coding import run_bian_code_original

    s = run_bian_code_original(load_params(params))
    typer.echo(f"bian_code_original: {s['images']} faces, {s['size_mb']:.3f} MB, {s['bpp']} bpp")


@app.command("bian-code-compnet")
@friendly
def bian_code_compnet(
    channels: Annotated[int, typer.Argument(help="C of the compact map")],
    model: Annotated[str, typer.Argument(help="pretrain | joint")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Code every LFW face: CompNet -> quantised map -> PNG bytes -> RecNet -> decoded face."""
    from cdfv.bian.coding import run_bian_code_compnet

    s = run_bian_code_compnet(load_params(params), channels, model)
    typer.echo(f"bian_code_compnet {s['point']}: {s['images']} faces, {s['size_mb']:.3f} MB, {s['bpp']:.3f} bpp")


@app.command("bian-code-codec")
@friendly
def bian_code_codec(
    codec: Annotated[str, typer.Argument(help="codec listed in bian.codecs, e.g. JPEG_Q1, JPEG2000_mse_R88")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Code every 112x96 LFW face with a conventional or learned codec (the project's encode loop)."""
    from cdfv.bian.coding import run_bian_code_codec

    s = run_bian_code_codec(load_params(params), codec)
    typer.echo(f"bian_code_codec {codec}: {s['images']} faces, {s['size_mb']:.3f} MB, {s['bpp']:.3f} bpp")


@app.command("eval-lfw-bian")
@friendly
def eval_lfw_bian(
    point: Annotated[str, typer.Argument(help="Original | CompNet_C<c>_<pretrain|joint> | a bian.codecs name")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """sphere20 on the decoded faces of one point: LFW View 2 accuracy, TAR@FAR, EER, AUC, size."""
    from cdfv.bian.evaluation import run_bian_eval

    r = run_bian_eval(load_params(params), point)
    typer.echo(
        f"eval_lfw_bian {point}: accuracy {100 * r['accuracy']:.2f} %  TAR@1e-3 {r['tar_far_1e-3']:.3f}  "
        f"EER {r['eer']:.4f}  size {r['size_mb']:.3f} MB  {r['bpp']:.3f} bpp"
    )


@app.command("report-bian")
@friendly
def report_bian(params: ParamsOpt = Path("params.yaml")) -> None:
    """Table 1 of Bian et al. beside the paper's values, rate-accuracy curves, BD-accuracy."""
    from cdfv.bian.report import run_bian_report

    out = run_bian_report(load_params(params))
    typer.echo(f"report_bian: {out['table']}, {out['figure']}")


@app.command("repro")
@friendly
def repro(
    workspace: Annotated[Path, typer.Argument(help="DVC workspace root (dvc.yaml + params.yaml)")] = Path("."),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; download and run nothing")] = False,
) -> None:
    """Run every stage whose inputs exist (``make repro``), then list what was skipped and what unlocks it."""
    from cdfv.repro.run import run_repro

    raise typer.Exit(run_repro(workspace, echo=typer.echo, dry_run=dry_run).exit_code)


@app.command("workspace")
@friendly
def workspace(
    dest: Annotated[Path, typer.Argument(help="folder to create (a DVC workspace)")],
    profile: Annotated[str, typer.Option(help="profile in profiles/ merged over params.yaml")] = "smoke",
    set_: Annotated[list[str] | None, typer.Option("--set", help="override KEY.PATH=YAML_VALUE")] = None,
    git: Annotated[bool, typer.Option("--git", help="also a git repository (for dvc exp / metrics diff)")] = False,
) -> None:
    """Create a DVC workspace running this repo's pipeline with a params profile (e.g. smoke)."""
    from cdfv.workspace import create_workspace, parse_overrides

    ws = create_workspace(Path.cwd(), dest, profile=profile, overrides=parse_overrides(set_ or []), git=git)
    typer.echo(str(ws))


# ---- Xiao et al. 2023 (docs/codec-training.md) ----------------------------------------------
@app.command("xiao-split")
@friendly
def xiao_split(params: ParamsOpt = Path("params.yaml")) -> None:
    """data/xiao/split.json: identity-disjoint LFW train/test identities."""
    from cdfv.xiao.split import run_xiao_split

    m = run_xiao_split(load_params(params))
    typer.echo(
        f"xiao_split: train {m['train_images']} images / {m['train_identities']} identities, "
        f"test {m['test_images']} / {m['test_identities']}"
    )


@app.command("eval-gallery")
@friendly
def eval_gallery(
    model: Annotated[str, typer.Argument(help="solution listed under xiao.models, e.g. ResNet50_HEVC_CRF23")],
    test: Annotated[bool, typer.Option("--test", help="only the split's test identities (xiao.test_models)")] = False,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Xiao et al.'s gallery FRR@FAR of one solution from its eval_lfw_* embeddings."""
    from cdfv.xiao.stage import run_eval_gallery

    r = run_eval_gallery(load_params(params), model, test)
    typer.echo(
        f"eval_gallery {model} ({r['subset']} identities): FRR@FAR=1e-2 {r['frr_far_1e-2']:.4f}  "
        f"FRR@FAR=1e-3 {r['frr_far_1e-3']:.4f}  ({r['n_queries']} queries of {r['n_query_identities']} identities)"
    )


@app.command("report-xiao")
@friendly
def report_xiao(params: ParamsOpt = Path("params.yaml")) -> None:
    """Xiao et al.: rate-FRR figure beside the paper's Fig. 1 points, paper-vs-ours table, BD-rates."""
    from cdfv.xiao.report import run_report_xiao

    r = run_report_xiao(load_params(params))
    typer.echo(f"report_xiao: {r['points']} points, {r['not_run']} not run -> reports/xiao.md")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
