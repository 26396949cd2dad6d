"""Every codec family makes real bitstreams from real faces and decodes them back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdfv.align.views import centre_crop
from cdfv.codecs.base import CodecError
from cdfv.codecs.hevc import split_access_units, sps_size
from cdfv.codecs.names import CodecNameError, parse_codec_name
from cdfv.codecs.registry import codec_from_params, get_codec
from cdfv.config import EncodeParams, HevcSettings, LearnedSettings, ParamsError, parse_params
from cdfv.encode.border import codec_input
from cdfv.io import read_rgb
from cdfv.rd.metrics import bpp, psnr

PX = 256 * 256


@pytest.fixture(scope="module")
def faces(shared_dir: Path) -> list[np.ndarray]:
    """Four real 256x256 codec inputs: lfw-mini centre crops (224) with the 16 px black border."""
    files = sorted((shared_dir / "fixtures" / "lfw-mini" / "lfw").glob("*/*.jpg"))[:4]
    assert len(files) == 4
    return [codec_input(np.ascontiguousarray(centre_crop(read_rgb(f), 224))) for f in files]


def _mean_bpp(codec, blobs: list[bytes]) -> float:
    return float(np.mean([bpp(codec.rate_bytes(b), PX) for b in blobs]))


def _mean_psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([psnr(x, y) for x, y in zip(a, b, strict=True)]))


# -- names -------------------------------------------------------------------------------------
def test_names_parse_to_the_papers_points() -> None:
    assert parse_codec_name("JPEG_Q62").quality == 62
    j2k = parse_codec_name("JPEG2000_visual_Q6")
    assert (j2k.family, j2k.metric, j2k.quality, j2k.series) == ("jpeg2000", "visual", 6, "JPEG2000_visual")
    assert parse_codec_name("HEVC_QP41").series == "HEVC"
    b = parse_codec_name("Balle2018_msssim_Q3")
    assert (b.architecture, b.metric) == ("bmshj2018-hyperprior", "ms-ssim")
    assert [parse_codec_name(f"Balle2018_mse_Q{q}").latent_channels for q in (1, 3, 6, 8)] == [192, 192, 320, 320]
    assert [parse_codec_name(f"Cheng2020_mse_Q{q}").latent_channels for q in (1, 3, 4, 6)] == [128, 128, 192, 192]


@pytest.mark.parametrize(
    "bad",
    [
        "JPEG_Q0",
        "JPEG_Q101",
        "HEVC_QP52",
        "Balle2018_mse_Q9",
        "Cheng2020_mse_Q7",
        "JPEG2000_psnr_Q1",
        "jpeg_q5",
        "WebP_Q5",
    ],
)
def test_unknown_names_fail(bad: str) -> None:
    with pytest.raises(CodecNameError):
        parse_codec_name(bad)


def test_params_validate_codec_names_and_families() -> None:
    p = parse_params({"codecs": {"JPEG2000_mse_Q3": {"family": "jpeg2000", "target_bpp": 0.2}}})
    assert p.codecs["JPEG2000_mse_Q3"].target_bpp == 0.2
    with pytest.raises(ParamsError, match="unknown codec name 'HEVC_Q26'"):
        parse_params({"codecs": {"HEVC_Q26": {"family": "hevc"}}})
    with pytest.raises(ParamsError, match="family is 'jpeg'"):
        parse_params({"codecs": {"JPEG_Q5": {"family": "hevc"}}})
    with pytest.raises(ParamsError, match="latents: true needs a Balle2018"):
        parse_params({"codecs": {"HEVC_QP26": {"family": "hevc", "latents": True}}})
    with pytest.raises(ParamsError, match="not listed under 'codecs:'"):
        codec_from_params("JPEG_Q1", p)


# -- JPEG --------------------------------------------------------------------------------------
def test_jpeg_round_trip_rate_and_quality(faces: list[np.ndarray]) -> None:
    rates, quals = [], []
    for q in (1, 5, 25, 62):
        c = get_codec(f"JPEG_Q{q}")
        blobs = c.encode_batch(faces)
        assert all(b[:2] == b"\xff\xd8" and b[-2:] == b"\xff\xd9" for b in blobs)  # SOI ... EOI
        dec = c.decode_batch(blobs)
        assert all(d.shape == (256, 256, 3) and d.dtype == np.uint8 for d in dec)
        rates.append(_mean_bpp(c, blobs))
        quals.append(_mean_psnr(faces, dec))
    assert rates == sorted(rates) and len(set(rates)) == 4  # bpp strictly decreases with stronger compression
    assert quals[3] > quals[0] + 5  # JPEG Q62 PSNR > JPEG Q1 PSNR


def test_jpeg_subsampling_param_changes_the_bitstream(faces: list[np.ndarray]) -> None:
    a = get_codec("JPEG_Q25", EncodeParams(jpeg={"subsampling": "4:2:0"})).encode(faces[0])
    b = get_codec("JPEG_Q25", EncodeParams(jpeg={"subsampling": "4:4:4"})).encode(faces[0])
    assert len(b) > len(a)


def test_jpeg_decode_of_garbage_names_the_codec() -> None:
    with pytest.raises(CodecError, match="JPEG_Q5"):
        get_codec("JPEG_Q5").decode(b"not a jpeg")


def test_jpeg_fast_decode_equals_reference_and_rejects_truncation(faces: list[np.ndarray]) -> None:
    c = get_codec("JPEG_Q25")
    blob = c.encode(faces[0])
    dec = c.decode(blob)
    assert dec.flags.writeable and dec.shape == (256, 256, 3) and dec.dtype == np.uint8
    assert np.array_equal(dec, read_rgb(blob))  # same pixels as the generic reader
    with pytest.raises(CodecError, match="JPEG_Q25"):
        c.decode(blob[: len(blob) // 2])


# -- JPEG2000 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["mse", "visual"])
def test_jpeg2000_hits_the_balle_rates(faces: list[np.ndarray], metric: str) -> None:
    rates, quals = [], []
    for k, target in ((1, 0.10), (3, 0.17), (6, 0.38), (8, 0.65)):
        c = get_codec(f"JPEG2000_{metric}_Q{k}")
        blobs = c.encode_batch(faces[:2])
        assert all(b[:4] == b"\xff\x4f\xff\x51" for b in blobs)  # SOC + SIZ: a raw J2K codestream
        r = _mean_bpp(c, blobs)
        assert r == pytest.approx(target, rel=0.05)
        rates.append(r)
        quals.append(_mean_psnr(faces[:2], c.decode_batch(blobs)))
    assert rates == sorted(rates)
    assert quals == sorted(quals)


def test_jpeg2000_visual_spends_fewer_bits_on_chroma(faces: list[np.ndarray]) -> None:
    from cdfv.codecs.colour import rgb_to_ycbcr

    def luma_psnr(name: str) -> float:
        c = get_codec(name)
        dec = c.decode(c.encode(faces[0]))
        return psnr(rgb_to_ycbcr(faces[0])[..., 0], rgb_to_ycbcr(dec)[..., 0])

    assert luma_psnr("JPEG2000_visual_Q3") > luma_psnr("JPEG2000_mse_Q3")


def test_jpeg2000_target_rate_from_params(faces: list[np.ndarray]) -> None:
    p = parse_params({"codecs": {"JPEG2000_mse_Q2": {"family": "jpeg2000", "target_bpp": 0.3}}})
    c = codec_from_params("JPEG2000_mse_Q2", p)
    assert bpp(len(c.encode(faces[0])), PX) == pytest.approx(0.3, rel=0.05)
    with pytest.raises(CodecError, match="target_bpp"):
        get_codec("JPEG2000_mse_Q2")


# -- HEVC --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv420p"])
def test_hevc_intra_batch_round_trip(faces: list[np.ndarray], pix_fmt: str) -> None:
    rates, quals = [], []
    for qp in (41, 35, 26, 19):
        c = get_codec(f"HEVC_QP{qp}", EncodeParams(hevc=HevcSettings(pix_fmt=pix_fmt, preset="ultrafast")))
        blobs = c.encode_batch(faces)  # one ffmpeg process, one access unit per face
        assert len(blobs) == 4 and all(sps_size(b) == (256, 256) for b in blobs)
        dec = c.decode_batch(blobs)
        assert np.array_equal(c.decode(blobs[2]), dec[2])  # every access unit decodes on its own
        rates.append(_mean_bpp(c, blobs))
        quals.append(_mean_psnr(faces, dec))
    assert rates == sorted(rates) and len(set(rates)) == 4
    assert quals == sorted(quals) and quals[-1] > 38


def _ffprobe_pix_fmt(tmp: Path, blob: bytes) -> str:
    import subprocess

    f = tmp / "au.hevc"
    f.write_bytes(blob)
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=pix_fmt",
            "-of",
            "default=nw=1:nk=1",
            str(f),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().replace("yuvj", "yuv")  # full-range flag (BT.601 full range) -> "j"


def test_hevc_paper_default_is_420_and_444_names_override_it(faces: list[np.ndarray], tmp_path: Path) -> None:
    """HM's common conditions code 4:2:0 (paper default); ``HEVC_444_QP<qp>`` keeps 4:4:4 beside it."""
    from cdfv.config import Params

    settings = Params().encode  # the params model's defaults
    assert settings.hevc.pix_fmt == "yuv420p"
    fast = settings.model_copy(update={"hevc": settings.hevc.model_copy(update={"preset": "ultrafast"})})
    default, full = get_codec("HEVC_QP26", fast), get_codec("HEVC_444_QP26", fast)
    assert _ffprobe_pix_fmt(tmp_path, default.encode(faces[0])) == "yuv420p"  # ffprobe reads the SPS
    assert _ffprobe_pix_fmt(tmp_path, full.encode(faces[0])) == "yuv444p"
    assert parse_codec_name("HEVC_444_QP26").series == "HEVC_444" and parse_codec_name("HEVC_QP26").series == "HEVC"
    assert parse_codec_name("HEVC_420_QP26").chroma == "420" and parse_codec_name("HEVC_QP26").chroma is None


