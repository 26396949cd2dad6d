"""HEVC intra through ffmpeg-python + libx265: many faces per ffmpeg process.

* Colour: RGB -> YCbCr with the exact BT.601 full-range (JFIF) matrix in numpy
  (:mod:`cdfv.codecs.colour`), fed to ffmpeg as raw ``yuv444p``/``yuv420p`` planes with the same
  output pixel format, so ffmpeg/swscale never converts; the VUI signals full range + BT.470BG.
  4:2:0 = 2x2 chroma mean; decoding upsamples bilinearly (centre phase).
* Coding: all-intra (``keyint=1``, every picture an IDR), constant QP with ``ipratio=1`` so every
  picture is coded at exactly ``QP`` (x265 otherwise lowers I-picture QP by ~3), VPS/SPS/PPS repeated
  in every access unit (``repeat-headers=1``) so each face's bitstream decodes on its own, and no
  encoder-info SEI (``info=0``: x265 otherwise writes ~2 kB of text into the first picture).
* Rate: the Annex-B elementary stream is split into access units per H.265 §7.4.2.4.4 (a new AU
  starts at a parameter set / prefix SEI / AUD after a VCL NAL unit, or at a VCL NAL unit whose
  ``first_slice_segment_in_pic_flag`` is set); each face's bitstream = its AU bytes, start codes and
  parameter sets included (the size an HM encode of that single picture would have).
* ``HEVC_CRF<k>``: x265's constant rate factor (``crf=k``) replaces ``qp``. CRF scales each picture's
  quantiser by a complexity estimate blurred over the pictures coded before it, so a face's bitstream
  would depend on its batch neighbours: CRF faces are coded one ffmpeg process each (slower, exact).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import numpy as np

from cdfv.codecs.base import Codec, CodecError, check_rgb
from cdfv.codecs.colour import downsample420, rgb_to_ycbcr, to_u8, upsample420, ycbcr_to_rgb
from cdfv.codecs.names import CodecSpec
from cdfv.config import HevcSettings

_PARAM_OR_PREFIX = {32, 33, 34, 35, 39, 41, 42, 43, 44} | set(range(48, 56))


def split_nal_units(stream: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each NAL unit *including* its start code."""
    starts: list[tuple[int, int]] = []  # (start-code offset, payload offset)
    i = stream.find(b"\x00\x00\x01")
    while i != -1:
        sc = i - 1 if i > 0 and stream[i - 1] == 0 else i
        starts.append((sc, i + 3))
        i = stream.find(b"\x00\x00\x01", i + 3)
    if not starts:
        return []
    if starts[0][0] != 0:
        raise CodecError("HEVC stream does not start with an Annex-B start code")
    return [(s, starts[k + 1][0] if k + 1 < len(starts) else len(stream)) for k, (s, _) in enumerate(starts)]


def _nal_type_and_first_slice(stream: bytes, start: int) -> tuple[int, bool]:
    p = start + (4 if stream[start + 2] == 0 else 3)
    nal_type = (stream[p] >> 1) & 0x3F
    first = nal_type < 32 and bool(stream[p + 2] & 0x80)
    return nal_type, first


def split_access_units(stream: bytes) -> list[bytes]:
    """Split an Annex-B HEVC elementary stream into access units (H.265 §7.4.2.4.4)."""
    aus: list[bytes] = []
    au_start = 0
    seen_vcl = False
    for start, _end in split_nal_units(stream):
        nal_type, first_slice = _nal_type_and_first_slice(stream, start)
        if seen_vcl and (nal_type in _PARAM_OR_PREFIX or first_slice):
            aus.append(stream[au_start:start])
            au_start, seen_vcl = start, False
        if nal_type < 32:
            seen_vcl = True
    if seen_vcl:
        aus.append(stream[au_start:])
    return aus


def _run(cmd: list[str], data: bytes, what: str) -> bytes:
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    except FileNotFoundError:
        raise CodecError(f"{what}: ffmpeg not found on PATH; install ffmpeg built with libx265") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise CodecError(f"{what}: ffmpeg exited {proc.returncode}: {' | '.join(tail)}")
    return proc.stdout


