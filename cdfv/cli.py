"""`cdfv` command line: one thin command per DVC stage (run from the workspace root).

Each command loads and validates ``params.yaml`` first, then calls the stage's ``run_*`` function.
Errors a user can fix (bad params, missing data, corrupt input) print one clear message and exit 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar

import typer

from cdfv.config import ParamsError, load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file to read")]
F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """An error whose message tells the user what to fix (no traceback printed)."""


USER_ERRORS: tuple[type[BaseException], ...] = (ParamsError, UserError, FileNotFoundError)


def friendly(fn: F) -> F:
    """Turn user-fixable exceptions into a one-line message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from cdfv.data.convert import CorruptImagesError
        from cdfv.data.pairs import PairsFormatError
        from cdfv.download import DownloadError
        from cdfv.io import ImageReadError

        try:
            return fn(*args, **kwargs)
        except (*USER_ERRORS, ImageReadError, DownloadError, CorruptImagesError, PairsFormatError) as err:
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
    from cdfv.align_stage import run_align_lfw

    m = run_align_lfw(load_params(params))
    typer.echo(f"align_lfw: {m['aligned']} faces aligned ({m['no_face_fallback']} from the no-face fallback)")


@app.command("workspace")
@friendly
def workspace(
    dest: Annotated[Path, typer.Argument(help="folder to create (a DVC workspace)")],
    profile: Annotated[str, typer.Option(help="profile in profiles/ merged over params.yaml")] = "smoke",
    set_: Annotated[list[str], typer.Option("--set", help="override KEY.PATH=YAML_VALUE")] = [],
) -> None:
    """Create a DVC workspace running this repo's pipeline with a params profile (e.g. smoke)."""
    from cdfv.workspace import create_workspace, parse_overrides

    ws = create_workspace(Path.cwd(), dest, profile=profile, overrides=parse_overrides(set_))
    typer.echo(str(ws))


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