def test_access_unit_split_matches_frame_sizes(faces: list[np.ndarray]) -> None:
    c = get_codec("HEVC_QP35", EncodeParams(hevc=HevcSettings(preset="ultrafast")))
    blobs = c.encode_batch(faces)
    stream = b"".join(blobs)
    assert split_access_units(stream) == blobs
    # each AU: VPS, SPS, PPS then slice data (types 32, 33, 34 first)
    assert all(((b[4] >> 1) & 0x3F) == 32 for b in blobs)


def test_hevc_ffmpeg_failure_names_the_codec(faces: list[np.ndarray]) -> None:
    c = get_codec("HEVC_QP26", EncodeParams(hevc=HevcSettings(x265_params="ctu=7")))
    with pytest.raises(CodecError, match="HEVC_QP26 encode: ffmpeg exited"):
        c.encode_batch(faces[:1])


def test_hevc_crf_names_parse() -> None:
    spec = parse_codec_name("HEVC_CRF23")
    assert (spec.family, spec.quality, spec.rate_control, spec.series) == ("hevc", 23, "crf", "HEVC_CRF")
    assert parse_codec_name("HEVC_444_CRF19").series == "HEVC_444_CRF" and parse_codec_name("HEVC_444_CRF19").chroma
    assert parse_codec_name("HEVC_QP23").rate_control == "qp"
    with pytest.raises(CodecNameError, match="HEVC CRF 52 outside 0..51"):
        parse_codec_name("HEVC_CRF52")


