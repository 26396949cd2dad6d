"""Pipeline B1 (thesis ch. 5, decode then crop) under real `dvc repro` on the smoke profile.

encode_lfw_full@<codec> (untrained Ballé 2018, real range coder) -> align_lfw_full@<codec> (original
detections) -> eval_lfw_dlib_b1@<codec> (off-the-shelf dlib), then the report lines and precise invalidation.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from cdfv import paths
from cdfv.detect.base import LANDMARK_COLUMNS
from cdfv.evaluate.report import write_report
from cdfv.io import read_rgb
from cdfv.results import read_results
from tests.conftest import run_dvc

pytestmark = pytest.mark.slow

CODEC = "Balle2018_mse_Q2"  # profiles/smoke.yaml eval.b1_codecs
MODEL = f"Dlib_B1_{CODEC}"


def test_b1_stages_decode_then_crop_with_original_detections(dvc_workspace) -> None:
    ws = dvc_workspace()
    params = yaml.safe_load((ws / "params.yaml").read_text())
    assert CODEC in params["eval"]["b1_codecs"] and CODEC in params["eval"]["dlib_b1"]
    assert CODEC not in params["codecs"]  # B1 needs no B2 encode_lfw branch
    run_dvc(ws, "repro", f"eval_lfw_dlib_b1@{CODEC}", "eval_lfw_dlib_anchor")

    # encode_lfw_full: probes only, 250 -> 256 (3 px each side), real bitstreams, rate over 256^2 and 250^2
    pairs = pq.read_table(ws / paths.LFW_PAIRS).to_pylist()
    probes = sorted({p["left_id"] for p in pairs})
    index = pq.read_table(ws / paths.full_codec_index(CODEC)).to_pylist()
    assert [r["image_id"] for r in index] == probes and all(r["status"] == "ok" for r in index)
    for r in index:
        assert (r["width"], r["height"]) == (250, 250)
        assert (r["pad_top"], r["pad_bottom"], r["pad_left"], r["pad_right"]) == (3, 3, 3, 3)
        assert read_rgb(ws / r["decoded"]).shape == (250, 250, 3)
        assert r["bytes"] == (ws / r["bitstream"]).stat().st_size - 8  # y + z strings, 8-byte container header
        assert r["bpp_256"] == pytest.approx(8 * r["bytes"] / 256**2)
        assert r["bpp_orig"] == pytest.approx(8 * r["bytes"] / 250**2)
    rate = read_results(ws, paths.full_rate_json(CODEC))
    assert rate["bpp"] == pytest.approx(np.mean([r["bpp_256"] for r in index]), rel=1e-5)  # declared
    assert rate["n_probes"] == len(probes) and rate["probes"]["bpp_256"] == pytest.approx(
        np.mean([r["bpp_256"] for r in index])
    )

    # align_lfw_full: same crop/rotation/resize as the original faces (detections reused), decoded pixels
    orig = {r["image_id"]: r for r in pq.read_table(ws / paths.LFW_FACES).to_pylist()}
    faces = pq.read_table(ws / paths.full_faces_dir(CODEC) / "faces.parquet").to_pylist()
    assert sorted(f["image_id"] for f in faces) == probes
    geometry = ["status", "pad_top", "pad_bottom", "pad_left", "pad_right", "angle", *LANDMARK_COLUMNS]
    for f in faces:
        assert {k: f[k] for k in geometry} == {k: orig[f["image_id"]][k] for k in geometry}
        assert f["path"].startswith(f"data/processed/lfw_full_faces/{CODEC}/faces/")
        assert read_rgb(ws / f["path"]).shape == (224, 224, 3)
        assert f["sha256"] != orig[f["image_id"]]["sha256"]  # the codec changed the pixels

    # eval: probe = B1 face, reference = original; rate = mean bpp_256 over the distinct probes
    m = read_results(ws, paths.eval_json(MODEL))
    assert (m["pipeline"], m["codec"], m["series"]) == ("B1", CODEC, "Dlib_B1_Balle2018_mse")
    assert m["n_pairs"] == 76 and 0.0 <= m["auc"] <= 1.0
    assert m["bpp"] == pytest.approx(rate["probes"]["bpp_256"], rel=1e-5) and m["bpp_orig"] == pytest.approx(
        rate["probes"]["bpp_orig"]
    )
    emb = pq.read_table(ws / paths.eval_dir(MODEL) / "embeddings.parquet").to_pylist()
    assert sorted(e["image_id"] for e in emb if e["role"] == "probe") == probes

    # report: B1 lines in table7's "Other evaluated solutions" and a Fig. 4 series of their own
    out = write_report(ws, models=["Dlib_Original_Anchor", MODEL])
    table = out["table"].read_text()
    other = table.split("## Other evaluated solutions")[1]
    assert f"| {MODEL} | B1 |" in other
    fig4 = (ws / paths.FIG4_CSV).read_text().splitlines()
    assert fig4[1].startswith(f"Dlib_B1_Balle2018_mse,{MODEL},B1,")  # series, model, pipeline

    # precise invalidation: an alignment param re-aligns B1 faces but never re-encodes
    params["align"]["interpolation"] = "bicubic"
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = set(json.loads(run_dvc(ws, "status", "--json").stdout or "{}"))
    assert f"align_lfw_full@{CODEC}" in changed and f"encode_lfw_full@{CODEC}" not in changed
