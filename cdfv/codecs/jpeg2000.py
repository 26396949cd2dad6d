"""JPEG2000 through glymur / OpenJPEG, in process (irreversible 9/7 DWT, PCRD rate allocation).

Rate control is **per image**: each codestream is encoded at OpenJPEG's compression ratio for the
target size (``target_bpp`` x 256^2 / 8 bytes, headers included; ``JPEG2000_<w>_R<ratio>`` names fix
``target_bpp = 24 / ratio``, raw 8-bit RGB over codestream bytes, Bian et al. Table 1), then re-encoded with a corrected
ratio (at most ``max_refine`` times) while the achieved bpp is off by more than ``rate_tolerance``.
Raw J2K codestreams are stored (no JP2 boxes: ~85 bytes that would be ~0.01 bpp at 256^2).

Configurations:

* ``mse``: RGB in, OpenJPEG's own ICT (BT.601 YCbCr) and plain-MSE PCRD (what opj_compress does).
* ``visual``: visual weighting of the distortion the rate allocator minimises. OpenJPEG has no
  per-subband CSF weights (Kakadu's ``Cweight``/visual weighting), so we apply the part it can
  express exactly: YCbCr (the same ICT, done in numpy, ``cdfv.codecs.colour``) with chroma scaled by
  ``w_cb``/``w_cr`` before coding (16-bit samples, no precision loss) and unscaled after decoding.
  PCRD then weighs chroma squared error by w^2, i.e. coarser effective quantisation steps for the
  components the eye is least sensitive to. Spatial-frequency (per-subband) weights are not expressible
  through OpenJPEG's API; that difference from Kakadu is documented in the README.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import glymur
import numpy as np
from glymur.jp2box import InvalidJp2kError

from cdfv.codecs.base import Codec, CodecError, check_rgb
from cdfv.codecs.colour import rgb_to_ycbcr, ycbcr_to_rgb
from cdfv.codecs.names import JPEG2000_DEFAULT_TARGET_BPP, CodecSpec
from cdfv.config import Jpeg2000Settings

_SCALE16 = 256.0  # 8-bit YCbCr -> 16-bit samples for the visual configuration


def _scratch_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


class Jpeg2000Codec(Codec):
    extension = ".j2k"

    def __init__(self, spec: CodecSpec, settings: Jpeg2000Settings | None = None, target_bpp: float | None = None):
        super().__init__(spec)
        self.settings = settings or Jpeg2000Settings()
        if spec.ratio is not None:
            if target_bpp is not None:
                raise CodecError(f"{spec.name}: the name fixes the compression ratio; drop target_bpp")
            target_bpp = 24.0 / spec.ratio  # raw 8-bit RGB / ratio, per coded pixel
        if target_bpp is None:
            if spec.quality not in JPEG2000_DEFAULT_TARGET_BPP:
                raise CodecError(
                    f"{spec.name}: no default target rate for Q{spec.quality}; set codecs.{spec.name}.target_bpp"
                )
            target_bpp = JPEG2000_DEFAULT_TARGET_BPP[spec.quality]
        self.target_bpp = float(target_bpp)
        self._tmp = tempfile.TemporaryDirectory(prefix="cdfv-j2k-", dir=_scratch_dir())

    # -- sample <-> component mapping ---------------------------------------------------------
    def _weights(self) -> np.ndarray:
        v = self.settings.visual
        return np.array([1.0, v.cb, v.cr])

    def _to_samples(self, rgb: np.ndarray) -> np.ndarray:
        if self.spec.metric == "mse":
            return rgb
        ycc = rgb_to_ycbcr(rgb)
        ycc[..., 1:] -= 128.0
        ycc *= self._weights()
        ycc[..., 1:] += 128.0
        return np.clip(np.rint(ycc * _SCALE16), 0, 65535).astype(np.uint16)

    def _from_samples(self, samples: np.ndarray) -> np.ndarray:
        if self.spec.metric == "mse":
            return samples.astype(np.uint8)
        ycc = samples.astype(np.float64) / _SCALE16
        ycc[..., 1:] -= 128.0
        ycc /= self._weights()
        ycc[..., 1:] += 128.0
        return ycbcr_to_rgb(ycc)

    # -- codec --------------------------------------------------------------------------------
    def _encode_once(self, samples: np.ndarray, ratio: float, path: Path) -> bytes:
        s = self.settings
        glymur.Jp2k(
            str(path),
            data=samples,
            cratios=[ratio],
            irreversible=True,
            numres=s.numres,
            cbsize=(s.codeblock, s.codeblock),
            mct=self.spec.metric == "mse",
        )
        return path.read_bytes()

    def encode(self, rgb: np.ndarray) -> bytes:
        rgb = check_rgb(rgb, self.name)
        h, w, _ = rgb.shape
        samples = self._to_samples(rgb)
        raw_bytes = samples.nbytes
        target_bytes = self.target_bpp * h * w / 8.0
        path = Path(self._tmp.name) / f"{os.getpid()}-{id(samples)}.j2k"
        ratio = raw_bytes / target_bytes
        best: bytes | None = None
        try:
            for _ in range(self.settings.max_refine + 1):
                data = self._encode_once(samples, ratio, path)
                if best is None or abs(len(data) - target_bytes) < abs(len(best) - target_bytes):
                    best = data
                if abs(len(data) - target_bytes) <= self.settings.rate_tolerance * target_bytes:
                    break
                ratio *= len(data) / target_bytes
        except (OSError, RuntimeError, ValueError) as err:
            raise CodecError(f"{self.name}: OpenJPEG encode failed: {err}") from err
        finally:
            path.unlink(missing_ok=True)
        assert best is not None
        return best

    def decode(self, data: bytes) -> np.ndarray:
        path = Path(self._tmp.name) / f"{os.getpid()}-dec-{id(data)}.j2k"
        try:
            path.write_bytes(data)
            samples = glymur.Jp2k(str(path))[:]
        except (OSError, RuntimeError, ValueError, InvalidJp2kError) as err:
            raise CodecError(f"{self.name}: OpenJPEG decode failed: {err}") from err
        finally:
            path.unlink(missing_ok=True)
        if samples.ndim != 3 or samples.shape[2] != 3:
            raise CodecError(f"{self.name}: decoded codestream has shape {samples.shape}, expected HxWx3")
        return self._from_samples(samples)
