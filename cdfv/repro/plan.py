"""Which stages of the DVC graph can run here, which cannot and the one action that unlocks them (pure).

The graph comes from ``dvc.yaml`` (stage names, deps, outs, params keys); nothing here knows a stage by
name. A stage **runs** when DVC would rerun it (it or an upstream stage changed) and every input it
*requires* will exist: its external inputs (found through the params keys it lists, see
:mod:`cdfv.repro.externals`) are present, and no upstream stage whose output it reads is skipped.

Two kinds of dependency on another stage's output:

* **required**: the dep is that output or lies inside it (``data/processed/lfw/JPEG_Q1``): a skipped
  producer skips the stage.
* **collected**: the dep is a directory holding outputs of several stages (``reports/metrics/rate``,
  ``reports/metrics``): the stage builds from whatever its producers wrote (``rd_report``, ``report``);
  it is skipped only when none of them can write anything and the directory does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageNode:
    """One stage of ``dvc.yaml`` as the planner sees it (paths relative to the workspace, posix)."""

    name: str
    params: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()

    @property
    def item(self) -> str | None:
        """The ``foreach``/``matrix`` item of ``name@item`` (None for a plain stage)."""
        return self.name.split("@", 1)[1] if "@" in self.name else None


@dataclass
class Edges:
    """Producer relations between stages: ``required[s]`` / ``collected[s][dep]`` -> producing stages."""

    required: dict[str, list[str]] = field(default_factory=dict)
    collected: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    orphans: dict[str, list[str]] = field(default_factory=dict)  # deps no stage produces

    def upstream(self, name: str) -> set[str]:
        return {*self.required.get(name, []), *(p for ps in self.collected.get(name, {}).values() for p in ps)}


def _ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a/b/c", "a/b", "a"]`` (the path and every folder above it)."""
    parts = path.rstrip("/").split("/")
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def edges(stages: Sequence[StageNode]) -> Edges:
    """Required and collected producers of every stage's deps (DVC's own overlap rule, split in two)."""
    rank = {s.name: i for i, s in enumerate(stages)}
    exact: dict[str, list[str]] = {}  # out path -> producers
    under: dict[str, list[str]] = {}  # folder -> producers of outs strictly inside it
    for s in stages:
        for o in s.outs:
            first, *above = _ancestors(o)
            exact.setdefault(first, []).append(s.name)
            for a in above:
                under.setdefault(a, []).append(s.name)
    out = Edges()
    for s in stages:
        req: list[str] = []
        coll: dict[str, list[str]] = {}
        orphans: list[str] = []
        for dep in s.deps:
            inside = [p for a in _ancestors(dep) for p in exact.get(a, []) if p != s.name]
            holds = [p for p in under.get(dep.rstrip("/"), []) if p != s.name]
            req += [p for p in inside if p not in req]
            if holds and not inside:
                coll[dep] = sorted(set(holds), key=rank.__getitem__)
            if not inside and not holds:
                orphans.append(dep)
        out.required[s.name], out.collected[s.name], out.orphans[s.name] = req, coll, orphans
    return out


def topological(stages: Sequence[StageNode], e: Edges) -> list[str]:
    """Upstream first, otherwise in ``dvc.yaml`` order (the first stage whose upstream is done comes next).
    Raises on a cycle (DVC would too)."""
    names = [s.name for s in stages]
    pending = {n: set(e.upstream(n)) & set(names) for n in names}
    order: list[str] = []
    while pending:
        nxt = next((n for n in names if n in pending and not pending[n]), None)
        if nxt is None:
            raise ValueError(f"dependency cycle among {sorted(pending)}")
        order.append(nxt)
        del pending[nxt]
        for deps in pending.values():
            deps.discard(nxt)
    return order


@dataclass
class Plan:
    """The planner's decision, stage by stage (names in topological order)."""

    order: list[str]
    up_to_date: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # stage -> the action that unlocks it
    blocked_by: dict[str, str] = field(default_factory=dict)  # stage -> upstream skipped stage (not its own)


def make_plan(
    stages: Sequence[StageNode],
    changed: Iterable[str],
    missing_inputs: Callable[[StageNode], str | None],
    exists: Callable[[str], bool],
) -> Plan:
    """Decide what runs.

    ``changed``: stages DVC reports as changed (descendants of those that run rerun too); ``missing_inputs(stage)``:
    the action that provides a missing external input, or None (called only for stages that would run
    and are not already skipped, so nothing is fetched for a stage that cannot run anyway);
    ``exists(path)``: whether a dep path exists in the workspace.
    """
    e = edges(stages)
    by_name = {s.name: s for s in stages}
    order = topological(stages, e)
    changed = set(changed)
    plan = Plan(order=order)
    running: set[str] = set()
    for name in order:
        stage = by_name[name]
        # DVC reruns a stage that changed or whose upstream reruns (a skipped upstream writes nothing new)
        if name not in changed and not (e.upstream(name) & running):
            plan.up_to_date.append(name)
            continue
        if _blocked(stage, e, plan, exists) is not None:
            continue
        action = missing_inputs(stage)
        if action is not None:
            plan.skipped[name] = action
            continue
        plan.run.append(name)
        running.add(name)
    return plan


