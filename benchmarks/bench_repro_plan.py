"""Benchmark: what planning costs `make repro` (`cdfv repro`) on the paper's graph, beside `dvc status`.

    .venv/bin/python benchmarks/bench_repro_plan.py [--repeats 3]

A workspace with the paper's dvc.yaml + params.yaml (194 stages) and no data is created in a temporary
folder. Whole processes, alternated A B A B: A = ``dvc status`` (DVC's own check of every stage),
B = ``cdfv repro --dry-run`` (params validation, the graph, every stage's status, the plan with its
input checks; nothing downloaded, nothing run). Medians, their ratio B / A, and /proc/loadavg.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    if cmd[-1] == "--dry-run" and proc.returncode != 0:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from cdfv.workspace import create_workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = create_workspace(REPO, Path(tmp) / "ws", profile=None)
        status = [str(BIN / "dvc"), "status"]
        plan = [str(BIN / "cdfv"), "repro", "--dry-run"]
        times: dict[str, list[float]] = {"dvc status": [], "cdfv repro --dry-run": []}
        load = [os.getloadavg()[0]]
        for _ in range(a.repeats):
            times["dvc status"].append(_run(status, ws))
            times["cdfv repro --dry-run"].append(_run(plan, ws))
            load.append(os.getloadavg()[0])
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            json.dumps(
                {
                    "stages": 194,
                    "median_s": {k: round(v, 2) for k, v in med.items()},
                    "runs_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
                    "ratio_plan_over_status": round(med["cdfv repro --dry-run"] / med["dvc status"], 2),
                    "loadavg_1min": [round(x, 2) for x in load],
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
