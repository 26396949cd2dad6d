"""Build a DVC workspace that runs this repository's pipeline under a params profile.

``make smoke`` and the end-to-end tests use it: the workspace gets a copy of ``dvc.yaml``, the code it
tracks (``cdfv/``, ``pipelines/``) and ``params.yaml`` deep-merged with ``profiles/<name>.yaml`` plus
``--set`` overrides, then ``dvc init --no-scm``. Relative paths in the profile that point outside the
repository (``../shared/...``) are made absolute so the workspace can live anywhere.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cdfv.config import ParamsError, deep_merge, parse_params

COPIED = ("dvc.yaml", "cdfv", "pipelines", "profiles")
PATH_KEYS = ("archive_url", "pairs_url", "root", "weights", "url")


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
        node[parts[-1]] = yaml.safe_load(value)
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
    data = yaml.safe_load((repo / "params.yaml").read_text()) or {}
    if profile:
        prof = repo / "profiles" / f"{profile}.yaml"
        if not prof.is_file():
            raise ParamsError(f"{prof}: no such profile (see profiles/)")
        data = deep_merge(data, yaml.safe_load(prof.read_text()) or {})
    data = deep_merge(data, overrides or {})
    data = _absolutise(data, repo)
    parse_params(data, f"params.yaml + profiles/{profile}.yaml")
    return data


def create_workspace(
    repo: Path, dest: Path, profile: str | None = "smoke", overrides: dict[str, Any] | None = None
) -> Path:
    """Create (or refresh) ``dest`` as a DVC workspace; returns its absolute path."""
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
    if not (dest / ".dvc").is_dir():
        subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=dest, check=True)
        subprocess.run([sys.executable, "-m", "dvc", "config", "core.autostage", "false"], cwd=dest, check=True)
    return dest
