"""Latent shards: storage vs bitstream bytes, and random access vs one .npy file per latent.

    .venv/bin/python benchmarks/bench_shards.py [--n 10000] [--repeat 3] [--gain 10] [--pretrained]

Two kinds of 192x14x14 ŷ crops (Balle2018_mse_Q1):

* ``dense``: the real entropy-decoded ŷ of the lfw-mini faces through the codec; offline it is the
  seeded *untrained* model (``--gain`` = encode.learned.untrained_gain), whose ŷ is dense noise and
  whose (untrained) entropy model makes ~30 kB bitstreams. ``--pretrained`` uses the zoo weights.
* ``sparse``: synthetic trained-like ŷ — ~15 % of the channels active (each present with p = 0.9),
  rounded Laplacian values (scale 0.15-0.6) in them, zeros elsewhere; scaled so the ideal code
  length (per-channel empirical entropy of the full 16x16 ŷ) is ~0.10 bpp, the paper's q1 rate.
  Its "bitstream bytes" are that ideal code length (a real coder spends a little more, so the
  reported ratio is pessimistic).

For each kind: shard storage / bitstream bytes per encoding policy, then ``--n`` latents (the set
tiled) read in one shuffled order with ``reader.get(key)`` and ``reader.read_batch(64 keys)`` vs
``np.load`` of one ``.npy`` per latent; warm page cache (after one untimed pass) and cold
(``posix_fadvise(DONTNEED)`` on every file, fresh reader), median of ``--repeat`` runs. ``get``
results that are read-only views of the mapped shard (raw rows) are copied so their bytes are
really read; decoded rows (sparse/lz4/zstd) are new in-memory arrays like ``np.load``'s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_codecs import SHARED, faces  # noqa: E402

from cdfv.shards import LatentShardReader, LatentShardWriter, centre_crop  # noqa: E402

Q1_BPP, PIXELS = 0.10, 256 * 256


def dense_latents(gain: float, pretrained: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Real ŷ crops of the lfw-mini faces and their real bitstream bytes."""
    from cdfv.codecs.registry import get_codec
    from cdfv.config import EncodeParams, LearnedSettings, load_params
    from cdfv.weights import codec_path

    settings = LearnedSettings(pretrained=pretrained, untrained_gain=1.0 if pretrained else gain, device="cpu")
    weights = codec_path(load_params(), "Balle2018_mse_Q1") if pretrained else None  # weights.codecs.learned
    codec = get_codec("Balle2018_mse_Q1", EncodeParams(learned=settings), weights=weights)
    blobs, y = codec.encode_with_latents(faces(SHARED))
    return [np.ascontiguousarray(centre_crop(v)) for v in y], np.array([codec.rate_bytes(b) for b in blobs])


def ideal_bytes(y: np.ndarray) -> float:
    """Per-channel empirical entropy code length of one ŷ (N x H x W), in bytes."""
    bits = 0.0
    for c in y.reshape(y.shape[0], -1):
        _, cnt = np.unique(c, return_counts=True)
        bits -= float((cnt * np.log2(cnt / c.size)).sum())
    return bits / 8


def sparse_latents(
    n: int, seed: int = 0, channels: int = 192, active: float = 0.15
) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    act = rng.choice(channels, int(channels * active), replace=False)
    scale = rng.uniform(0.15, 0.6, len(act))
    out, nbytes = [], []
    for _ in range(n):
        y = np.zeros((channels, 16, 16), np.int32)
        on = rng.random(len(act)) < 0.9
        y[act[on]] = np.round(rng.laplace(0.0, scale[on][:, None, None], (int(on.sum()), 16, 16)))
        out.append(np.ascontiguousarray(centre_crop(y)))
        nbytes.append(ideal_bytes(y))
    return out, np.array(nbytes)


