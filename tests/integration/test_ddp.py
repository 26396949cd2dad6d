"""DDP that has run: ``torchrun --nproc-per-node 2`` on CPU (gloo) trains both phases of the real loop on
vggface2-mini. The ranks stay in sync (equal parameters after the last step although each rank saw other
images), only rank 0 reports, and a run killed between two checkpoints resumes to the very weights of an
uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdfv.train.loop import KILL_ENV
from tests.conftest import REPO
from tests.unit.test_train import vgg_root  # noqa: F401 - module fixture: vggface2-mini ingested + latent shards

pytestmark = pytest.mark.slow

#: one rank of the run: the unit tests' cResNet39 recipe (2 + 1 epochs of 2 steps, checkpoint every 3 steps)
WORKER = """
import hashlib, json, os, sys
from pathlib import Path

from tests.unit.test_train import params_for, run

root, out = Path(sys.argv[1]), Path(sys.argv[2])
model = run(root, params_for(root))


def digest(tensors):
    return hashlib.sha256(b"".join(t.detach().contiguous().numpy().tobytes() for t in tensors)).hexdigest()


(out / f"rank{os.environ['RANK']}.json").write_text(
    json.dumps(
        {
            "parameters": digest(p for _, p in sorted(model.named_parameters())),
            "state": digest(v for _, v in sorted(model.state_dict().items())),
            "steps": getattr(model, "meta", {}).get("steps"),
        }
    )
)
"""


def torchrun(root: Path, out: Path, script: Path, kill_at: int | None = None) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop(KILL_ENV, None)
    if kill_at is not None:
        env[KILL_ENV] = str(kill_at)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    return subprocess.run([*cmd, str(root), str(out)], capture_output=True, text=True, env=env, timeout=300)


def ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_ranks_stay_in_sync_report_once_and_resume_after_a_kill(vgg_root: Path, tmp_path: Path) -> None:  # noqa: F811
    script = tmp_path / "worker.py"
    script.write_text(WORKER)

    full = torchrun(vgg_root, tmp_path / "full", script)
    assert full.returncode == 0, full.stderr[-4000:]
    r0, r1 = ranks(tmp_path / "full")
    assert r0["parameters"] == r1["parameters"]  # gradients all-reduced: one model on both ranks
    # only rank 0 reports: one line per epoch, one start line, rank 1's model summary is not printed
    err = full.stderr
    assert err.count("phase 1 epoch 1/2") == 1 and err.count("phase 2 epoch 1/1") == 1, err[-3000:]
    assert err.count("training from step 0") == 1, err[-3000:]

    killed = torchrun(vgg_root, tmp_path / "killed", script, kill_at=4)
    assert killed.returncode != 0 and f"{KILL_ENV}=4" in killed.stderr, killed.stderr[-3000:]
    assert not (tmp_path / "killed" / "rank0.json").exists()

    resumed = torchrun(vgg_root, tmp_path / "resumed", script)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert resumed.stderr.count("[checkpoint] resuming from") == 1, resumed.stderr[-3000:]  # rank 0 says it, once
    assert "step-00000003.pt" in resumed.stderr and "training from step 0" not in resumed.stderr
    s0, s1 = ranks(tmp_path / "resumed")
    assert s0["parameters"] == s1["parameters"]
    assert s0["state"] == r0["state"]  # bit-identical to the uninterrupted run (weights and BN statistics)
