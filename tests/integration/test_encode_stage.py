"""encode_lfw@<codec> and rd_report under real `dvc repro`, precise invalidation, failure naming."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cdfv import paths
from cdfv.align.views import centre_crop
from cdfv.io import encode_png, read_rgb, write_parquet_atomic
from cdfv.results import read_results
from cdfv.schemas import LFW_FACES, LFW_PAIRS
from cdfv.shards import LatentShardReader
from tests.conftest import BIN, run_dvc

pytestmark = pytest.mark.slow

CODECS = {
    "JPEG_Q1": {"family": "jpeg"},
    "JPEG_Q25": {"family": "jpeg"},
    "JPEG2000_mse_Q1": {"family": "jpeg2000", "target_bpp": 0.10},
    "HEVC_QP35": {"family": "hevc"},
    "Balle2018_mse_Q1": {"family": "learned", "latents": True},
}


def _stage_inputs(ws: Path, shared: Path, n: int = 12) -> list[str]:
    """faces.parquet + 224^2 face PNGs (lfw-mini centre crops) and a pairs.parquet, as align/ingest write them."""
    rows = []
    for f in sorted((shared / "fixtures" / "lfw-mini" / "lfw").glob("*/*.jpg"))[:n]:
        image_id = f"{f.parent.name}/{f.stem}"
        rel = paths.LFW_FACES_DIR / f"{image_id}.png"
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(encode_png(np.ascontiguousarray(centre_crop(read_rgb(f), 224))))
        rows.append(
            {n: None for n in LFW_FACES.names}
            | dict(
                image_id=image_id,
                identity=f.parent.name,
                status="ok",
                path=rel.as_posix(),
                pad_top=0,
                pad_bottom=0,
                pad_left=0,
                pad_right=0,
            )
        )
    rows.append(
        {n: None for n in LFW_FACES.names} | dict(image_id="Broken/Broken_0001", identity="Broken", status="unreadable")
    )
    write_parquet_atomic(ws / paths.LFW_FACES, pa.Table.from_pylist(rows, schema=LFW_FACES), LFW_FACES)
    ids = [r["image_id"] for r in rows[:n]]
    pairs = [dict(pair_id=i, fold=0, left_id=ids[i], right_id=ids[i + 1], same=False) for i in range(0, n - 1, 2)]
    write_parquet_atomic(ws / paths.LFW_PAIRS, pa.Table.from_pylist(pairs, schema=LFW_PAIRS), LFW_PAIRS)
    return ids


def _changed(ws: Path) -> set[str]:
    out = run_dvc(ws, "status", "--json", "encode_lfw", "rd_report").stdout
    return set(json.loads(out or "{}"))


def test_encode_branches_rd_report_and_precise_invalidation(dvc_workspace, shared_dir: Path) -> None:
    ws = dvc_workspace(overrides={"codecs": {"__replace__": True, **CODECS}})
    ids = _stage_inputs(ws, shared_dir)
    run_dvc(ws, "repro", "--single-item", *[f"encode_lfw@{c}" for c in CODECS], "rd_report")

    rates = {}
    probes = set(pq.read_table(ws / paths.LFW_PAIRS).column("left_id").to_pylist())
    for codec in CODECS:
        index = pq.read_table(ws / paths.codec_index(codec)).to_pylist()
        assert len(index) == len(ids) + 1
        broken = [r for r in index if r["image_id"] == "Broken/Broken_0001"][0]
        assert broken["status"] == "no_input"
        ok = [r for r in index if r["status"] == "ok"]
        assert len(ok) == len(ids)
        for r in ok:
            assert read_rgb(ws / r["decoded"]).shape == (224, 224, 3)
            size = (ws / r["bitstream"]).stat().st_size
            assert r["bytes"] == (size - 8 if codec.startswith("Balle") else size)
            assert r["bpp_224"] == pytest.approx(r["bpp_256"] * 256**2 / 224**2)
        # declared: probe means of bpp over the 256^2 input, PSNR, MS-SSIM; the rest in the details
        declared = json.loads((ws / paths.rate_json(codec)).read_text())
        on_probes = [r for r in ok if r["image_id"] in probes]
        assert declared == {
            k: pytest.approx(np.mean([r[col] for r in on_probes]), rel=1e-5)
            for k, col in (("bpp", "bpp_256"), ("psnr", "psnr"), ("ms_ssim", "ms_ssim"))
        }
        summary = read_results(ws, paths.rate_json(codec))
        assert summary["probes"]["n"] == 6 and summary["all"]["n"] == len(ids)
        rates[codec] = summary["all"]
    assert rates["JPEG_Q1"]["bpp_256"] < rates["JPEG_Q25"]["bpp_256"]
    assert rates["JPEG_Q1"]["psnr"] < rates["JPEG_Q25"]["psnr"]
    assert rates["JPEG2000_mse_Q1"]["bpp_256"] == pytest.approx(0.10, rel=0.05)

    reader = LatentShardReader(ws / paths.lfw_latent_index("Balle2018_mse_Q1"), verify="sha256")
    assert len(reader) == len(ids) and reader.get(ids[0]).shape == (192, 14, 14)
    reader.verify_all()

    rd = list(csv.DictReader((ws / paths.RD_CSV).open()))  # one file, every series
    assert [r["codec"] for r in rd if r["series"] == "JPEG"] == ["JPEG_Q1", "JPEG_Q25"]  # by rate
    assert {r["series"] for r in rd} == {"JPEG", "JPEG2000_mse", "HEVC", "Balle2018_mse"}
    assert sorted(p.stem for p in (ws / paths.RD_METRICS).iterdir()) == sorted({r["series"] for r in rd})
    assert "JPEG_Q25" in (ws / paths.RD_REPORT).read_text()

    # changing one quality point reruns only its branch (+ the aggregate report)
    assert _changed(ws) == set()
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["codecs"]["JPEG2000_mse_Q1"]["target_bpp"] = 0.12
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _changed(ws) == {"encode_lfw@JPEG2000_mse_Q1", "rd_report"}
    # a family setting reruns only that family's branches
    params["codecs"]["JPEG2000_mse_Q1"]["target_bpp"] = 0.10
    params["encode"]["hevc"]["pix_fmt"] = "yuv444p"
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _changed(ws) == {"encode_lfw@HEVC_QP35"}


def test_encoder_failure_names_image_and_codec(dvc_workspace, shared_dir: Path) -> None:
    ws = dvc_workspace(overrides={"encode": {"hevc": {"x265_params": "ctu=7"}}})
    ids = _stage_inputs(ws, shared_dir, n=2)
    cmd = [str(BIN / "cdfv"), "encode-lfw", "HEVC_QP35"]
    proc = subprocess.run(cmd, cwd=ws, capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"HEVC_QP35 failed on image {ids[0]}" in proc.stderr and "encode.on_error: skip" in proc.stderr
    assert not (ws / paths.codec_dir("HEVC_QP35")).exists()  # nothing half-written

    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["encode"]["on_error"] = "skip"
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(cmd, cwd=ws, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    index = pq.read_table(ws / paths.codec_index("HEVC_QP35")).to_pylist()
    assert [r["status"] for r in index if r["image_id"] in ids] == ["error", "error"]
    assert read_results(ws, paths.rate_json("HEVC_QP35"))["n_failed"] == 2
