"""The paper's networks: shapes through every network, the paper's GMAC table, checkpoints."""

from __future__ import annotations

import pytest
import torch

from cdfv.complexity import PAPER_GMAC, count_macs, table7_specs
from cdfv.models import (
    CheckpointError,
    build_model,
    cresnet39,
    cresnet50,
    load_checkpoint,
    resnet50_caffe,
    resnet50_input,
    save_model,
)
from cdfv.models.heads import copy_linear_
from cdfv.models.latent import OnlineLatentEncoder, load_learned_codec, parse_codec_name

PAPER_CODECS = ["Balle2018_mse_Q1", "Balle2018_mse_Q3", "Balle2018_mse_Q6", "Balle2018_mse_Q8"]


@pytest.fixture(scope="module")
def gmac_table() -> dict[str, tuple[float, float]]:
    """(true GMAC, paper-convention GMAC) for every Table-7 model."""
    out = {}
    # Q1/Q3 (N=192) and Q6/Q8 (N=320) are the same networks: count one of each, name all four
    for spec in table7_specs(["Balle2018_mse_Q1", "Balle2018_mse_Q6"]):
        true, _ = count_macs(spec.net, spec.input_res)
        paper, _ = count_macs(spec.net, spec.input_res, paper_convention=True)
        out[spec.name] = (true / 1e9, paper / 1e9)
    for kind in ("ResNet50", "cResNet39"):
        out[f"{kind}_Balle2018_mse_Q3"] = out[f"{kind}_Balle2018_mse_Q1"]
        out[f"{kind}_Balle2018_mse_Q8"] = out[f"{kind}_Balle2018_mse_Q6"]
    return out


def test_resnet50_shapes_and_caffe_layout() -> None:
    m = resnet50_caffe(num_classes=10, embedding=False).eval()
    x = torch.randn(2, 3, 224, 224)
    maps = m.feature_maps(x)
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == {
        "root": (64, 56, 56),
        "layer1": (256, 56, 56),
        "layer2": (512, 28, 28),
        "layer3": (1024, 14, 14),
        "layer4": (2048, 7, 7),
    }
    assert m(x).shape == (2, 10)  # phase-1 logits
    assert m.features(x).shape == (2, 2048)
    # Caffe style: stride on the first 1x1 of a down-sampling bottleneck, max-pool ceil_mode, bias-free convs
    assert m.layer2[0].conv1.stride == (2, 2) and m.layer2[0].conv2.stride == (1, 1)
    assert m.maxpool.ceil_mode and m.maxpool.padding == 0
    assert all(c.bias is None for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    with pytest.raises(RuntimeError, match="no embedding head"):
        m.embed(x)


def test_resnet50_embedding_head() -> None:
    m = resnet50_caffe(num_classes=None, embedding=True).eval()
    x = torch.randn(1, 3, 224, 224)
    assert m.embed(x).shape == (1, 2048)
    assert torch.equal(m(x), m.embed(x))


@pytest.mark.parametrize("n", [192, 320, 64])
def test_cresnet39_shapes(n: int) -> None:
    m = cresnet39(n, num_classes=7, embedding=True).eval()
    z = torch.randn(2, n, 14, 14)
    maps = m.feature_maps(z)
    assert [tuple(v.shape[1:]) for v in maps.values()] == [(512, 14, 14), (1024, 14, 14), (2048, 7, 7)]
    assert m.embed(z).shape == (2, 2048)
    # block 2 keeps stride 1 and projects N -> 512 with a 1x1 conv
    proj = m.layer2[0].downsample[0]
    assert (proj.in_channels, proj.out_channels, proj.kernel_size, proj.stride) == (n, 512, (1, 1), (1, 1))
    assert not hasattr(m, "conv1") and not hasattr(m, "layer1")  # root and block 1 removed


def test_cresnet39_rejects_wrong_size() -> None:
    with pytest.raises(ValueError, match="expects 192x14x14"):
        cresnet39(192).features(torch.randn(1, 192, 28, 28))


def test_cresnet50_shapes_and_init_from_resnet50() -> None:
    r = resnet50_caffe(None, True)
    m = cresnet50(192, embedding=True).eval()
    maps = m.feature_maps(torch.randn(1, 192, 14, 14))
    assert tuple(maps["adapter"].shape[1:]) == (64, 56, 56)
    assert tuple(maps["layer4"].shape[1:]) == (2048, 7, 7)
    copied = m.init_from_resnet50(r)
    assert copied and all(torch.equal(m.state_dict()[k], r.state_dict()[k]) for k in copied)
    with pytest.raises(ValueError, match="divisible"):
        cresnet50(100)


def test_gmac_table_matches_paper(gmac_table: dict[str, tuple[float, float]]) -> None:
    """Table 7 GMAC within 0.5% (paper convention): 3.89, 13.55, 25.3, 2.36, 2.38."""
    assert [s.name for s in table7_specs(PAPER_CODECS)] == list(PAPER_GMAC)
    assert set(gmac_table) == set(PAPER_GMAC)
    for name, (_, paper_conv) in gmac_table.items():
        assert paper_conv == pytest.approx(PAPER_GMAC[name], rel=0.005), name
    assert PAPER_GMAC["ResNet50_Original_Anchor"] == 3.89
    assert PAPER_GMAC["cResNet39_Balle2018_mse_Q1"] == 2.36 and PAPER_GMAC["cResNet39_Balle2018_mse_Q8"] == 2.38
    assert PAPER_GMAC["ResNet50_Balle2018_mse_Q3"] == 13.55 and PAPER_GMAC["ResNet50_Balle2018_mse_Q6"] == 25.3


def test_gmac_true_convention(gmac_table: dict[str, tuple[float, float]]) -> None:
    """Without the transposed-conv overcount the decoded anchors are ~6.3 / ~9.3 GMAC (thesis Table 7)."""
    for name in ("ResNet50_Original_Anchor", "cResNet39_Balle2018_mse_Q1", "cResNet39_Balle2018_mse_Q6"):
        true, paper = gmac_table[name]
        assert true == pytest.approx(paper, rel=1e-9)  # no ConvTranspose2d: conventions agree
    assert gmac_table["ResNet50_Balle2018_mse_Q1"][0] == pytest.approx(6.32, abs=0.02)
    assert gmac_table["ResNet50_Balle2018_mse_Q6"][0] == pytest.approx(9.25, abs=0.02)
    # the paper's "x5.74 more MACs than cResNet39" shrinks to ~x2.7
    ratio = gmac_table["ResNet50_Balle2018_mse_Q1"][0] / gmac_table["cResNet39_Balle2018_mse_Q1"][0]
    assert 2.6 < ratio < 2.8


def test_checkpoint_roundtrip(tmp_path) -> None:
    m = cresnet39(320, num_classes=None, embedding=True).eval()
    path = tmp_path / "model.pt"
    save_model(m, path, meta={"codec": "Balle2018_mse_Q6"})
    loaded = load_checkpoint(path)
    assert isinstance(loaded, type(m)) and not loaded.training
    assert loaded.meta["codec"] == "Balle2018_mse_Q6"
    z = torch.randn(2, 320, 14, 14)
    assert torch.equal(loaded.embed(z), m.embed(z))


def test_checkpoint_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="bad.pt: unreadable or corrupt"):
        load_checkpoint(bad)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a cdfv model"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg16")


