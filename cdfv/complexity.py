"""Complexity of every model of the paper's Table 7: MACs (ptflops), kMAC/px, parameters, timing.

Two MAC conventions are reported (thesis §6.4.2, Table 7):

* ``gmac`` — ptflops 0.7.5 ``pytorch`` backend as is: true MACs (a transposed convolution is
  counted at its *input* positions). GDN/IGDN are not counted by either convention.
* ``gmac_paper_convention`` — every ``ConvTranspose2d`` counted at its *output* positions (the
  older ptflops behaviour the paper used: 4x the true MACs of a stride-2 transposed conv). It
  reproduces the paper's decoded-anchor figures 13.55 / 25.3 GMAC; ResNet50 / cResNet39 have no
  transposed convolutions, so both conventions agree there (3.90 / 2.37 / 2.38).

kMAC/px divides by 224^2 for every model (paper). A timed batch is 64 *pairs* (128 images), two
timings per model (thesis §6.4, Table 7):

* **network only** (``ms_per_batch`` / ``ms_per_pair``): inputs already on the device; A = 2 ResNet50
  passes on faces, B = ``g_s`` of the probe latent + border crop + 2 ResNet50 passes, C = latent
  centre crop of both + 2 cResNet39 passes.
* **end-to-end per pair** (``e2e_ms_per_batch`` / ``e2e_ms_per_pair``), the path the paper timed:
  A = for both images of a pair, read + decode the LFW PNG, crop/align/resize with its detection
  (:func:`cdfv.align.geometry.align_face`), ResNet50; B = probe: range-decode the bitstream + ``g_s`` + border
  crop (the codec's real decoder), ResNet50, reference as in A; C = both: range-decode ŷ from the
  bitstream (:meth:`cdfv.codecs.learned.LearnedCodec.decode_latents`), crop 14x14, cResNet39. The
  first ``batch_pairs`` LFW View-2 pairs are used; their bitstreams are encoded beforehand (encoding
  and detection are excluded, as in the paper).

Network weights are random (MACs and time do not depend on them); the codec uses
``encode.learned`` (its weights set the bitstream sizes, hence the range-decoding time).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cdfv.errors import CdfvError
from cdfv.models import cresnet39, resnet50_caffe, resnet50_input
from cdfv.models.latent import parse_codec_name, synthesis

FACE = 224
CODEC_PAD = 16
PIXELS = FACE * FACE  #: kMAC/px denominator for every model (paper)
ANCHOR = "ResNet50_Original_Anchor"

#: the paper's Table 7 GMAC column (paper convention)
PAPER_GMAC = {
    ANCHOR: 3.89,
    **{f"ResNet50_Balle2018_mse_Q{q}": (13.55 if q <= 5 else 25.3) for q in (1, 3, 6, 8)},
    **{f"cResNet39_Balle2018_mse_Q{q}": (2.36 if q <= 5 else 2.38) for q in (1, 3, 6, 8)},
}


class ComplexityError(CdfvError, RuntimeError):
    """MAC counting failed (ptflops swallows the exception; we do not)."""


# ---------------------------------------------------------------------------------------------
# Networks exactly as timed / counted
# ---------------------------------------------------------------------------------------------
class DecodedAnchor(nn.Module):
    """Ballé ``g_s`` (latent M x 16 x 16 -> 3 x 256 x 256) -> drop the 16 px border -> ResNet50."""

    def __init__(self, g_s: nn.Module, resnet: nn.Module, pad: int = CODEC_PAD) -> None:
        super().__init__()
        self.g_s, self.resnet, self.pad = g_s, resnet, pad

    def decode(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Latent -> 224 face, float 0..255 (what the codec's decoder then the crop produce)."""
        x = self.g_s(y_hat).clamp_(0, 1)
        p = self.pad
        return x[..., p : x.shape[-2] - p, p : x.shape[-1] - p] * 255.0

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.resnet.embed(resnet50_input(self.decode(y_hat)))


