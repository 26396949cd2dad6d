"""Rate/distortion helpers and the BD table between codec curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cdfv.encode.border import strip_border
from cdfv.rd.curves import RdPoint, bd_markdown, bd_table, curves
from cdfv.rd.metrics import bpp, ms_ssim_batch, psnr


def test_bpp_counts_bits_over_pixels() -> None:
    assert bpp(820, 256 * 256) == pytest.approx(0.1000976, rel=1e-6)  # ~ Ballé Q1 at 256^2
    assert bpp(820, 224 * 224) == pytest.approx(820 * 8 / 50176)
    with pytest.raises(ValueError):
        bpp(1, 0)


def test_psnr_known_values() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    assert psnr(a, a) == math.inf
    b = a.copy()
    b[...] = 1  # MSE 1 -> 48.13 dB
    assert psnr(a, b) == pytest.approx(20 * math.log10(255), rel=1e-12)


@pytest.mark.parametrize("shape", [(224, 224), (201, 223)])
def test_ms_ssim_matches_pytorch_msssim(shape: tuple[int, int]) -> None:
    import torch
    from pytorch_msssim import ms_ssim as reference

    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.normal(0, 4, (2, *shape, 3)), axis=2)
    ref = np.clip(smooth - smooth.min() + 20, 0, 255).astype(np.uint8)
    noisy = np.clip(ref.astype(int) + rng.normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
    ours = ms_ssim_batch(ref, noisy)
    t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).double()  # noqa: E731
    theirs = reference(t(ref), t(noisy), data_range=255, size_average=False).numpy()
    assert np.all(ours < 0.99)
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert ms_ssim_batch(ref, ref) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="160"):
        ms_ssim_batch(ref[:, :128, :128], ref[:, :128, :128])


def test_crop_border_drops_the_codec_pad() -> None:
    assert strip_border(np.zeros((256, 256, 3)), 16).shape == (224, 224, 3)


def _series(name: str, rates: list[float], psnrs: list[float]) -> list[RdPoint]:
    return [RdPoint(f"{name}_Q{i}", name, r, p, 0.9) for i, (r, p) in enumerate(zip(rates, psnrs, strict=True))]


def test_bd_table_half_rate_is_minus_fifty_percent() -> None:
    rates, q = [0.10, 0.17, 0.38, 0.65], [30.0, 32.0, 35.0, 37.0]
    pts = _series("JPEG", rates, q) + _series("HEVC", [r / 2 for r in rates], q) + _series("X", [0.1, 0.2], [1, 2])
    table = bd_table(pts, anchor="JPEG")
    assert table["JPEG"]["bd_rate"] == pytest.approx(0.0, abs=1e-9)
    assert table["HEVC"]["bd_rate"] == pytest.approx(-50.0, abs=1e-6)
    assert table["HEVC"]["bd_psnr"] > 0
    assert table["X"] == {"bd_rate": None, "bd_psnr": None}  # 2 points: cubic BD undefined
    assert list(curves(pts)) == ["HEVC", "JPEG", "X"]
    md = bd_markdown({"psnr": table}, "JPEG")
    assert "| HEVC | -50.0 |" in md and "n/a" in md
    with pytest.raises(KeyError, match="anchor series 'Balle2018_mse'"):
        bd_table(pts, anchor="Balle2018_mse")


def test_rd_report_builds_from_the_rate_metrics_that_exist(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A codec whose encode_lfw stage wrote nothing (skipped or failed) is listed as not run; the rest is
    reported, with the BD table against the anchor series."""
    from cdfv import paths
    from cdfv.config import parse_params
    from cdfv.encode.stage import RATE_KIND
    from cdfv.rd.stage import run_rd_report
    from cdfv.results import write_results

    names = {"JPEG_Q1": 0.2, "JPEG_Q25": 0.5, "JPEG_Q62": 0.9, "JPEG_Q90": 1.5, "HEVC_QP35": 0.3}
    params = parse_params({"codecs": {n: {"family": "hevc" if n.startswith("HEVC") else "jpeg"} for n in names}})
    for n, b in names.items():
        if n != "HEVC_QP35":
            block = {"n": 10, "bpp_256": b, "psnr": 30 + 10 * b, "ms_ssim": 0.9 + b / 20}
            metrics = {"bpp": b, "psnr": block["psnr"], "ms_ssim": block["ms_ssim"]}
            write_results(tmp_path, paths.rate_json(n), RATE_KIND, metrics, {"series": "JPEG", "probes": block})
    m = run_rd_report(params, tmp_path)
    assert m["points"] == 4 and m["not_run"] == 1
    text = (tmp_path / "reports" / "rd.md").read_text()
    assert "- HEVC_QP35: not run: encode_lfw@HEVC_QP35 wrote no" in text and "| JPEG_Q62 |" in text
    assert (tmp_path / paths.RD_CSV).read_text().count("\n") == 5  # header + the 4 JPEG points