def _blocked(stage: StageNode, e: Edges, plan: Plan, exists: Callable[[str], bool]) -> str | None:
    """Skip ``stage`` for an upstream reason (records it in ``plan``) or return None."""
    for up in e.required[stage.name]:
        if up in plan.skipped:
            plan.skipped[stage.name] = plan.skipped[up]
            plan.blocked_by[stage.name] = plan.blocked_by.get(up, up)
            return plan.skipped[up]
    for dep in e.orphans[stage.name]:
        if not exists(dep):
            plan.skipped[stage.name] = f"{dep} is missing and no stage in dvc.yaml makes it: restore it"
            return plan.skipped[stage.name]
    for dep, producers in e.collected[stage.name].items():
        if not exists(dep) and all(p in plan.skipped for p in producers):
            up = producers[0]
            plan.skipped[stage.name] = plan.skipped[up]
            plan.blocked_by[stage.name] = plan.blocked_by.get(up, up)
            return plan.skipped[up]
    return None


@dataclass
class Outcome:
    """What happened to the planned stages after ``dvc repro``."""

    done: list[str]
    failed: list[str]  # failed on their own (a bug, a bad input, a crash)
    after_failure: dict[str, str]  # stage -> the failed upstream stage it could not run without
    up_to_date: list[str]
    skipped: dict[str, str]
    blocked_by: dict[str, str]

    @property
    def exit_code(self) -> int:
        """Non-zero only when a stage failed for a reason other than a missing input."""
        return 1 if self.failed else 0


def outcome(stages: Sequence[StageNode], plan: Plan, still_changed: Iterable[str]) -> Outcome:
    """Classify the planned stages once ``dvc repro`` returned: ``still_changed`` = DVC's status now."""
    e = edges(stages)
    bad = set(still_changed) & set(plan.run)
    failed: list[str] = []
    after: dict[str, str] = {}
    for name in plan.run:
        if name not in bad:
            continue
        ups = [u for u in e.required[name] if u in failed or u in after]
        if ups:
            after[name] = after.get(ups[0], ups[0])
        else:
            failed.append(name)
    return Outcome(
        done=[n for n in plan.run if n not in bad],
        failed=failed,
        after_failure=after,
        up_to_date=list(plan.up_to_date),
        skipped=dict(plan.skipped),
        blocked_by=dict(plan.blocked_by),
    )


def compact(names: Iterable[str]) -> str:
    """``a, enc@X, enc@Y`` -> ``a, enc@{X,Y}`` (stage groups in first-seen order)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        base, _, item = n.partition("@")
        groups.setdefault(base, [])
        if item:
            groups[base].append(item)
    parts = []
    for base, items in groups.items():
        if not items:
            parts.append(base)
        elif len(items) == 1:
            parts.append(f"{base}@{items[0]}")
        else:
            parts.append(f"{base}@{{{','.join(items)}}}")
    return ", ".join(parts)


def summary(o: Outcome) -> str:
    """The closing summary: stages done, stages skipped grouped by the one action that unlocks them, failures."""
    lines = [
        f"cdfv repro: {len(o.done)} stage(s) run, {len(o.up_to_date)} up to date, {len(o.skipped)} skipped "
        f"(input missing), {len(o.failed)} failed"
        + (f", {len(o.after_failure)} not run after a failure" if o.after_failure else "")
    ]
    if o.done:
        lines.append(f"  done: {compact(o.done)}")
    if o.up_to_date:
        lines.append(f"  up to date: {compact(o.up_to_date)}")
    by_action: dict[str, list[str]] = {}
    for name, action in o.skipped.items():
        by_action.setdefault(action, []).append(name)
    if by_action:
        lines.append("  skipped, and the one action that unlocks each group:")
        for action, names in by_action.items():
            first, *rest = action.splitlines()
            lines.append(f"    - {first}")
            lines += [f"      {r}" for r in rest]
            lines.append(f"      skipped: {compact(names)}")
    if o.failed:
        lines.append(f"  FAILED (see the dvc output above): {compact(o.failed)}")
    if o.after_failure:
        lines.append(f"  not run because an upstream stage failed: {compact(o.after_failure)}")
    return "\n".join(lines)