class _Embed(nn.Module):
    """``model.embed`` as ``forward`` (ptflops calls ``forward``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)


@dataclass(frozen=True)
class ModelSpec:
    """One row of Table 7: the network as counted and its (C, H, W) input."""

    name: str
    kind: str  # "anchor" | "decoded" | "compressed"
    codec: str | None
    net: nn.Module
    input_res: tuple[int, int, int]


def table7_specs(codecs: list[str]) -> list[ModelSpec]:
    """The anchor, one decoded anchor and one cResNet39 per learned codec (Table 7 rows)."""
    specs = [ModelSpec(ANCHOR, "anchor", None, _Embed(resnet50_caffe(None, True)), (3, FACE, FACE))]
    for codec in codecs:
        m = parse_codec_name(codec).latent_channels
        full = (FACE + 2 * CODEC_PAD) // 16
        specs.append(
            ModelSpec(
                f"ResNet50_{codec}",
                "decoded",
                codec,
                DecodedAnchor(synthesis(codec), resnet50_caffe(None, True)),
                (m, full, full),
            )
        )
    for codec in codecs:
        m = parse_codec_name(codec).latent_channels
        specs.append(
            ModelSpec(f"cResNet39_{codec}", "compressed", codec, _Embed(cresnet39(m, None, True)), (m, 14, 14))
        )
    return specs


# ---------------------------------------------------------------------------------------------
# MACs
# ---------------------------------------------------------------------------------------------
def paper_convention_hooks() -> dict[type[nn.Module], Callable[..., None]]:
    """ptflops hooks counting ``ConvTranspose2d`` at output positions (the paper's figures)."""
    from ptflops.pytorch_ops import conv_flops_counter_hook

    return {nn.ConvTranspose2d: partial(conv_flops_counter_hook, transpose=False)}


def count_macs(
    net: nn.Module, input_res: tuple[int, ...], paper_convention: bool = False, backend: str = "pytorch"
) -> tuple[int, int]:
    """(MACs, parameters) of one forward pass on a single ``input_res`` sample (ptflops)."""
    from ptflops import get_model_complexity_info

    was_training = net.training
    net.eval()
    try:
        macs, params = get_model_complexity_info(
            net,
            tuple(input_res),
            as_strings=False,
            print_per_layer_stat=False,
            backend=backend,
            custom_modules_hooks=paper_convention_hooks() if paper_convention else {},
        )
    finally:
        net.train(was_training)
    if macs is None or params is None:
        raise ComplexityError(f"ptflops failed on {type(net).__name__} with input {input_res} (see the trace above)")
    return int(macs), int(params)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; use device: auto or cpu")
    return torch.device(device)


def device_label(device: torch.device) -> str:
    """``CUDA <name>`` or ``CPU <model> (<n> threads)``: timings are labelled with it."""
    if device.type == "cuda":
        return f"CUDA {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu} ({torch.get_num_threads()} threads)"


def pair_step(spec: ModelSpec, pairs: int, device: torch.device, seed: int = 0) -> Callable[[], torch.Tensor]:
    """A closure computing both embeddings of ``pairs`` pairs for one Table-7 row."""
    g = torch.Generator().manual_seed(seed)
    net = spec.net.to(device).eval()
    if spec.kind == "anchor":
        faces = torch.randint(0, 256, (2, pairs, 3, FACE, FACE), generator=g, dtype=torch.uint8).to(device)
        model = net.model

        def step() -> torch.Tensor:
            return torch.stack([model.embed(resnet50_input(faces[i])) for i in range(2)])

    elif spec.kind == "decoded":
        c, h, w = spec.input_res
        probe = torch.randint(-3, 4, (pairs, c, h, w), generator=g).float().to(device)
        ref = torch.randint(0, 256, (pairs, 3, FACE, FACE), generator=g, dtype=torch.uint8).to(device)

        def step() -> torch.Tensor:
            a = net.resnet.embed(resnet50_input(net.decode(probe)))
            b = net.resnet.embed(resnet50_input(ref))
            return torch.stack([a, b])

    else:
        c = spec.input_res[0]
        full = (FACE + 2 * CODEC_PAD) // 16
        latents = torch.randint(-3, 4, (2, pairs, c, full, full), generator=g).float().to(device)
        model = net.model

        def step() -> torch.Tensor:
            return torch.stack([model.embed(latents[i][..., 1:15, 1:15]) for i in range(2)])

    return step


def time_step(step: Callable[[], torch.Tensor], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls after ``warmup`` (CUDA-synchronised)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out: list[float] = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            if i >= warmup:
                out.append((time.perf_counter() - t0) * 1e3)
    return out


# ---------------------------------------------------------------------------------------------
# End-to-end timing (the paper's path: files -> embeddings of both images of each pair)
# ---------------------------------------------------------------------------------------------
#: what the end-to-end timing of each kind covers (written next to the numbers)
E2E_PATH = {
    "anchor": "both images: PNG read + decode, crop/align/resize (detection given), ResNet50",
    "decoded": "probe: range decoding + g_s + border crop, ResNet50; reference: PNG read + decode, "
    "crop/align/resize, ResNet50",
    "compressed": "both images: range decoding of ŷ from the bitstream, 14x14 crop, cResNet39",
}


@dataclass(frozen=True)
class LfwPairs:
    """The first pairs of LFW View 2 as the end-to-end timing reads them (sides: probe, reference)."""

    paths: tuple[list[Path], list[Path]]  # PNG of each image
    boxes: tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]
    landmarks: tuple[list[Any], list[Any]]  # 5x2 or None (detection fallback)

    def __len__(self) -> int:
        return len(self.paths[0])


def load_lfw_pairs(root: Path, n: int) -> LfwPairs:
    """``n`` pairs from ``pairs.parquet`` (repeated when View 2 is shorter) with paths and detections."""
    from cdfv import paths, schemas
    from cdfv.io import read_parquet

    landmark_columns = [c for c in schemas.LFW_DETECTIONS.names if c.endswith(("_x", "_y"))]  # 5 x (x, y)

    def landmarks_of(det: dict[str, Any]) -> np.ndarray | None:
        vals = [det.get(c) for c in landmark_columns]
        return None if any(v is None for v in vals) else np.asarray(vals, dtype=np.float64).reshape(5, 2)

    pairs = read_parquet(root / paths.LFW_PAIRS, "LFW pairs", stage="ingest_lfw").to_pylist()
    images = {
        r["image_id"]: r for r in read_parquet(root / paths.LFW_IMAGES, "LFW images", stage="ingest_lfw").to_pylist()
    }
    dets = {
        r["image_id"]: r
        for r in read_parquet(root / paths.LFW_DETECTIONS, "LFW detections", stage="detect_lfw").to_pylist()
    }
    usable = [
        p
        for p in pairs
        if all(dets.get(i, {}).get("status") in ("ok", "no_face") for i in (p["left_id"], p["right_id"]))
    ]
    if not usable:
        raise ComplexityError(
            f"{root / paths.LFW_PAIRS}: no pair with two readable, detected images; rerun `dvc repro detect_lfw`"
        )
    chosen = [usable[i % len(usable)] for i in range(n)]
    out: tuple[list[Any], ...] = ([], [], [], [], [], [])
    for p in chosen:
        for side, image_id in enumerate((p["left_id"], p["right_id"])):
            d = dets[image_id]
            out[side].append(root / images[image_id]["path"])
            out[2 + side].append((d["x1"], d["y1"], d["x2"], d["y2"]))
            out[4 + side].append(landmarks_of(d))
    return LfwPairs((out[0], out[1]), (out[2], out[3]), (out[4], out[5]))


@dataclass(frozen=True)
class AlignSettings:
    size: int = 224
    interpolation: str = "bilinear"
    rotate_interpolation: str = "nearest"
    codec_pad: int = CODEC_PAD


def _faces(data: LfwPairs, side: int, a: AlignSettings) -> np.ndarray:
    """Read, decode, crop/align/resize the images of one side: ``(n, 224, 224, 3)`` uint8."""
    from cdfv.align.geometry import align_face
    from cdfv.io import read_rgb

    return np.stack(
        [
            align_face(read_rgb(p), box, lm, a.size, a.interpolation, a.rotate_interpolation).image
            for p, box, lm in zip(data.paths[side], data.boxes[side], data.landmarks[side])
        ]
    )


def e2e_step(
    spec: ModelSpec, data: LfwPairs, codec: Any, device: torch.device, a: AlignSettings
) -> Callable[[], torch.Tensor]:
    """A closure computing both embeddings of every pair of ``data`` from files / bitstreams."""
    from cdfv.encode.border import codec_input, strip_border

    net = spec.net.to(device).eval()
    if spec.kind == "anchor":
        model = net.model

        def step() -> torch.Tensor:
            return torch.stack([model.embed(resnet50_input(_faces(data, side, a), device)) for side in (0, 1)])

        return step
    sides = (0,) if spec.kind == "decoded" else (0, 1)
    blobs = {s: codec.encode_batch([codec_input(f, a.codec_pad) for f in _faces(data, s, a)]) for s in sides}
    if spec.kind == "decoded":
        resnet = net.resnet

        def step() -> torch.Tensor:
            probe = np.stack([strip_border(im, a.codec_pad) for im in codec.decode_batch(blobs[0])])
            return torch.stack(
                [resnet.embed(resnet50_input(probe, device)), resnet.embed(resnet50_input(_faces(data, 1, a), device))]
            )

        return step
    model = net.model

    def step() -> torch.Tensor:
        out = []
        for s in sides:
            y = codec.decode_latents(blobs[s])[..., 1:15, 1:15]
            out.append(model.embed(torch.from_numpy(y).to(device).float()))
        return torch.stack(out)

    return step


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------
def complexity_row(
    spec: ModelSpec,
    device: torch.device,
    pairs: int,
    warmup: int,
    repeats: int,
    label: str,
    e2e: Callable[[], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """MACs (both conventions), parameters, network-only and (``e2e``) end-to-end timings of one row."""
    macs, params = count_macs(spec.net, spec.input_res)
    macs_paper, _ = count_macs(spec.net, spec.input_res, paper_convention=True)
    times = time_step(pair_step(spec, pairs, device), device, warmup, repeats) if repeats > 0 else []
    ms_batch = statistics.fmean(times) if times else None
    e2e_times = time_step(e2e, device, warmup, repeats) if repeats > 0 and e2e is not None else []
    e2e_batch = statistics.fmean(e2e_times) if e2e_times else None
    return {
        "gmac": macs / 1e9,
        "gmac_paper_convention": macs_paper / 1e9,
        "kmac_per_px": macs / PIXELS / 1e3,
        "kmac_per_px_paper_convention": macs_paper / PIXELS / 1e3,
        "paper_gmac": PAPER_GMAC.get(spec.name),
        "params": params,
        "input_shape": list(spec.input_res),
        "ms_per_batch": ms_batch,
        "ms_per_batch_std": statistics.stdev(times) if len(times) > 1 else 0.0 if times else None,
        "ms_per_pair": ms_batch / pairs if ms_batch is not None else None,
        "e2e_ms_per_batch": e2e_batch,
        "e2e_ms_per_batch_std": statistics.stdev(e2e_times) if len(e2e_times) > 1 else 0.0 if e2e_times else None,
        "e2e_ms_per_pair": e2e_batch / pairs if e2e_batch is not None else None,
        "e2e_path": E2E_PATH[spec.kind] if e2e_times else None,
        "batch_pairs": pairs,
        "repeats": repeats,
        "device": label,
    }


#: ``complexity/<model>.json``: MACs in both conventions, kMAC/px and parameters (deterministic); the
#: timings, device and settings of the run are in the details (``reports/details/complexity/<model>.json``)
COMPLEXITY_KEYS = ("gmac", "gmac_paper_convention", "kmac_per_px", "kmac_per_px_paper_convention", "params")


def run_complexity(params: Any, root: str | Path = ".") -> dict[str, dict[str, Any]]:
    """Stage ``complexity``: one result per model, ``reports/metrics/complexity/<model>.json`` + details.

    End-to-end timings read the LFW PNGs, pairs and detections under ``root`` (when ``repeats`` > 0).
    Returns the full rows (metrics and details) keyed by model name.
    """
    from tqdm import tqdm

    from cdfv import paths
    from cdfv.codecs.learned import LearnedCodec
    from cdfv.results import MetricKind, results_dir, write_results
    from cdfv.weights import codec_path

    kind = MetricKind("complexity", COMPLEXITY_KEYS)
    cfg = params.require("complexity")
    root = Path(root)
    torch.manual_seed(params.seed)
    device = resolve_device(cfg.device)
    label = device_label(device)
    al = params.align
    a = AlignSettings(al.size, al.interpolation, al.rotate_interpolation, al.codec_pad)
    data = load_lfw_pairs(root, cfg.batch_pairs) if cfg.repeats > 0 else None
    codecs: dict[str, Any] = {}
    result: dict[str, dict[str, Any]] = {}
    specs = table7_specs(list(cfg.codecs))
    for spec in tqdm(specs, desc="complexity", unit="model"):
        e2e = None
        if data is not None:
            codec = None
            if spec.codec is not None:
                if spec.codec not in codecs:  # the real codec on the timing device, one batch per call
                    settings = params.encode.learned.model_copy(
                        update={"device": str(device), "batch_size": cfg.batch_pairs, "verify_sample": 0}
                    )
                    weights = codec_path(params, spec.codec)  # weights.codecs.learned.<codec>, verified
                    codecs[spec.codec] = LearnedCodec(parse_codec_name(spec.codec), settings, weights)
                codec = codecs[spec.codec]
            e2e = e2e_step(spec, data, codec, device, a)
        result[spec.name] = complexity_row(spec, device, cfg.batch_pairs, cfg.warmup, cfg.repeats, label, e2e)
        spec.net.to("cpu")
    with results_dir(root, paths.COMPLEXITY_METRICS) as staging:
        for model, row in result.items():
            metrics = {k: row[k] for k in COMPLEXITY_KEYS}
            details = {k: v for k, v in row.items() if k not in COMPLEXITY_KEYS}
            write_results(staging, paths.complexity_json(model), kind, metrics, details)
    return result
