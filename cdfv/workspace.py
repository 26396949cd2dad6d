"""Build a DVC workspace that runs this repository's pipeline under a params profile.

``make smoke`` and the end-to-end tests use it: the workspace gets a copy of ``dvc.yaml``, the code it
tracks (``cdfv/``, ``pipelines/``), the custom ``dvc plots`` templates (``.dvc/plots``) and
``params.yaml`` deep-merged with ``profiles/<name>.yaml`` plus ``--set`` overrides, then ``dvc init``.
Relative paths in the profile that point outside the repository (``../shared/...``) are made absolute
so the workspace can live anywhere.

With ``git=True`` (``cdfv workspace --git``, ``make smoke``) the workspace is also a git repository
(repo-local ``user.name`` / ``user.email``, so it commits anywhere, CI included) with an initial
commit, which ``dvc exp run``, ``dvc exp show``, ``dvc metrics diff`` and ``dvc plots diff`` need;
without it, ``dvc init --no-scm`` (faster, enough for ``dvc repro``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cdfv import paths
from cdfv.config import ParamsError, deep_merge, parse_params, read_yaml
from cdfv.errors import CdfvError

COPIED = ("dvc.yaml", "cdfv", "pipelines", "profiles")
PATH_KEYS = ("archive_url", "pairs_url", "root", "weights", "facenet_weights", "url")
#: the workspace's own git identity (repo-local config): commits work on machines without a global one
GIT_USER = ("cdfv workspace", "workspace@cdfv.invalid")
#: never committed in a workspace: DVC-cached data (as in the repository: a workspace made without git
#: and converted has outputs DVC never gitignored), bytecode, `dvc plots show` pages, temporaries
GITIGNORE = ("/data/", "/models/", "/reports/train/", "__pycache__/", "*.pyc", "/dvc_plots/", "*.tmp-*")
#: DVC's own (``dvc init`` writes it in git mode): its cache and temporary files stay out of git
DVC_GITIGNORE = ("/config.local", "/tmp", "/cache")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lfw.workers=2", "detect.backend=dlib"]`` -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ParamsError(f"--set {item!r}: expected KEY.PATH=VALUE")
        key, value = item.split("=", 1)
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = read_yaml(value)
    return out


def _absolutise(node: Any, base: Path) -> Any:
    """Turn relative ``../`` paths under path-like keys into absolute ones (relative to ``base``)."""
    if isinstance(node, dict):
        return {
            k: (
                str((base / v).resolve())
                if k in PATH_KEYS and isinstance(v, str) and v.startswith("../")
                else _absolutise(v, base)
            )
            for k, v in node.items()
        }
    return node


def profile_params(repo: Path, profile: str | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """params.yaml merged with a profile and overrides, validated, paths absolutised."""
    data = read_yaml((repo / "params.yaml").read_text()) or {}
    if profile:
        prof = repo / "profiles" / f"{profile}.yaml"
        if not prof.is_file():
            raise ParamsError(f"{prof}: no such profile (see profiles/)")
        data = deep_merge(data, read_yaml(prof.read_text()) or {})
    data = deep_merge(data, overrides or {})
    data = _absolutise(data, repo)
    parse_params(data, f"params.yaml + profiles/{profile}.yaml")
    return data


class WorkspaceError(CdfvError):
    """``git`` / ``dvc`` could not set the workspace up (the message has their output)."""


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise WorkspaceError(f"`{cmd[0]}` not found: install it (a git workspace needs git) or drop --git") from None
    if proc.returncode != 0:
        raise WorkspaceError(f"{cwd}: `{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def _ensure_lines(path: Path, lines: tuple[str, ...]) -> None:
    """Append the missing ``lines`` to a text file (created when absent); other lines are kept."""
    have = path.read_text().splitlines() if path.is_file() else []
    missing = [line for line in lines if line not in have]
    if missing:
        path.write_text("".join(f"{line}\n" for line in [*have, *missing]))


def create_workspace(
    repo: Path,
    dest: Path,
    profile: str | None = "smoke",
    overrides: dict[str, Any] | None = None,
    git: bool = False,
) -> Path:
    """Create (or refresh) ``dest`` as a DVC workspace; returns its absolute path.

    ``git``: make it a git repository too (initial commit on creation; an existing workspace made
    without git is converted). Refreshing never commits: the user commits results (``make smoke`` does).
    """
    repo, dest = repo.resolve(), dest.resolve()
    data = profile_params(repo, profile, overrides)
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = repo / name
        if not src.exists():
            continue
        tgt = dest / name
        if src.is_dir():
            shutil.copytree(src, tgt, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, tgt)
    new_params = yaml.safe_dump(data, sort_keys=False)
    params_file = dest / "params.yaml"
    if not params_file.exists() or params_file.read_text() != new_params:
        params_file.write_text(new_params)
    new_git = git and not (dest / ".git").exists()
    if new_git:
        _run(["git", "init", "-q"], dest)
        _run(["git", "config", "user.name", GIT_USER[0]], dest)
        _run(["git", "config", "user.email", GIT_USER[1]], dest)
    dvc = [sys.executable, "-m", "dvc"]
    if not (dest / ".dvc").is_dir():
        _run([*dvc, "init", "-q", *([] if git else ["--no-scm"])], dest)
        _run([*dvc, "config", "core.autostage", "false"], dest)
    elif git and "no_scm" in (dest / ".dvc" / "config").read_text():
        _run([*dvc, "config", "--unset", "core.no_scm"], dest)  # a workspace made without git, converted
    templates = repo / paths.PLOT_TEMPLATES
    if templates.is_dir():
        shutil.copytree(templates, dest / paths.PLOT_TEMPLATES, dirs_exist_ok=True)
    if git:
        _ensure_lines(dest / ".gitignore", GITIGNORE)
        _ensure_lines(dest / ".dvc" / ".gitignore", DVC_GITIGNORE)
    if new_git:
        _run(["git", "add", "-A"], dest)
        _run(["git", "commit", "-q", "-m", f"cdfv workspace (profile {profile})"], dest)
    return dest