def test_hevc_crf_sweep_rate_falls_with_k_and_streams_decode(faces: list[np.ndarray], tmp_path: Path) -> None:
    """CRF k: fewer bits as k rises; ffmpeg decodes each face alone; x265's own SEI reports rc=crf crf=k."""
    import subprocess

    rates = []
    for k in (19, 23, 27, 31, 35):
        c = get_codec(f"HEVC_CRF{k}", EncodeParams(hevc=HevcSettings(preset="ultrafast")))
        blobs = c.encode_batch(faces[:2])
        assert len(blobs) == 2 and all(sps_size(b) == (256, 256) for b in blobs)
        assert np.array_equal(c.encode(faces[1]), blobs[1])  # CRF faces do not depend on batch neighbours
        dec = c.decode_batch(blobs)
        assert _mean_psnr(faces[:2], dec) > 25
        f = tmp_path / f"crf{k}.hevc"
        f.write_bytes(blobs[0])
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(f), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
            capture_output=True,
            check=True,
        ).stdout
        assert len(raw) == 256 * 256 * 3 // 2  # one 4:2:0 picture
        rates.append(_mean_bpp(c, blobs))
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == 5
    # oracle: x265's encoder-info SEI (switched back on) names the rate control it ran with
    info = get_codec("HEVC_CRF27", EncodeParams(hevc=HevcSettings(preset="ultrafast", x265_params="info=1")))
    sei = info.encode(faces[0])
    assert b"rc=crf" in sei and b"crf=27.0" in sei
    qp = get_codec("HEVC_QP27", EncodeParams(hevc=HevcSettings(preset="ultrafast", x265_params="info=1")))
    assert b"rc=cqp" in qp.encode(faces[0])


# -- learned -----------------------------------------------------------------------------------
def _untrained(name: str, gain: float = 40.0):
    return get_codec(
        name, EncodeParams(learned=LearnedSettings(pretrained=False, untrained_gain=gain, verify_sample=2))
    )