class HevcCodec(Codec):
    """``HEVC_QP<qp>``: libx265 all-intra at constant QP; ``HEVC_CRF<k>``: at constant rate factor."""

    extension = ".hevc"

    def __init__(self, spec: CodecSpec, settings: HevcSettings | None = None) -> None:
        super().__init__(spec)
        settings = settings or HevcSettings()
        if spec.chroma is not None:  # HEVC_444_QP<qp> / HEVC_420_QP<qp>: the name fixes the chroma format
            settings = settings.model_copy(update={"pix_fmt": f"yuv{spec.chroma}p"})
        self.settings = settings

    # -- colour planes ------------------------------------------------------------------------
    def _planes(self, rgb: np.ndarray) -> bytes:
        ycc = rgb_to_ycbcr(rgb)
        if self.settings.pix_fmt == "yuv444p":
            return b"".join(to_u8(ycc[..., c]).tobytes() for c in range(3))
        return to_u8(ycc[..., 0]).tobytes() + b"".join(to_u8(downsample420(ycc[..., c])).tobytes() for c in (1, 2))

    def _frame_bytes(self, h: int, w: int) -> int:
        return h * w * 3 if self.settings.pix_fmt == "yuv444p" else h * w + 2 * (h // 2) * (w // 2)

    def _rgb_from_planes(self, buf: bytes, h: int, w: int) -> np.ndarray:
        a = np.frombuffer(buf, dtype=np.uint8)
        if self.settings.pix_fmt == "yuv444p":
            ycc = a.reshape(3, h, w).transpose(1, 2, 0).astype(np.float64)
        else:
            y = a[: h * w].reshape(h, w).astype(np.float64)
            c = a[h * w :].reshape(2, h // 2, w // 2)
            ycc = np.stack([y, upsample420(c[0], h, w), upsample420(c[1], h, w)], axis=-1)
        return ycbcr_to_rgb(ycc)

    # -- ffmpeg commands ----------------------------------------------------------------------
    def x265_params(self) -> str:
        rc = "crf" if self.spec.rate_control == "crf" else "qp"
        opts = [
            "keyint=1",
            "min-keyint=1",
            "scenecut=0",
            "bframes=0",
            f"{rc}={self.spec.quality}",
            "ipratio=1",
            "pbratio=1",
            "repeat-headers=1",
            "info=0",
            "range=full",
            "colormatrix=bt470bg",
            "log-level=error",
        ]
        if self.settings.x265_params:
            opts.append(self.settings.x265_params)
        return ":".join(opts)

    def encode_cmd(self, h: int, w: int) -> list[str]:
        import ffmpeg

        s = self.settings
        out_kw = {"vcodec": "libx265", "pix_fmt": s.pix_fmt, "preset": s.preset, "x265-params": self.x265_params()}
        if s.tune != "none":
            out_kw["tune"] = s.tune
        stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=s.pix_fmt, s=f"{w}x{h}", framerate=25)
        stream = ffmpeg.output(stream, "pipe:", format="hevc", **out_kw)
        return ffmpeg.compile(stream.global_args("-hide_banner", "-nostdin", "-loglevel", "error"), cmd="ffmpeg")

    def decode_cmd(self) -> list[str]:
        import ffmpeg

        # full-range 4:2:0 decodes as "yuvj420p"; pin both ranges so swscale copies samples untouched
        stream = ffmpeg.input("pipe:", format="hevc").filter("scale", in_range="full", out_range="full")
        stream = ffmpeg.output(
            stream, "pipe:", format="rawvideo", pix_fmt=self.settings.pix_fmt, fps_mode="passthrough"
        )
        return ffmpeg.compile(stream.global_args("-hide_banner", "-nostdin", "-loglevel", "error"), cmd="ffmpeg")

    # -- codec --------------------------------------------------------------------------------
    def encode_batch(self, images: Sequence[np.ndarray]) -> list[bytes]:
        """Encode equal-sized images in one ffmpeg process per ``batch`` faces."""
        if not images:
            return []
        images = [check_rgb(im, self.name) for im in images]
        out: list[bytes] = []
        bs = 1 if self.spec.rate_control == "crf" else self.settings.batch  # CRF: no inter-picture state
        for i in range(0, len(images), bs):
            out.extend(self._encode_group(images[i : i + bs]))
        return out

    def _encode_group(self, images: Sequence[np.ndarray]) -> list[bytes]:
        h, w, _ = images[0].shape
        if any(im.shape != images[0].shape for im in images):
            raise CodecError(f"{self.name}: one ffmpeg batch needs equal-sized images")
        if self.settings.pix_fmt == "yuv420p" and (h % 2 or w % 2):
            raise CodecError(f"{self.name}: 4:2:0 needs even image sizes, got {w}x{h}")
        stream = _run(self.encode_cmd(h, w), b"".join(self._planes(im) for im in images), f"{self.name} encode")
        aus = split_access_units(stream)
        if len(aus) != len(images):
            raise CodecError(f"{self.name}: {len(images)} frames in, {len(aus)} access units out")
        return aus

    def encode(self, rgb: np.ndarray) -> bytes:
        return self.encode_batch([rgb])[0]

    def decode_batch(self, blobs: Sequence[bytes]) -> list[np.ndarray]:
        """Decode self-contained access units with one ffmpeg process (sizes from each SPS)."""
        if not blobs:
            return []
        sizes = [sps_size(b) for b in blobs]
        out: list[np.ndarray] = []
        i = 0
        while i < len(blobs):  # consecutive runs of equal size share a process
            j = i
            while j < len(blobs) and sizes[j] == sizes[i] and j - i < self.settings.batch:
                j += 1
            w, h = sizes[i]
            raw = _run(self.decode_cmd(), b"".join(blobs[i:j]), f"{self.name} decode")
            fb = self._frame_bytes(h, w)
            if len(raw) != fb * (j - i):
                raise CodecError(f"{self.name}: decoded {len(raw)} bytes, expected {j - i} frames of {fb}")
            out.extend(self._rgb_from_planes(raw[k * fb : (k + 1) * fb], h, w) for k in range(j - i))
            i = j
        return out

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_batch([data])[0]


# -- minimal SPS parsing (picture size) ---------------------------------------------------------
class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)


