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
    bpp = "-" if r["bpp"] is None else f"{r['bpp']:.3f}"
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


@app.command("train-resnet50")
@friendly
def train_resnet50(params: ParamsOpt = Path("params.yaml")) -> None:
    """Two-phase ResNet50 training on VGGFace2 (CE over all ids, then FC2048 + ArcFace); resumes."""
    from cdfv.train.stage import run_train_resnet50

    _maybe_torchrun(["train-resnet50"], params)
    model = run_train_resnet50(load_params(params))
    typer.echo(f"train_resnet50: {getattr(model, 'meta', {}).get('steps', '?')} steps -> models/resnet50/model.pt")


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
    typer.echo(f"train_cresnet39 {codec}: -> models/cresnet39/{codec}/model.pt")


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
) -> None:
    """Create a DVC workspace running this repo's pipeline with a params profile (e.g. smoke)."""
    from cdfv.workspace import create_workspace, parse_overrides

    ws = create_workspace(Path.cwd(), dest, profile=profile, overrides=parse_overrides(set_ or []))
    typer.echo(str(ws))


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