def test_learned_round_trip_and_latent_equality(faces: list[np.ndarray]) -> None:
    c = _untrained("Balle2018_mse_Q1")
    blobs, y = c.encode_with_latents(faces[:2])  # asserts decoded ŷ == round(g_a(x)) on 2 images
    assert c.verified == 2
    assert y.shape == (2, 192, 16, 16) and y.dtype == np.int32 and np.abs(y).max() > 0
    dec = c.decode_batch(blobs)
    assert dec[0].shape == (256, 256, 3) and dec[0].dtype == np.uint8
    assert all(0 < c.rate_bytes(b) == len(b) - 8 for b in blobs)
    assert c.encode_batch(faces[:2]) == blobs  # deterministic range coding


def test_latent_self_check_mismatch_fails_naming_the_images(faces: list[np.ndarray], monkeypatch) -> None:
    """A ŷ that disagrees with round(g_a(x)) fails the stage naming the image; it is never retried."""
    from cdfv.codecs.base import LatentCheckError
    from cdfv.encode.loop import EncodeError, encode_robust

    c = _untrained("Balle2018_mse_Q1")
    monkeypatch.setattr(c, "model", _ShiftedCheck(c.model))
    with pytest.raises(LatentCheckError) as info:
        c.encode_with_latents(faces[:2])
    assert info.value.indices == [1]
    c.verified = 0
    with pytest.raises(EncodeError, match=r"face-b") as info2:
        encode_robust(c, faces[:2], ["face-a", "face-b"], on_error="skip", latents=True)
    assert "face-a" not in str(info2.value)


class _ShiftedCheck:
    """A CompressAI model whose ``g_a`` (used only by the ŷ self-check) disagrees on image 1."""

    def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
        self._m = model

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._m, name)

    def g_a(self, x):  # type: ignore[no-untyped-def]
        y = self._m.g_a(x)
        if len(x) > 1:
            y = y.clone()
            y[1, 0, 0, 0] += 5.0
        return y


def test_learned_latent_shapes_for_the_papers_qualities(faces: list[np.ndarray]) -> None:
    for q, n in ((3, 192), (6, 320), (8, 320)):
        y = _untrained(f"Balle2018_mse_Q{q}").latent(faces[:1])
        assert y.shape == (1, n, 16, 16)
        assert y[:, :, 1:15, 1:15].shape == (1, n, 14, 14)


def test_pretrained_codec_needs_its_verified_weights_file(tmp_path: Path) -> None:
    """The zoo checkpoint comes from cdfv.weights (fetched, verified: tests/unit/test_weights.py); the
    codec never downloads on its own and names the params key when it was not given one."""
    with pytest.raises(CodecError, match=r"weights\.codecs\.learned\.Balle2018_mse_Q6.*pretrained: false"):
        get_codec("Balle2018_mse_Q6")
    junk = tmp_path / "bmshj2018-hyperprior-6-1ab9c41e.pth.tar"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CodecError, match="not a usable CompressAI checkpoint"):
        get_codec("Balle2018_mse_Q6", weights=junk)


def test_code_chunk_measures_on_every_core_as_one_does(shared_dir: Path) -> None:
    """The stage's metrics computed on a thread pool equal, image by image, PSNR and MS-SSIM restated plainly
    (NumPy MSE; pytorch-msssim, the reference implementation) on the decoded JPEG bytes."""
    import torch
    from pytorch_msssim import ms_ssim as reference_ms_ssim

    from cdfv.encode.loop import code_chunk

    files = sorted((shared_dir / "fixtures" / "lfw-mini" / "lfw").glob("*/*.jpg"))[:6]
    originals = [read_rgb(f)[13:237, 13:237] for f in files]  # 224^2 faces
    pads = [(16, 16, 16, 16)] * len(originals)
    codec = get_codec("JPEG_Q25")
    pooled, errors = code_chunk(codec, originals, pads, [f.stem for f in files], workers=4)
    assert errors == [None] * len(files)
    for original, c in zip(originals, pooled, strict=True):
        assert c is not None
        decoded = codec.decode(c.blob)[16:240, 16:240]  # the real bitstream, decoded again, border removed
        np.testing.assert_array_equal(c.decoded, decoded)
        mse = np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2)
        assert c.psnr == pytest.approx(10 * np.log10(255.0**2 / mse), rel=1e-12)
        as_tensor = [torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None] for a in (original, decoded)]
        assert c.ms_ssim == pytest.approx(float(reference_ms_ssim(*as_tensor, data_range=255.0)), abs=1e-5)
        assert c.n_bytes == len(c.blob) and c.coded_pixels == 256 * 256
