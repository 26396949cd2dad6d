"""Training and inference throughput of ResNet50 / cResNet39 (the training performance targets).

Measures, on the device given (``auto`` = CUDA when present):

1. ResNet50 phase-1 training, images/s **end to end** (PNG decode in DataLoader workers ->
   on-device augmentation -> forward/backward/SGD) through the real :class:`cdfv.train.loop.Trainer`,
   and the same step on device-resident tensors (no data loading) to locate the bottleneck.
2. cResNet39 phase-1 training, latents/s end to end from real latent shards, and compute-only.
3. Inference per pair (paper protocol, 64 pairs per batch): ResNet50 anchor vs cResNet39, ratio.

Targets (one H100): ResNet50 >= 2,000 img/s, cResNet39 >= 8,000 latents/s, cResNet39
>= 4.8x faster per pair than ResNet50. On CPU the script runs with small batches and labels the
figures CPU. Usage::

    python benchmarks/bench_train.py --device auto --batch 64 --steps 30 [--vgg-root DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from cdfv.complexity import device_label, pair_step, table7_specs, time_step
from cdfv.config import parse_params
from cdfv.models import cresnet39, resnet50_caffe, resnet50_input

CODEC = "Balle2018_mse_Q1"


def replicated_tree(vgg_root: Path, dest: Path, min_images: int) -> Path:
    """The identity folders of ``vgg_root`` copied (as new identities) until ``min_images`` images exist.

    A phase-1 epoch must hold ``steps`` full batches for the throughput of the last epoch to mean
    anything; the fixture has 25 images, a 64 x 30 GPU run needs 1,920.
    """
    import shutil

    src = vgg_root / "train" if (vgg_root / "train").is_dir() else vgg_root
    ids = sorted(d for d in src.iterdir() if d.is_dir())
    per_copy = sum(len(list(d.iterdir())) for d in ids)
    for k in range(max(1, -(-min_images // per_copy))):
        for d in ids:
            shutil.copytree(d, dest / f"{d.name}_{k:03d}")
    return dest


def workspace(vgg_root: Path, tmp: Path, copies: int, device: torch.device) -> Path:
    """Ingest the VGGFace2 folder and write latent shards (``copies`` variants per image)."""
    from cdfv import paths
    from cdfv.data.vggface2 import ingest_vggface2
    from cdfv.io import read_rgb
    from cdfv.models.latent import online_encoder
    from cdfv.shards import LatentShardWriter
    from cdfv.train.data import augment

    cfg = parse_params({"vggface2": {"root": str(vgg_root), "val_identities": 2, "workers": 0}}).require("vggface2")
    rows = ingest_vggface2(cfg, tmp).to_pylist()
    enc = online_encoder(CODEC, pretrained=False, untrained_gain=10.0).to(device)
    faces = torch.stack([torch.from_numpy(read_rgb(tmp / r["path"])).permute(2, 0, 1) for r in rows])
    with LatentShardWriter(tmp / paths.VGGFACE2_LATENTS / CODEC, CODEC, 1) as w:
        for v in range(copies):
            views = augment(faces, 256, 224, 0.2, torch.Generator().manual_seed(v), train=v > 0)
            z = torch.cat([enc(views[i : i + 256].to(device)).cpu() for i in range(0, len(views), 256)])
            z = z.to(torch.int32)
            for r, zi in zip(rows, z.numpy()):
                w.add(
                    f"{r['image_id']}#{v}",
                    zi,
                    image_id=r["image_id"],
                    identity=r["identity"],
                    label=r["label"],
                    split=r["split"],
                    variant=v,
                )
    return tmp


def trainer_throughput(root: Path, model: str, device: str, batch: int, steps: int, workers: int) -> float:
    """Images (latents) per second of phase-1 training through the real Trainer (last epoch)."""
    from cdfv.train.loop import Trainer
    from cdfv.train.stage import cresnet39_spec, resnet50_spec

    params = parse_params(
        {
            "train": {
                "device": device,
                "batch_size": batch,
                "workers": workers,
                "checkpoint_every": 10**6,
                "max_steps_per_epoch": steps,
                "resnet50": {"phase1": {"epochs": 2}, "phase2": {"epochs": 0}},
                "cresnet39": {
                    "codecs": [CODEC],
                    "init_embedding_from_resnet50": False,
                    "phase1": {"epochs": 2},
                    "phase2": {"epochs": 0},
                },
            },
            "encode": {"learned": {"pretrained": False, "untrained_gain": 10.0}},
        }
    )
    spec = resnet50_spec(params) if model == "resnet50" else cresnet39_spec(params, CODEC, root)
    spec = dataclasses.replace(
        spec,
        out_dir=Path("bench") / model,
        report_dir=None,  # no DVCLive curves: the throughput of the training step itself
        checkpoint_dir=Path("bench") / f"{model}-checkpoints",
    )
    m = Trainer(spec, params.train, root, progress=False).fit()
    return float(m.meta["history"][-1]["images_per_s"])  # epoch 2: warm (cudnn autotune, allocator)


def compute_throughput(model: str, device: torch.device, batch: int, steps: int) -> float:
    """Phase-1 step on device-resident inputs: the ceiling without data loading."""
    cuda = device.type == "cuda"
    net = (resnet50_caffe(8631, False) if model == "resnet50" else cresnet39(192, 8631, False)).to(device)
    x = (
        torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8)
        if model == "resnet50"
        else torch.randint(-8, 8, (batch, 192, 14, 14)).float()
    ).to(device)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    y = torch.randint(0, 8631, (batch,), device=device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            inp = resnet50_input(x) if model == "resnet50" else x
            if cuda:
                inp = inp.contiguous(memory_format=torch.channels_last)
            loss = torch.nn.functional.cross_entropy(net(inp).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=None, help="default 64 on CUDA, 8 on CPU")
    ap.add_argument("--steps", type=int, default=None, help="default 30 on CUDA, 3 on CPU")
    ap.add_argument("--pairs", type=int, default=None, help="pairs per timed batch (default 64 CUDA / 8 CPU)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument(
        "--vgg-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared/fixtures/vggface2-mini"
    )
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    dev = torch.device(
        "cuda" if (a.device == "auto" and torch.cuda.is_available()) else ("cpu" if a.device == "auto" else a.device)
    )
    cuda = dev.type == "cuda"
    batch, steps = a.batch or (64 if cuda else 8), a.steps or (30 if cuda else 3)
    pairs, workers = a.pairs or (64 if cuda else 8), a.workers if a.workers is not None else (8 if cuda else 0)
    out: dict[str, object] = {"device": device_label(dev), "batch": batch, "steps": steps}

    with tempfile.TemporaryDirectory() as tmp:
        tree = replicated_tree(a.vgg_root, Path(tmp) / "vggface2", batch * steps)
        root = workspace(tree, Path(tmp) / "ws", 3, dev)  # variants: centre + 2 epochs
        for model in ("resnet50", "cresnet39"):
            out[f"{model}_train_end_to_end_per_s"] = trainer_throughput(root, model, str(dev), batch, steps, workers)
            out[f"{model}_train_compute_only_per_s"] = compute_throughput(model, dev, batch, steps)

    specs = {s.name: s for s in table7_specs([CODEC])}
    for name in ("ResNet50_Original_Anchor", f"cResNet39_{CODEC}", f"ResNet50_{CODEC}"):
        times = time_step(
            pair_step(specs[name], pairs, dev), dev, warmup=1 if not cuda else 5, repeats=3 if not cuda else 50
        )
        out[f"{name}_ms_per_pair"] = sum(times) / len(times) / pairs
    out["cresnet39_speedup_per_pair"] = (
        out["ResNet50_Original_Anchor_ms_per_pair"] / out[f"cResNet39_{CODEC}_ms_per_pair"]
    )
    out["pairs_per_batch"] = pairs
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
