"""Bian et al. 2019: the compact map's PNG bitstream, CompNet/RecNet/sphere20 shapes, eq. (1), the three
training steps on real files, ratio-driven JPEG 2000 and Table 1 computed from metrics."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from cdfv import paths, schemas
from cdfv.bian.models import (
    BianNet,
    CompNet,
    RecNet,
    Sphere20,
    dequantise,
    quantise,
    quantise_ste,
)
from cdfv.bian.png import MapPngError, decode_map, encode_map
from cdfv.config import BianParams, ParamsError, parse_params
from cdfv.io import encode_png, write_parquet_atomic


# --------------------------------------------------------------------------- bitstream
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 6])
def test_png_round_trip_is_lossless_and_the_rate_is_the_file(tmp_path: Path, channels: int) -> None:
    rng = np.random.default_rng(channels)
    # a smooth map (what CompNet makes) plus noise: PNG must compress it, and give back every sample
    base = np.linspace(0, 255, 14 * 12).reshape(14, 12)
    q = np.clip(base[None] + rng.normal(0, 6, (channels, 14, 12)), 0, 255).astype(np.uint8)
    data = encode_map(q, level=9)
    f = tmp_path / "map.png"
    f.write_bytes(data)
    assert f.stat().st_size == len(data)  # the rate: bytes of a real file
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(decode_map(f.read_bytes(), channels, 14, 12), q)
    # oracle: Pillow reads the file back independently of decode_map
    arr = np.asarray(Image.open(io.BytesIO(data)))
    if channels == 1:
        assert np.array_equal(arr, q[0])
    elif channels <= 4:
        assert np.array_equal(arr, q.transpose(1, 2, 0))
    else:
        assert np.array_equal(arr, q.reshape(channels * 14, 12))
    assert len(data) < q.nbytes + 120  # compressed (headers ~70 bytes)
    with pytest.raises(MapPngError, match="expected"):
        decode_map(data, channels, 12, 14)


def test_quantisation_is_eq_1() -> None:
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 3.0, -7.0])
    # X_Q = round((X + 1) * 255 / 2), clamped to the map's [-1, 1]
    assert quantise(x).tolist() == [0, 64, 128, 191, 255, 255, 0]
    assert torch.allclose(
        dequantise(torch.tensor([0, 255, 128], dtype=torch.uint8)), torch.tensor([-1.0, 1.0, 1 / 255]), atol=1e-6
    )
    # straight-through: forward = dequantise(quantise(x)), gradient = identity
    z = torch.tensor([0.1234, -0.9], requires_grad=True)
    y = quantise_ste(z)
    assert torch.allclose(y, dequantise(quantise(z.detach())))
    y.sum().backward()
    assert torch.equal(z.grad, torch.ones(2))


# --------------------------------------------------------------------------- networks
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_compnet_output_range_and_shape(channels: int) -> None:
    torch.manual_seed(0)
    net = CompNet(channels).eval()
    x = torch.randn(2, 3, 112, 96) * 50  # far outside [-1, 1]: tanh still bounds the map
    z = net(x)
    assert z.shape == (2, channels, 112 // 8, 96 // 8)
    assert z.min() >= -1 and z.max() <= 1
    rec = RecNet(channels).eval()(z)
    assert rec.shape == (2, 3, 112, 96) and rec.min() >= -1 and rec.max() <= 1
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 3, 110, 96))
    # five convs, layers 2-4 stride 2
    convs = [m for m in net.net if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and [c.stride[0] for c in convs] == [1, 2, 2, 2, 1]
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in RecNet(channels).net) == 3


def test_sphere20_is_cosface_sphere20() -> None:
    net = Sphere20(512)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 20  # 4 stride-2 convs + 2 x (1 + 2 + 4 + 1) in the residual units
    assert net.fc.in_features == 512 * 7 * 6 and net(torch.zeros(2, 3, 112, 96)).shape == (2, 512)
    assert any(isinstance(m, torch.nn.PReLU) for m in net.modules())


def test_bian_params_defaults_are_the_papers() -> None:
    b = BianParams()
    assert (b.train.codec.batch_size, b.train.codec.epochs, b.train.codec.lr) == (20, 40, 1e-4)
    j = b.train.joint
    assert (j.batch_size, j.epochs, j.lr, j.lr_end) == (100, 40, 0.01, 1e-5)
    assert (b.cosface.scale, b.cosface.margin) == (64.0, 0.35) and b.table_channels == 3
    with pytest.raises(ParamsError, match="table_channels"):
        parse_params({"bian": {"channels": [1, 2], "table_channels": 3}})
    from cdfv.config import REFERENCE_SETS

    odd = {"width": 90, "height": 112, "points": [[20, 50], [60, 50], [45, 70], [30, 90], [60, 90]]}
    with pytest.raises(ParamsError, match="divisible by 8"):
        parse_params({"align": {"references": {**REFERENCE_SETS, "odd": odd}}, "bian": {"reference": "odd"}})


# --------------------------------------------------------------------------- training steps
def _training_workspace(tmp_path: Path) -> Path:
    """12 real 112x96 PNG faces of 3 identities + the index bian_faces writes."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(12):
        ident = f"id{k % 3}"
        img = np.clip(rng.normal(100 + 40 * (k % 3), 30, (112, 96, 3)), 0, 255).astype(np.uint8)
        rel = paths.BIAN_TRAIN_FACES_DIR / ident / f"{k}.png"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(encode_png(img))
        rows.append(
            dict(image_id=f"{ident}/{k}", identity=ident, label=k % 3, path=str(rel), template="", source="casia")
        )
    write_parquet_atomic(
        tmp_path / paths.BIAN_TRAIN_INDEX,
        pa.Table.from_pylist(rows, schema=schemas.BIAN_TRAIN_FACES),
        schemas.BIAN_TRAIN_FACES,
    )
    return tmp_path