def test_with_embedding_head_copies_resnet50_fc() -> None:
    r = resnet50_caffe(None, True)
    c = cresnet39(192, num_classes=5, embedding=False)
    c.with_embedding_head(init_from=r.embedding)
    assert c.fc is None and torch.equal(c.embedding.weight, r.embedding.weight)
    with pytest.raises(ValueError, match="cannot copy"):
        copy_linear_(c.embedding, torch.nn.Linear(10, 3))


def test_resnet50_input_mean_subtraction() -> None:
    faces = torch.full((1, 224, 224, 3), 100, dtype=torch.uint8).numpy()
    x = resnet50_input(faces)
    assert x.shape == (1, 3, 224, 224)
    assert x[0, :, 0, 0].tolist() == pytest.approx([100 - 131.0912, 100 - 103.8827, 100 - 91.4953], abs=1e-4)


def test_online_latent_encoder_matches_compressai_entropy_decode() -> None:
    """round(g_a(x)) cropped equals the real range-coded y_hat of CompressAI (cropped)."""
    torch.manual_seed(0)
    codec = load_learned_codec("Balle2018_mse_Q1", pretrained=False)
    codec.update(force=True)
    enc = OnlineLatentEncoder(codec.g_a)
    face = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
    z = enc(face)
    assert z.shape == (1, parse_codec_name("Balle2018_mse_Q1").latent_channels, 14, 14)
    x = torch.nn.functional.pad(face.float() / 255, (16,) * 4)
    with torch.no_grad():
        out = codec.compress(x)
        z_hat = codec.entropy_bottleneck.decompress(out["strings"][1], out["shape"])
        indexes = codec.gaussian_conditional.build_indexes(codec.h_s(z_hat))
        y_hat = codec.gaussian_conditional.decompress(out["strings"][0], indexes)
    assert torch.equal(z, y_hat[..., 1:15, 1:15])
    assert not any(p.requires_grad for p in enc.parameters())
