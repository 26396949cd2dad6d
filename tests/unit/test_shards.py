"""Latent shards: index <-> shard consistency, random access, corruption detection."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cdfv.schemas import LATENT_INDEX
from cdfv.shards import LatentDataset, LatentShardReader, LatentShardWriter, ShardError, centre_crop, narrowest_int


def _write(root: Path, n: int = 50, shard_rows: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    lat = {f"id_{i:03d}": rng.integers(-20, 21, (192, 14, 14)) for i in range(n)}
    lat["id_wide"] = np.full((192, 14, 14), -1000)
    with LatentShardWriter(root, "Balle2018_mse_Q1", 1, shard_rows=shard_rows) as w:
        for i, (k, v) in enumerate(lat.items()):
            w.add(k, v, image_id=k, identity=f"P{i % 5}", bpp=0.1, label=i % 5, split="train" if i % 2 else "val")
    return lat


def test_round_trip_index_and_dtypes(tmp_path: Path) -> None:
    lat = _write(tmp_path)
    r = LatentShardReader(tmp_path / "index.parquet", verify="sha256")
    assert len(r) == 51 and r.index.schema.names == LATENT_INDEX.names
    assert sorted(set(r.index.column("shard").to_pylist())) == [f"shard-0000{i}.arrow" for i in range(4)]
    for k, v in lat.items():
        assert np.array_equal(r.get(k), v)
    assert r.index.column("dtype").to_pylist()[:2] == ["int8", "int8"] and r.get("id_wide").dtype == np.int16
    batch = r.read_batch(["id_003", "id_wide", "id_040"])
    assert batch.shape == (3, 192, 14, 14) and batch.dtype == np.int16
    assert np.array_equal(batch[2], lat["id_040"])
    r.verify_all()
    manifest = r.manifest  # index schema metadata: rows + sha256 per shard
    assert [m["rows"] for m in manifest.values()] == [16, 16, 16, 3]
    assert pq.read_schema(tmp_path / "index.parquet").metadata[b"cdfv.shards"]
    with pytest.raises(KeyError, match="nope"):
        r.get("nope")


def test_dataset_yields_float_tensors_and_labels(tmp_path: Path) -> None:
    lat = _write(tmp_path, n=10)
    ds = LatentDataset(tmp_path / "index.parquet", split="train")
    assert len(ds) == 5
    x, y = ds[0]
    assert tuple(x.shape) == (192, 14, 14) and str(x.dtype) == "torch.float32" and y == 1
    assert np.array_equal(x.numpy(), lat["id_001"].astype(np.float32))
    ds2 = pickle.loads(pickle.dumps(ds))  # DataLoader workers
    assert np.array_equal(ds2[4][0].numpy(), ds[4][0].numpy())


def test_shard_with_wrong_row_count_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path / "a", n=20, shard_rows=8)
    _write(tmp_path / "b", n=20, shard_rows=5)
    (tmp_path / "a" / "shard-00001.arrow").write_bytes((tmp_path / "b" / "shard-00001.arrow").read_bytes())
    r = LatentShardReader(tmp_path / "a" / "index.parquet")
    r.get("id_000")  # other shards still fine
    with pytest.raises(ShardError, match=r"shard-00001\.arrow: 5 rows, but the index lists 8"):
        r.get("id_009")


def test_checksum_mismatch_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path, n=10)
    shard = tmp_path / "shard-00000.arrow"
    data = bytearray(shard.read_bytes())
    data[200] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="sha256 differs"):
        LatentShardReader(tmp_path / "index.parquet", verify="sha256").get("id_000")


def test_missing_shard_and_missing_index(tmp_path: Path) -> None:
    _write(tmp_path, n=20, shard_rows=8)
    (tmp_path / "shard-00002.arrow").unlink()
    with pytest.raises(ShardError, match="missing"):
        LatentShardReader(tmp_path / "index.parquet").get("id_019")
    with pytest.raises(FileNotFoundError, match="latents_vggface2"):
        LatentShardReader(tmp_path / "nowhere" / "index.parquet")


def test_failed_writer_publishes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match="duplicate"):
        with LatentShardWriter(tmp_path, "Balle2018_mse_Q1", 1, shard_rows=2) as w:
            for k in ("a", "b", "c", "a"):
                w.add(k, np.zeros((2, 14, 14), np.int32), image_id=k)
    assert not (tmp_path / "index.parquet").exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_helpers() -> None:
    assert narrowest_int(np.array([-128, 127])) == np.int8
    assert narrowest_int(np.array([128])) == np.int16
    assert narrowest_int(np.array([1 << 20])) == np.int32
    y = np.arange(2 * 16 * 16).reshape(2, 16, 16)
    assert np.array_equal(centre_crop(y), y[:, 1:15, 1:15])
