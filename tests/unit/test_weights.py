"""Public weights come like LFW: a real HTTP server on 127.0.0.1 serves generated state dicts; the codec
and the detector fetch them once through cdfv.download, verify them (full sha256, torch.hub prefix, or
the digest recorded on first download) and load exactly those tensors."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cdfv.config import ParamsError, deep_merge, parse_params
from cdfv.download import ChecksumError, record_path
from cdfv.weights import (
    HUB_HASH,
    WeightsUnavailableError,
    cache_dir,
    codec_path,
    hub_prefix,
    retinaface_path,
    torch_hub_dir,
)
from tests.httpserver import serve

CODEC = "Balle2018_mse_Q1"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cache, torch hub and deepface folders of this test only (no real weights are ever found)."""
    monkeypatch.setenv("CDFV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "home"))


def params_with(weights: dict[str, Any], **extra: Any) -> Any:
    """Params using one learned codec (Balle2018_mse_Q1), pretrained, on the CPU, with ``weights``
    merged over a placeholder entry; ``extra`` sections merged over the rest."""
    data = {
        "codecs": {CODEC: {"family": "learned"}},
        "encode": {"learned": {"pretrained": True, "device": "cpu", "verify_sample": 0}},
        "eval": {"dlib_decoded": [], "b1_codecs": [], "resnet50_b1": [], "dlib_b1": [], "cresnet39": [CODEC]},
        "train": {"cresnet39": {"codecs": []}},
        "complexity": {"codecs": [CODEC]},
        "weights": {"codecs": {"learned": {CODEC: {"url": "placeholder-unused.pth.tar"}}}},
    }
    return parse_params(deep_merge(data, {"weights": weights, **extra}))


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A bmshj2018-hyperprior q1 state dict (seeded random init) under a torch.hub-style name."""
    from compressai.zoo.image import cfgs, model_architectures

    torch.manual_seed(7)
    state = model_architectures["bmshj2018-hyperprior"](*cfgs["bmshj2018-hyperprior"][1]).state_dict()
    root = tmp_path_factory.mktemp("srv")
    tmp = root / "tmp.pth.tar"
    torch.save(state, tmp)
    named = root / f"bmshj2018-hyperprior-1-{_sha(tmp)[:8]}.pth.tar"
    tmp.rename(named)
    return named, state


def _codec_weights(url: str, sha256: str | None) -> dict[str, Any]:
    return {"codecs": {"learned": {CODEC: {"url": url, "sha256": sha256}}}}


def test_our_hub_rules_are_torch_hubs(tmp_path: Path) -> None:
    assert HUB_HASH.pattern == torch.hub.HASH_REGEX.pattern
    assert torch_hub_dir() == Path(torch.hub.get_dir())  # TORCH_HOME set by the fixture
    assert hub_prefix("https://x/models/v1/bmshj2018-hyperprior-ms-ssim-3-92dd7878.pth.tar") == "92dd7878"
    assert hub_prefix("https://x/retinaface.pth") is None


def test_codec_fetches_its_weights_once_verifies_and_loads_them(
    tmp_path: Path, zoo_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    from cdfv.codecs.registry import codec_with_weights

    path, state = zoo_file
    with serve(path.parent) as (base, log):
        p = params_with(_codec_weights(f"{base}/{path.name}", _sha(path)))
        codec = codec_with_weights(CODEC, p)
        again = codec_with_weights(CODEC, p)
        assert len(log) == 1  # fetched once, then from the cache (verified again, not downloaded)
    cached = codec_path(p, CODEC)
    assert cached.parent == cache_dir(p) and cached.read_bytes() == path.read_bytes()
    loaded = codec.model.state_dict()
    for k, v in state.items():  # the served tensors, not a random init
        if k.startswith(("g_a.", "g_s.", "h_a.", "h_s.")):
            assert torch.equal(loaded[k], v), k
    assert torch.equal(again.model.state_dict()["g_a.0.weight"], state["g_a.0.weight"])
    yy, xx = np.mgrid[0:256, 0:256]
    img = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)
    data = codec.encode(img)  # real range coding with the served weights
    assert codec.decode(data).shape == img.shape and len(data) > 8


def test_wrong_sha256_fails_naming_expected_and_actual_and_leaves_no_file(
    tmp_path: Path, zoo_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    path, _ = zoo_file
    wrong = "ab" * 32
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "mirror.pth.tar").write_bytes(path.read_bytes())  # a mirror: no hash in the name
    with serve(srv) as (base, log):
        p = params_with(_codec_weights(f"{base}/mirror.pth.tar", wrong))
        with pytest.raises(ChecksumError) as err:
            codec_path(p, CODEC)
        assert len(log) == 1
        # a hub-style name that contradicts params.yaml fails before any download
        hub = params_with(_codec_weights(f"{base}/{path.name}", wrong))
        with pytest.raises(ChecksumError, match=f"prefix {path.name.split('-')[-1][:8]} but params.yaml says {wrong}"):
            codec_path(hub, CODEC)
        assert len(log) == 1
    msg = str(err.value)
    assert wrong in msg and _sha(path) in msg and f"weights.codecs.learned.{CODEC}" in msg
    assert list(cache_dir(p).iterdir()) == []  # no part, file or record


def test_interrupted_weights_download_resumes(tmp_path: Path, zoo_file: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, _ = zoo_file
    cut = path.stat().st_size // 3
    with serve(path.parent, cut_after={path.name: cut}) as (base, log):
        p = params_with(_codec_weights(f"{base}/{path.name}", _sha(path)))
        with pytest.raises(WeightsUnavailableError, match="resume"):
            codec_path(p, CODEC)
        parts = list(cache_dir(p).glob("*.part"))
        assert len(parts) == 1 and parts[0].stat().st_size == cut
        out = codec_path(p, CODEC)
    assert out.read_bytes() == path.read_bytes()
    assert log[-1] == (path.name, f"bytes={cut}-")  # resumed with a Range request


def test_torch_hub_prefix_in_the_file_name_is_checked(
    tmp_path: Path, zoo_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    """sha256 null in params: the prefix in the zoo file name is the check, as torch.hub does it."""
    path, _ = zoo_file
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / path.name).write_bytes(path.read_bytes())
    with serve(srv) as (base, _):
        p = params_with(_codec_weights(f"{base}/{path.name}", None))
        good = codec_path(p, CODEC)
        assert record_path(good).read_text().strip() == _sha(path)  # the full digest, recorded
        good.unlink()
        (srv / path.name).write_bytes(path.read_bytes() + b"tampered")  # same name, other bytes
        with pytest.raises(ChecksumError) as err:
            codec_path(p, CODEC)
    assert f"prefix {path.name.split('-')[-1].split('.')[0]}" in str(err.value)
    assert not good.exists()


def test_unknown_hash_is_recorded_on_first_download_and_checked_on_every_use(tmp_path: Path) -> None:
    """No hash anywhere (RetinaFace, FaceNet): the first download's digest is recorded; a corrupted cache
    entry is downloaded again; different bytes from the server fail naming recorded and actual."""
    srv = tmp_path / "srv"
    srv.mkdir()
    blob = srv / "retinaface.pth"
    blob.write_bytes(b"weights v1 " * 1000)
    with serve(srv) as (base, log):
        p = params_with({"retinaface": {"url": f"{base}/retinaface.pth", "sha256": None}})
        w = retinaface_path(p)
        first = _sha(blob)
        assert record_path(w).read_text().strip() == first
        w.write_bytes(b"bit rot")  # corrupt cache entry: verified on use, downloaded again
        assert retinaface_path(p).read_bytes() == blob.read_bytes() and len(log) == 2
        w.unlink()
        blob.write_bytes(b"weights v2 " * 1000)  # the server now serves another file
        with pytest.raises(ChecksumError) as err:
            retinaface_path(p)
    assert first in str(err.value) and _sha(blob) in str(err.value) and "weights.retinaface" in str(err.value)
    assert not w.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_message_names_the_places_the_url_and_the_alternative(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/retinaface.pth"
    p = params_with({"retinaface": {"url": url, "sha256": None}})
    with pytest.raises(WeightsUnavailableError) as err:
        retinaface_path(p)
    msg = str(err.value)
    assert str(tmp_path / "home" / ".deepface" / "weights" / "retinaface.pth") in msg
    assert str(cache_dir(p)) in msg and url in msg and "detect.backend: dlib" in msg and "weights.retinaface" in msg
    assert not (tmp_path / "home").exists()  # nothing created
    # the codec's message: its torch hub place and the untrained alternative
    zoo = f"http://127.0.0.1:{_closed_port()}/bmshj2018-hyperprior-1-7eb97409.pth.tar"
    p = params_with(_codec_weights(zoo, "7eb97409"))
    with pytest.raises(WeightsUnavailableError) as err:
        codec_path(p, CODEC)
    msg = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "bmshj2018-hyperprior-1-7eb97409.pth.tar") in msg
    assert zoo in msg and "encode.learned.pretrained: false" in msg
    # not needed -> not fetched: dlib backend, untrained codec
    assert retinaface_path(params_with({"retinaface": {"url": url}}, detect={"backend": "dlib"})) is None
    assert codec_path(params_with({}, encode={"learned": {"pretrained": False}}), CODEC) is None


def test_a_file_found_where_deepface_keeps_it_is_verified_and_used(tmp_path: Path) -> None:
    home = tmp_path / "home" / ".deepface" / "weights"
    home.mkdir(parents=True)
    (home / "retinaface.pth").write_bytes(b"abc")
    url = f"http://127.0.0.1:{_closed_port()}/retinaface.pth"  # never contacted
    ok = params_with({"retinaface": {"url": url, "sha256": hashlib.sha256(b"abc").hexdigest()}})
    assert retinaface_path(ok) == (home / "retinaface.pth").resolve()
    bad = params_with({"retinaface": {"url": url, "sha256": "0" * 64}})
    with pytest.raises(ChecksumError, match="0{64}"):
        retinaface_path(bad)
    # a path set by hand must exist (no download behind the user's back)
    hand = params_with({"retinaface": {"url": url}}, detect={"retinaface": {"weights": str(tmp_path / "nope.pth")}})
    with pytest.raises(WeightsUnavailableError, match="nope.pth"):
        retinaface_path(hand)


def test_detector_fetches_retinaface_weights_once_and_loads_them(tmp_path: Path) -> None:
    from cdfv.detect import make_detector
    from cdfv.detect.retinaface_backend import WeightsNotUsableError, _retinaface_modules

    torch.manual_seed(3)
    state = _retinaface_modules()[2].RetinaFace().state_dict()
    srv = tmp_path / "srv"
    srv.mkdir()
    torch.save(state, srv / "retinaface.pth")
    digest = _sha(srv / "retinaface.pth")
    with serve(srv) as (base, log):
        served = {"retinaface": {"url": f"{base}/retinaface.pth", "sha256": digest}}
        p = params_with(served, detect={"retinaface": {"device": "cpu"}})
        det = make_detector(p.detect, retinaface_path(p))
        assert retinaface_path(p) == retinaface_path(p) and len(log) == 1
    for k, v in state.items():
        assert torch.equal(det.net.state_dict()[k].cpu(), v), k
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(WeightsNotUsableError, match="not a usable retinaface.pth"):
        make_detector(p.detect, junk)


def test_weights_params_are_validated_up_front() -> None:
    with pytest.raises(ParamsError, match="quote the hex digits"):
        params_with({"retinaface": {"url": "x", "sha256": 93677231}})
    with pytest.raises(ParamsError, match="8 to 64 lowercase hex"):
        params_with({"retinaface": {"url": "x", "sha256": "7EB9"}})
    with pytest.raises(ParamsError, match=f"weights.codecs.learned.{CODEC} \\(used by codecs\\)"):
        parse_params({"codecs": {CODEC: {"family": "learned"}}, "weights": {"codecs": {"learned": {}}}})
    with pytest.raises(ParamsError, match="weights.codecs.jpeg"):
        parse_params({"codecs": {"JPEG_Q5": {"family": "jpeg"}}, "weights": {"codecs": {}}})
    with pytest.raises(ParamsError, match="not a learned codec"):
        params_with({"codecs": {"learned": {"JPEG_Q5": {"url": "x"}}}})


def test_facenet_resolver_for_the_tfqi_stages(tmp_path: Path) -> None:
    """weights.facenet_vggface2: the torch hub place facenet-pytorch itself caches to, else a download."""
    from cdfv.weights import FACENET_FILE, facenet_path

    assert hub_prefix(f"https://x/{FACENET_FILE}") is None  # no hash in this name: recorded on first use
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / FACENET_FILE).write_bytes(b"facenet " * 500)
    with serve(srv) as (base, log):
        p = params_with({"facenet_vggface2": {"url": f"{base}/{FACENET_FILE}", "sha256": None}})
        got = facenet_path(p)
        assert got.read_bytes() == (srv / FACENET_FILE).read_bytes() and len(log) == 1
        assert record_path(got).read_text().strip() == _sha(srv / FACENET_FILE)
        hub = tmp_path / "torch" / "hub" / "checkpoints" / FACENET_FILE  # where facenet-pytorch keeps it
        hub.parent.mkdir(parents=True)
        hub.write_bytes(b"already here")
        assert facenet_path(p) == hub.resolve() and len(log) == 1