def _rbsp(payload: bytes) -> bytes:
    return payload.replace(b"\x00\x00\x03", b"\x00\x00")


def sps_size(au: bytes) -> tuple[int, int]:
    """(width, height) from the SPS of an access unit (H.265 §7.3.2.2.1, conformance window applied)."""
    for start, end in split_nal_units(au):
        p = start + (4 if au[start + 2] == 0 else 3)
        if (au[p] >> 1) & 0x3F != 33:
            continue
        b = _Bits(_rbsp(au[p + 2 : end]))
        b.u(4)  # sps_video_parameter_set_id
        max_sub_layers_minus1 = b.u(3)
        b.u(1)
        # profile_tier_level(1, max_sub_layers_minus1)
        b.u(2 + 1 + 5 + 32 + 4 + 43 + 1 + 8)
        flags = [(b.u(1), b.u(1)) for _ in range(max_sub_layers_minus1)]
        if max_sub_layers_minus1 > 0:
            b.u(2 * (8 - max_sub_layers_minus1))
        for profile_present, level_present in flags:
            if profile_present:
                b.u(88)
            if level_present:
                b.u(8)
        b.ue()  # sps_seq_parameter_set_id
        chroma_format_idc = b.ue()
        if chroma_format_idc == 3:
            b.u(1)
        w, h = b.ue(), b.ue()
        if b.u(1):  # conformance_window_flag
            sub_w = 2 if chroma_format_idc in (1, 2) else 1
            sub_h = 2 if chroma_format_idc == 1 else 1
            left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
            w -= sub_w * (left + right)
            h -= sub_h * (top + bottom)
        return w, h
    raise CodecError("HEVC access unit has no SPS (encode with repeat-headers=1)")