def _params(**train: object):  # type: ignore[no-untyped-def]
    step = {"epochs": 1, "batch_size": 4, "lr": 0.05, "lr_end": 0.01, "weight_decay": 0.01}
    return parse_params(
        {
            "bian": {
                "channels": [2],
                "table_channels": 2,
                "compnet": {"width": 8},
                "recnet": {"width": 8},
                "embedding": 16,
                "train": {
                    "device": "cpu",
                    "workers": 0,
                    "max_steps_per_epoch": 2,
                    "checkpoint_every": 1,
                    "codec": step,
                    "sphere20": step,
                    "joint": step,
                    **train,
                },
            }
        }
    )


def _state(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    data = torch.load(path, map_location="cpu", weights_only=True)
    return {k[len(prefix) :]: v for k, v in data["state"].items() if k.startswith(prefix)}


def test_pretraining_leaves_sphere20_alone_and_joint_training_changes_compnet(tmp_path: Path) -> None:
    from cdfv.bian.train import STEPS, BianTrainer, _seed

    root = _training_workspace(tmp_path)
    params = _params()
    net, crit, trainable = BianTrainer("pretrain", 2, params, root, progress=False).build(3)
    assert crit is None and not {id(p) for p in net.sphere20.parameters()} & {id(p) for p in trainable}
    assert {id(p) for p in net.compnet.parameters()} <= {id(p) for p in trainable}
    BianTrainer("pretrain", 2, params, root, progress=False).fit()
    pre = root / paths.bian_model_dir("pretrain", 2) / "model.pt"
    torch.manual_seed(_seed(params.bian.train.seed, STEPS.index("pretrain")))
    init = BianNet(2, params.bian)  # the network the pretrain step started from
    sphere_after, comp_after = _state(pre, "sphere20."), _state(pre, "compnet.")
    for k, v in init.sphere20.state_dict().items():
        assert torch.equal(v, sphere_after[k]), f"pre-training touched sphere20.{k}"
    assert any(not torch.equal(v, comp_after[k]) for k, v in init.compnet.state_dict().items())

    BianTrainer("sphere20", None, params, root, progress=False).fit()
    BianTrainer("joint", 2, params, root, progress=False).fit()
    joint = root / paths.bian_model_dir("joint", 2) / "model.pt"
    comp_joint = _state(joint, "compnet.")
    changed = [k for k, v in comp_after.items() if not torch.equal(v, comp_joint[k])]
    assert changed, "the joint step did not change CompNet"
    assert any(
        not torch.equal(v, _state(joint, "sphere20.")[k])
        for k, v in _state(root / paths.bian_model_dir("sphere20") / "model.pt", "").items()
    )
    saved = torch.load(joint, map_location="cpu", weights_only=True)
    assert saved["meta"]["steps"] == 2 and saved["criterion"]["W"].shape == (16, 3)
    assert not (root / paths.bian_checkpoint_dir("joint", 2)).exists()  # sealed on completion
    assert (root / paths.bian_train_report_dir("joint", 2) / "metrics.json").is_file()  # DVCLive


def test_non_finite_loss_stops_naming_the_step(tmp_path: Path) -> None:
    from cdfv.bian.train import BianTrainer
    from cdfv.train.loop import NonFiniteLossError

    root = _training_workspace(tmp_path)
    params = _params(codec={"epochs": 1, "batch_size": 4, "lr": 1e30, "lr_end": 1e30})
    with pytest.raises(NonFiniteLossError, match=r"bian/pretrain/C2: non-finite loss .* step \d+, batch \d+"):
        BianTrainer("pretrain", 2, params.model_copy(update={}), root, progress=False).fit()


# --------------------------------------------------------------------------- JPEG 2000 at a ratio
def test_jpeg2000_ratio_names_hit_the_ratio_on_real_codestreams() -> None:
    from cdfv.codecs.names import parse_codec_name
    from cdfv.codecs.registry import get_codec

    spec = parse_codec_name("JPEG2000_mse_R88")
    assert (spec.family, spec.ratio, spec.metric, spec.series) == ("jpeg2000", 88, "mse", "JPEG2000_mse")
    face = np.asarray(Image.open(io.BytesIO(encode_png(np.full((112, 96, 3), 120, np.uint8)))))
    rng = np.random.default_rng(3)
    face = np.clip(face + rng.normal(0, 25, face.shape), 0, 255).astype(np.uint8)
    for ratio in (88, 134):
        codec = get_codec(f"JPEG2000_mse_R{ratio}")
        data = codec.encode(face)
        assert abs(len(data) - face.nbytes / ratio) <= 0.05 * face.nbytes / ratio  # raw RGB bytes / ratio
        assert codec.decode(data).shape == face.shape
    with pytest.raises(ParamsError, match="fixes the compression ratio"):
        parse_params({"codecs": {"JPEG2000_mse_R88": {"family": "jpeg2000", "target_bpp": 0.2}}})


# --------------------------------------------------------------------------- Table 1
def test_table1_is_computed_from_the_metrics(tmp_path: Path) -> None:
    from cdfv.bian.points import configured_points
    from cdfv.bian.report import PAPER_TABLE1, run_bian_report

    params = parse_params(
        {"bian": {"channels": [1, 3], "codecs": ["JPEG_Q1", "JPEG2000_mse_R88", "JPEG2000_mse_R134"]}}
    )
    points = configured_points(params)
    rng = np.random.default_rng(5)
    values = {}
    for p in points:
        bpp = float(rng.uniform(0.1, 2.0))
        values[p] = {
            "accuracy": float(rng.uniform(0.6, 0.99)),
            "tar_far_1e-3": 0.5,
            "tar_far_1e-2": 0.6,
            "eer": 0.1,
            "auc": 0.9,
            "size_mb": bpp * 112 * 96 / 8 * 100 / 1e6,
            "bpp": bpp,
        }
        f = tmp_path / paths.bian_eval_json(p)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values[p]))
    out = run_bian_report(params, tmp_path)
    md = (tmp_path / paths.BIAN_TABLE).read_text()
    for label, pattern, mb, acc in PAPER_TABLE1:
        point = pattern.format(C=3)
        row = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
        assert f"| {mb} |" in row and f"| {acc:.2f} |" in row  # the paper's values beside ours
        assert f"{100 * values[point]['accuracy']:.2f}" in row and f"{values[point]['size_mb']:.3f}" in row
        assert out["table1"][point]["accuracy"] == values[point]["accuracy"]
    assert "libjpeg clamps quality 0 to 1" in md
    assert (tmp_path / paths.BIAN_FIGURE).stat().st_size > 0
    csv = (tmp_path / paths.BIAN_RATE_METRIC_PLOTS / "Sphere20_CompNet_joint.csv").read_text().splitlines()
    assert csv[0].startswith("point,bpp") and len(csv) == 3
    # BD-accuracy of the joint curve vs the JPEG 2000 curve (2 points each): pchip over log bpp
    assert "Sphere20_JPEG2000_mse" in out["bd_accuracy_pp"]
