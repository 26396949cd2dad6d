"""Every DVC stage declares the code it runs: a change in any ``cdfv`` module a stage imports reruns it.

For each stage of ``dvc.yaml`` (foreach/matrix expanded by DVC itself) the test finds the ``cdfv``
command its ``cmd`` runs, collects the modules that command imports (statically, transitively, every
``import`` statement in a module counts, also inside functions) and fails naming each module file no
dependency covers. Shared infrastructure whose behaviour reaches stages through params or that does
not shape outputs is allowlisted and not descended into, so adding a params block for a new system
does not rerun every stage.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Infrastructure every stage uses; its effect on results reaches stages through params.yaml
#: (``config``), or it moves bytes without shaping them (``io``, ``chunks``: batching only;
#: ``download``, ``weights``: deliver the file whose url and sha256 the stage's params name).
ALLOWLIST = {
    f"cdfv/{m}.py"
    for m in ("__init__", "cli", "config", "errors", "paths", "schemas", "io", "chunks", "download", "weights")
}


def _module_file(name: str) -> Path | None:
    p = REPO / Path(*name.split("."))
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    if p.with_suffix(".py").is_file():
        return p.with_suffix(".py")
    return None


def _with_parents(name: str) -> set[Path]:
    """The module file of ``name`` and of every package above it (importing runs their ``__init__``)."""
    parts = name.split(".")
    return {f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i]))) is not None}


def _imported(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            names.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            names.add(n.module)
            names.update(f"{n.module}.{a.name}" for a in n.names)  # `from pkg import module`
    return {m for m in names if m == "cdfv" or m.startswith("cdfv.")}


@cache
def _closure(start: frozenset[str]) -> frozenset[str]:
    """Repository-relative files of every ``cdfv`` module reached from ``start`` (allowlist not descended)."""
    todo = {f for m in start for f in _with_parents(m)}
    seen: set[Path] = set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        if f.relative_to(REPO).as_posix() in ALLOWLIST:
            continue
        for m in _imported(ast.parse(f.read_text())):
            todo |= _with_parents(m) - seen
    return frozenset(f.relative_to(REPO).as_posix() for f in seen)


def _cli_commands() -> dict[str, frozenset[str]]:
    """``cdfv`` command name -> modules its function imports (and the cli helpers it calls import)."""
    tree = ast.parse((REPO / "cdfv" / "cli.py").read_text())
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    out: dict[str, frozenset[str]] = {}
    for f in funcs.values():
        for d in f.decorator_list:
            if isinstance(d, ast.Call) and getattr(d.func, "attr", None) == "command" and d.args:
                called = {n.func.id for n in ast.walk(f) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
                mods = _imported(f).union(*(_imported(funcs[c]) for c in called if c in funcs))
                out[ast.literal_eval(d.args[0])] = frozenset(mods)
    return out


@pytest.fixture(scope="module")
def stages() -> list[tuple[str, str, list[str]]]:
    """(stage name, cmd, deps) of every stage, foreach/matrix expanded with the paper's params."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return [(s.addressing, s.cmd, [d.def_path for d in s.deps]) for s in repo.index.stages]


def test_every_stage_runs_a_cdfv_command(stages: list[tuple[str, str, list[str]]]) -> None:
    commands = _cli_commands()
    assert stages, "dvc.yaml defines no stages"
    for name, cmd, _ in stages:
        words = cmd.split()
        assert words[0] == "cdfv" and words[1] in commands, f"{name}: cmd {cmd!r} is not a cdfv command"


def test_every_imported_module_is_a_dependency(stages: list[tuple[str, str, list[str]]]) -> None:
    commands = _cli_commands()
    missing: dict[str, list[str]] = {}
    for name, cmd, deps in stages:
        code = _closure(commands[cmd.split()[1]]) - ALLOWLIST
        uncovered = [f for f in sorted(code) if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
        if uncovered:
            missing[name] = uncovered
    assert not missing, "stages that import modules their deps do not cover:\n" + "\n".join(
        f"  {s}: {', '.join(files)}" for s, files in missing.items()
    )


def test_the_walker_sees_function_level_and_package_imports() -> None:
    """The oracle itself: a module imported inside a function, and the packages above it, count."""
    reached = _closure(frozenset({"cdfv.codecs.registry"}))
    assert "cdfv/codecs/hevc.py" in reached  # imported inside get_codec()
    assert "cdfv/codecs/__init__.py" in reached
    assert "cdfv/config.py" in reached and "cdfv/errors.py" in reached
    assert not any(f.startswith("cdfv/evaluate/") for f in reached)
