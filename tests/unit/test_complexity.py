"""End-to-end per-pair timing of the complexity stage: the paths it times compute the right thing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from cdfv import paths, schemas
from cdfv.complexity import (
    AlignSettings,
    ComplexityError,
    e2e_step,
    load_lfw_pairs,
    table7_specs,
)
from cdfv.io import encode_png
from cdfv.models import resnet50_input

CODEC = "Balle2018_mse_Q1"


def write(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    full = [{**{n: None for n in schema.names}, **r} for r in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=schema), path)


@pytest.fixture
def lfw(tmp_path: Path) -> Path:
    """Three 224x224 images; detections = the whole image without landmarks (align = identity)."""
    rng = np.random.default_rng(0)
    ids = ["a/a_0001", "b/b_0001", "c/c_0001"]
    for i in ids:
        (tmp_path / paths.LFW_PNG / f"{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / paths.LFW_PNG / f"{i}.png").write_bytes(encode_png(rng.integers(0, 256, (224, 224, 3), np.uint8)))
    write(
        tmp_path / paths.LFW_IMAGES,
        [{"image_id": i, "identity": i[0], "path": str(paths.LFW_PNG / f"{i}.png")} for i in ids],
        schemas.LFW_IMAGES,
    )
    write(
        tmp_path / paths.LFW_DETECTIONS,
        [
            {
                "image_id": i,
                "status": "no_face" if i != "c/c_0001" else "unreadable",
                "x1": 0,
                "y1": 0,
                "x2": 224,
                "y2": 224,
            }
            for i in ids
        ],
        schemas.LFW_DETECTIONS,
    )
    write(
        tmp_path / paths.LFW_PAIRS,
        [
            {"pair_id": 0, "fold": 0, "left_id": "a/a_0001", "right_id": "c/c_0001", "same": False},
            {"pair_id": 1, "fold": 0, "left_id": "a/a_0001", "right_id": "b/b_0001", "same": False},
        ],
        schemas.LFW_PAIRS,
    )
    return tmp_path


def test_pairs_skip_unreadable_and_repeat(lfw: Path) -> None:
    data = load_lfw_pairs(lfw, 3)
    assert len(data) == 3  # the one usable pair (a, b), repeated to fill the batch
    assert [p.name for p in data.paths[0]] == ["a_0001.png"] * 3 and [p.name for p in data.paths[1]] == [
        "b_0001.png"
    ] * 3
    assert data.boxes[0][0] == (0, 0, 224, 224) and data.landmarks[0][0] is None


def test_no_usable_pair_names_the_stage(lfw: Path) -> None:
    write(
        lfw / paths.LFW_PAIRS,
        [{"pair_id": 0, "fold": 0, "left_id": "a/a_0001", "right_id": "c/c_0001", "same": False}],
        schemas.LFW_PAIRS,
    )
    with pytest.raises(ComplexityError, match="dvc repro detect_lfw"):
        load_lfw_pairs(lfw, 2)


@torch.no_grad()
def test_e2e_paths_embed_what_they_should(lfw: Path) -> None:
    """Known answers: an aligned 224 face that needs no alignment is the PNG itself; C's latents are
    round(g_a(x)) of the padded face (the zero-mean hyperprior's ŷ, thesis §6.2)."""
    from cdfv.codecs.learned import LearnedCodec
    from cdfv.config import LearnedSettings
    from cdfv.io import read_rgb
    from cdfv.models.latent import parse_codec_name

    data = load_lfw_pairs(lfw, 2)
    faces = [np.stack([read_rgb(p) for p in side]) for side in data.paths]
    specs = {s.kind: s for s in table7_specs([CODEC])}
    codec = LearnedCodec(parse_codec_name(CODEC), LearnedSettings(pretrained=False, untrained_gain=10.0, device="cpu"))
    cpu, a = torch.device("cpu"), AlignSettings()

    anchor = e2e_step(specs["anchor"], data, None, cpu, a)()
    model = specs["anchor"].net.model
    assert anchor.shape == (2, 2, 2048)
    assert torch.allclose(anchor, torch.stack([model.embed(resnet50_input(f)) for f in faces]), atol=1e-5)

    comp = e2e_step(specs["compressed"], data, codec, cpu, a)()
    c39 = specs["compressed"].net.model
    for side in (0, 1):
        x = torch.nn.functional.pad(torch.from_numpy(faces[side]).permute(0, 3, 1, 2).float() / 255, (16,) * 4)
        y = torch.round(codec.model.g_a(x))[..., 1:15, 1:15]
        assert y.abs().max() > 0 and torch.allclose(comp[side], c39.embed(y), rtol=1e-4, atol=1e-3)

    dec = e2e_step(specs["decoded"], data, codec, cpu, a)()
    resnet = specs["decoded"].net.resnet
    assert dec.shape == (2, 2, 2048)
    assert torch.allclose(dec[1], resnet.embed(resnet50_input(faces[1])), rtol=1e-4, atol=1e-3)  # reference: A's path
    probe = np.stack(
        [
            im[16:240, 16:240]
            for im in codec.decode_batch(
                codec.encode_batch([np.pad(f, ((16, 16), (16, 16), (0, 0))) for f in faces[0]])
            )
        ]
    )
    assert torch.allclose(dec[0], resnet.embed(resnet50_input(probe)), rtol=1e-4, atol=1e-3)  # decoded, border cut