def drop_cache(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def interleaved_rates(
    runs: dict[str, tuple[Callable[[], None], Callable[[], None]]], n: int, repeat: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median reads/s of each ``(before, fn)`` (``fn`` reads ``n`` latents, ``before`` untimed) and the
    median of its per-repeat speed-up over ``runs["npy"]``; in every repeat the runs go one after the
    other, so a busy shared machine slows both sides of a ratio alike."""
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeat):
        for k, (before, fn) in runs.items():
            before()
            t = time.perf_counter()
            fn()
            rates[k].append(n / (time.perf_counter() - t))
    base = np.array(rates["npy"])
    return (
        {k: float(np.median(v)) for k, v in rates.items()},
        {k: float(np.median(np.array(v) / base)) for k, v in rates.items()},
    )


def bench_kind(
    kind: str, lat: list[np.ndarray], bit_bytes: np.ndarray, n: int, repeat: int, tmp: Path, policies: list[str]
) -> None:
    m = len(lat)
    order = np.random.default_rng(1).permutation(n)
    keys = [f"img{i:06d}" for i in range(n)]
    print(
        f"\n### {kind}: {m} distinct latents {lat[0].shape}, {np.mean([(v == 0).mean() for v in lat]):.1%} zeros, "
        f"values {min(int(v.min()) for v in lat)}..{max(int(v.max()) for v in lat)}, "
        f"bitstream {bit_bytes.mean():.0f} B/latent ({bit_bytes.mean() * 8 / PIXELS:.3f} bpp)"
    )
    npy = tmp / f"{kind.split()[0]}-npy"
    npy.mkdir()
    for i in range(n):
        np.save(npy / f"{keys[i]}.npy", lat[i % m].astype(np.int8))
    npy_files = sorted(npy.iterdir())
    npy_paths = [npy / f"{keys[i]}.npy" for i in order]

    def read_npy() -> None:
        for p in npy_paths:
            np.load(p)

    npy_bytes = sum(p.stat().st_size for p in npy_files)
    print(f"one .npy per latent (int8): {npy_bytes / n:.0f} B/latent on disk")
    print(
        "| policy | stored B/latent | / bitstream | rows raw/sparse/lz4/zstd | warm: npy /s | get /s | x npy | "
        "read_batch(64) /s | x npy | cold: npy /s | get /s | x npy | read_batch(64) /s | x npy |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for policy in policies:
        root = tmp / f"{kind.split()[0]}-{policy}"
        with LatentShardWriter(root, "Balle2018_mse_Q1", 1, encoding=policy) as w:
            for i in range(n):
                j = i % m
                w.add(keys[i], lat[j], image_id=keys[i], bitstream_bytes=int(round(bit_bytes[j])))
        ratio = (w.stored_bytes / n) / bit_bytes.mean()
        shards = sorted(root.glob("shard-*.arrow"))
        state: dict[str, LatentShardReader] = {}

        def fresh(cold: bool, root: Path = root, shards: list[Path] = shards) -> None:
            state.pop("r", None)  # unmap before dropping the pages
            if cold:
                drop_cache(shards)
            state["r"] = LatentShardReader(root / "index.parquet")

        ks = [keys[i] for i in order]

        def get_all() -> None:
            r = state["r"]
            for k in ks:
                x = r.get(k)
                if not x.flags.writeable:  # a raw row is a lazy view of the mapped shard: materialise it
                    np.array(x)

        def batches() -> None:
            r = state["r"]
            for s in range(0, n, 64):
                r.read_batch(ks[s : s + 64])

        def warm_up() -> None:
            fresh(False)
            batches()

        warm, xw = interleaved_rates(
            {"npy": (read_npy, read_npy), "get": (warm_up, get_all), "batch": (warm_up, batches)}, n, repeat
        )
        cold, xc = interleaved_rates(
            {
                "npy": (lambda: drop_cache(npy_files), read_npy),
                "get": (lambda: fresh(True), get_all),
                "batch": (lambda: fresh(True), batches),
            },
            n,
            repeat,
        )
        enc = w.encoding_counts
        print(
            f"| {policy} | {w.stored_bytes / n:,.0f} | {ratio:.2f}x | "
            f"{enc['raw']}/{enc['sparse']}/{enc['lz4']}/{enc['zstd']} | "
            f"{warm['npy']:,.0f} | {warm['get']:,.0f} | **{xw['get']:.1f}x** | {warm['batch']:,.0f} | "
            f"**{xw['batch']:.1f}x** | {cold['npy']:,.0f} | {cold['get']:,.0f} | **{xc['get']:.1f}x** | "
            f"{cold['batch']:,.0f} | **{xc['batch']:.1f}x** |"
        )
        state.clear()
        shutil.rmtree(root)
    shutil.rmtree(npy)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gain", type=float, default=10.0)
    ap.add_argument("--pretrained", action="store_true")
    ap.add_argument("--kinds", default="sparse,dense")
    ap.add_argument("--policies", default="auto,sparse,lz4,zstd,raw")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    print(f"machine: 2-core shared CPU; {a.n} random reads per run, median of {a.repeat} runs")
    try:
        for kind in a.kinds.split(","):
            lat, bb = sparse_latents(200) if kind == "sparse" else dense_latents(a.gain, a.pretrained)
            name = (
                kind if kind == "sparse" else f"dense ({'pretrained' if a.pretrained else f'untrained, gain {a.gain}'})"
            )
            bench_kind(name, lat, bb, a.n, a.repeat, tmp, a.policies.split(","))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
