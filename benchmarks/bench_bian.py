"""Training throughput of Bian et al.'s joint model (CompNet → STE quantisation → RecNet → sphere20 → LMCL).

    .venv/bin/python benchmarks/bench_bian.py [--device cpu|cuda] [--batch 100] [--steps 20] [--rounds 3]

One optimiser step = what ``bian_joint@C`` does per batch (cdfv.bian.train.BianTrainer.objective):
uint8 faces on the device → [-1, 1] → random flip → CompNet (C = ``--channels``, params.yaml widths) →
straight-through quantisation → RecNet → sphere20 → CosFace (fp32) → backward → SGD. Data loading is
excluded (synthetic 112x96 faces already on the device). Configurations (``--configs``, default
``amp,fp32`` on CUDA, ``fp32`` on CPU) run in fresh processes alternating A B A B ``--rounds`` times;
each warms up 3 steps, then times ``--steps`` steps (CUDA synchronised). Also times the codec
pre-training step (MSE). Prints one JSON object with medians, ratios and /proc/loadavg.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(device: str, config: str, step: str, batch: int, steps: int, channels: int, classes: int) -> dict:
    import torch

    from cdfv.bian.models import BianNet, to_unit
    from cdfv.bian.train import BianTrainer, cosface, face_size
    from cdfv.config import load_params

    params = load_params(REPO / "params.yaml")
    params = params.model_copy(
        update={
            "bian": params.bian.model_copy(
                update={
                    "train": params.bian.train.model_copy(update={"device": device, "amp": config == "amp"}),
                    "channels": sorted({*params.bian.channels, channels}),
                }
            )
        }
    )
    tr = BianTrainer(step, channels, params, REPO, progress=False)
    torch.manual_seed(0)

    net = BianNet(channels, params.bian, face_size(params)).to(tr.device)
    crit = cosface(classes, params).to(tr.device) if step == "joint" else None
    trainable = [*net.parameters(), *(crit.parameters() if crit is not None else [])]
    opt = torch.optim.SGD(trainable, lr=1e-3, momentum=0.9)
    x8 = torch.randint(0, 256, (batch, 3, 112, 96), dtype=torch.uint8, device=tr.device)
    y = torch.randint(0, classes, (batch,), device=tr.device)

    def one() -> None:
        x = to_unit(x8)
        flip = (torch.rand(batch, device=tr.device) < 0.5).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(-1), x)
        opt.zero_grad(set_to_none=True)
        with tr._autocast():
            loss, _ = tr.objective(net.train(), crit, x, y)
        loss.backward()
        opt.step()

    for _ in range(3):
        one()
    if tr.cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    if tr.cuda:
        torch.cuda.synchronize()
    s = time.perf_counter() - t
    return {
        "images_per_s": batch * steps / s,
        "ms_per_step": 1000 * s / steps,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if tr.cuda else None,
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if tr.cuda else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--classes", type=int, default=10575, help="LMCL classes (CASIA-WebFace: 10,575)")
    ap.add_argument("--configs", default=None, help="comma list of amp,fp32")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        config, step = a.child.split(":")
        print(json.dumps(child(a.device, config, step, a.batch, a.steps, a.channels, a.classes)))
        return
    configs = (a.configs or ("amp,fp32" if a.device.startswith("cuda") else "fp32")).split(",")
    jobs = [f"{c}:{s}" for s in ("joint", "pretrain") for c in configs]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    runs: dict[str, list[dict]] = {j: [] for j in jobs}
    for _ in range(a.rounds):
        for j in jobs:  # A B A B: drift in machine load hits every configuration alike
            cmd = [sys.executable, __file__, "--child", j, "--device", a.device, "--batch", str(a.batch)]
            cmd += ["--steps", str(a.steps), "--channels", str(a.channels), "--classes", str(a.classes)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
            runs[j].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {j: statistics.median(r["images_per_s"] for r in v) for j, v in runs.items()}
    result = {
        "device": a.device,
        "gpu": runs[jobs[0]][0]["gpu"],
        "batch": a.batch,
        "steps": a.steps,
        "rounds": a.rounds,
        "channels": a.channels,
        "classes": a.classes,
        "torch_threads": runs[jobs[0]][0]["threads"],
        "images_per_s_median": {j: round(v, 1) for j, v in med.items()},
        "images_per_s_runs": {j: [round(r["images_per_s"], 1) for r in v] for j, v in runs.items()},
        "max_memory_gib": {j: v[0]["max_memory_gib"] for j, v in runs.items()},
        "loadavg_before": load_before,
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
    }
    if "amp" in configs and "fp32" in configs:
        result["ratio_amp_vs_fp32_joint"] = round(med["amp:joint"] / med["fp32:joint"], 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
