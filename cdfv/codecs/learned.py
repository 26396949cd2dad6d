"""CompressAI learned codecs (``bmshj2018-hyperprior``, ``cheng2020-attn``) with the real range coder.

Bitstream container (per image): ``>HHI`` = height, width, len(y string), then the y string, then
the z string. bpp counts the y and z strings only (paper eq. 7); the 8-byte header is container.

Pretrained weights are the zoo checkpoint ``weights.codecs.learned.<codec>`` of ``params.yaml``, fetched
like LFW and sha256-verified on every use by :func:`cdfv.weights.codec_path` (the file name's sha256
prefix is checked as torch.hub checks it); the codec receives the verified file. ``pretrained: false``
builds the same architecture with a seeded random init (deterministic per codec name; smoke runs only).

Latents (``bmshj2018-hyperprior`` only): ŷ is *entropy decoded from the bitstream* (z string ->
ẑ -> h_s -> scales -> Gaussian conditional range decoder). For this zero-mean hyperprior ŷ equals
round(g_a(x)) exactly; :meth:`LearnedCodec.encode_with_latents` asserts that on a sample.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cdfv.chunks import chunked
from cdfv.codecs.base import Codec, CodecError, LatentCheckError, check_rgb
from cdfv.codecs.names import CodecSpec
from cdfv.config import LearnedSettings
from cdfv.precision import strict_fp32

_HEADER = struct.Struct(">HHI")


def load_model(
    spec: CodecSpec, pretrained: bool, seed: int = 0, untrained_gain: float = 1.0, weights: Path | None = None
) -> torch.nn.Module:
    """Build the CompressAI model for ``spec`` (eval mode, CDF tables ready for the range coder).

    ``pretrained``: load ``weights``, the verified zoo checkpoint (:func:`cdfv.weights.codec_path`).

    Untrained models: a random init makes |g_a(x)| < 0.5 everywhere (ŷ all zero); ``untrained_gain``
    scales g_a's last layer (and 1/gain on g_s's first) so smoke runs see non-trivial integer latents.
    """
    from compressai.zoo.image import cfgs, model_architectures
    from compressai.zoo.pretrained import load_pretrained

    assert spec.architecture
    cls = model_architectures[spec.architecture]
    if pretrained:
        if weights is None:
            raise CodecError(
                f"{spec.name}: pretrained weights not given: pass cdfv.weights.codec_path(params, name) "
                f"(weights.codecs.learned.{spec.name}), or set encode.learned.pretrained: false"
            )
        try:
            state = torch.load(weights, map_location="cpu", weights_only=False)
            model = cls.from_state_dict(load_pretrained(state))
        except Exception as err:  # noqa: BLE001 - any unpickling/state-dict failure gets the same advice
            raise CodecError(
                f"{spec.name}: {weights} is not a usable CompressAI checkpoint ({type(err).__name__}: {err}). "
                f"Replace it (weights.codecs.learned.{spec.name} in params.yaml names the URL and sha256)."
            ) from None
        model.update()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed ^ zlib.crc32(spec.name.encode()))
            model = cls(*cfgs[spec.architecture][spec.quality])
        if untrained_gain != 1.0 and spec.has_latents:
            with torch.no_grad():
                last, first = model.g_a[-1], model.g_s[0]
                last.weight.mul_(untrained_gain)
                last.bias.mul_(untrained_gain)
                first.weight.div_(untrained_gain)
        model.update(force=True)
    return model.eval()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pack(h: int, w: int, y: bytes, z: bytes) -> bytes:
    return _HEADER.pack(h, w, len(y)) + y + z


def unpack(data: bytes) -> tuple[int, int, bytes, bytes]:
    if len(data) < _HEADER.size:
        raise CodecError(f"learned bitstream too short ({len(data)} bytes)")
    h, w, ny = _HEADER.unpack_from(data)
    if _HEADER.size + ny > len(data):
        raise CodecError(f"learned bitstream truncated: y string of {ny} bytes, {len(data)} bytes in all")
    return h, w, data[_HEADER.size : _HEADER.size + ny], data[_HEADER.size + ny :]


def _fp32(fn):  # type: ignore[no-untyped-def]
    """Run a codec operation without autocast and TF32 (IEEE fp32 convolutions on CUDA too), so the
    entropy models see the same values on every device and ŷ = round(g_a(x)) holds exactly."""

    def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with strict_fp32(self.device.type), torch.no_grad():
            return fn(self, *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


class LearnedCodec(Codec):
    extension = ".bin"

    def __init__(self, spec: CodecSpec, settings: LearnedSettings | None = None, weights: Path | None = None) -> None:
        """``weights``: the verified zoo checkpoint when ``settings.pretrained`` (:func:`cdfv.weights.codec_path`)."""
        super().__init__(spec)
        self.settings = settings or LearnedSettings()
        self.device = resolve_device(self.settings.device)
        s = self.settings
        self.model = load_model(spec, s.pretrained, s.seed, s.untrained_gain, weights).to(self.device)
        self.verified = 0  # images whose decoded ŷ was checked against round(g_a(x))

    # -- helpers ------------------------------------------------------------------------------
    def _to_tensor(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        arr = np.stack([check_rgb(im, self.name) for im in images])
        h, w = arr.shape[1:3]
        if h % 64 or w % 64:
            raise CodecError(f"{self.name}: input must be a multiple of 64 pixels, got {w}x{h} (pad faces to 256)")
        return torch.from_numpy(arr).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)

    def rate_bytes(self, data: bytes) -> int:
        return len(data) - _HEADER.size

    # -- codec --------------------------------------------------------------------------------
    @_fp32
    def encode_batch(self, images: Sequence[np.ndarray]) -> list[bytes]:
        out: list[bytes] = []
        for part in chunked(images, self.settings.batch_size):
            x = self._to_tensor(part)
            enc = self.model.compress(x)
            y_strings, z_strings = enc["strings"]
            out.extend(pack(x.shape[2], x.shape[3], y, z) for y, z in zip(y_strings, z_strings, strict=True))
        return out

    def encode(self, rgb: np.ndarray) -> bytes:
        return self.encode_batch([rgb])[0]

    def _group(self, blobs: Sequence[bytes]) -> dict[tuple[int, int], list[int]]:
        groups: dict[tuple[int, int], list[int]] = {}
        for i, b in enumerate(blobs):
            h, w, _, _ = unpack(b)
            groups.setdefault((h, w), []).append(i)
        return groups

    @_fp32
    def decode_batch(self, blobs: Sequence[bytes]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(blobs)
        for (h, w), idx in self._group(blobs).items():
            for part in chunked(idx, self.settings.batch_size):
                parsed = [unpack(blobs[i]) for i in part]
                dec = self.model.decompress([[p[2] for p in parsed], [p[3] for p in parsed]], (h // 64, w // 64))
                x = dec["x_hat"].clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                for i, im in zip(part, x, strict=True):
                    out[i] = im[:h, :w]
        return out  # type: ignore[return-value]

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_batch([data])[0]

    # -- latents ------------------------------------------------------------------------------
    def _require_hyperprior(self) -> None:
        if not self.spec.has_latents:
            raise CodecError(
                f"{self.name}: integer latents exist only for the zero-mean hyperprior (Balle2018); "
                f"{self.spec.architecture} codes ŷ - μ with predicted means μ"
            )

    @_fp32
    def decode_latents(self, blobs: Sequence[bytes]) -> np.ndarray:
        """Entropy-decode ŷ from bitstreams: (B, N, H/16, W/16) int32 (equal sizes required)."""
        self._require_hyperprior()
        m = self.model
        parsed = [unpack(b) for b in blobs]
        h, w = parsed[0][:2]
        if any(p[:2] != (h, w) for p in parsed):
            raise CodecError(f"{self.name}: decode_latents needs equal-sized images")
        z_hat = m.entropy_bottleneck.decompress([p[3] for p in parsed], (h // 64, w // 64))
        indexes = m.gaussian_conditional.build_indexes(m.h_s(z_hat))
        y_hat = m.gaussian_conditional.decompress([p[2] for p in parsed], indexes, z_hat.dtype)
        return y_hat.round().to(torch.int32).cpu().numpy()

    @_fp32
    def encode_with_latents(self, images: Sequence[np.ndarray]) -> tuple[list[bytes], np.ndarray]:
        """Bitstreams and their entropy-decoded ŷ; checks ŷ == round(g_a(x)) on ``verify_sample`` images."""
        self._require_hyperprior()
        blobs = self.encode_batch(images)
        latents = np.concatenate([self.decode_latents(b) for b in chunked(blobs, self.settings.batch_size)])
        # g_a runs on exactly the batch compress() saw (the first chunk): GPU convolution kernels may
        # change with the batch shape, and one flipped rounding would fail a check of like against unlike
        first = list(images[: self.settings.batch_size])
        todo = min(self.settings.verify_sample - self.verified, len(first))
        if todo > 0:
            ref = torch.round(self.model.g_a(self._to_tensor(first)))[:todo].to(torch.int32).cpu().numpy()
            if not np.array_equal(ref, latents[:todo]):
                diff = ref != latents[:todo]
                bad = [i for i in range(todo) if diff[i].any()]
                raise LatentCheckError(
                    f"{self.name}: entropy-decoded ŷ differs from round(g_a(x)) in {int(diff.sum())} values", bad
                )
            self.verified += todo
        return blobs, latents

    def latent(self, rgb_batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Entropy-decoded ŷ of a batch of RGB images: (B, N, H/16, W/16) int32."""
        return self.encode_with_latents(list(rgb_batch))[1]
