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
    with pytest.raises(ShardError, match="shard-00000.arrow: sha256 differs"):
        LatentShardReader(tmp_path / "index.parquet").verify_checksums()


def test_checksums_of_intact_shards_pass_once(tmp_path: Path) -> None:
    _write(tmp_path, n=20, shard_rows=8)
    assert LatentShardReader(tmp_path / "index.parquet").verify_checksums() == 3


def test_shard_whose_keys_disagree_with_the_index_is_rejected_on_open(tmp_path: Path) -> None:
    """Two shards swapped (same sizes, same row counts): the key column must catch it on first use."""
    lat = _write(tmp_path, n=32, shard_rows=16)
    a, b = tmp_path / "shard-00000.arrow", tmp_path / "shard-00001.arrow"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    r = LatentShardReader(tmp_path / "index.parquet")  # row checks only: sizes and counts still agree
    with pytest.raises(ShardError, match=r"shard-00000.arrow: row 0 holds key 'id_016', the index says 'id_000'"):
        r.get("id_000")
    assert lat  # the writer produced both shards


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


def _sparse(rng: np.random.Generator, n_active: int = 20) -> np.ndarray:
    """A trained-like ŷ crop: a few active channels of small Laplacian ints, zeros elsewhere."""
    y = np.zeros((192, 14, 14), np.int64)
    y[rng.choice(192, n_active, replace=False)] = np.round(rng.laplace(0, 0.4, (n_active, 14, 14)))
    return y


def _const(rng: np.random.Generator) -> np.ndarray:
    """Whole channels of one value: sparse costs 3 B per entry, LZ4 next to nothing."""
    y = np.zeros((192, 14, 14), np.int64)
    y[rng.choice(192, 10, replace=False)] = 5
    return y


def test_encoding_follows_the_bitstream_budget(tmp_path: Path) -> None:
    """Per row the fastest form within max_ratio x bitstream bytes: raw, sparse, lz4, else zstd."""
    rng = np.random.default_rng(3)
    dense, sparse, const = rng.integers(-3, 4, (192, 14, 14)), _sparse(rng), _const(rng)
    with LatentShardWriter(tmp_path, "Balle2018_mse_Q1", 1, max_ratio=3.5) as w:
        w.add("dense", dense, image_id="a", bitstream_bytes=30_000)  # 37.6 kB raw <= 105 kB
        w.add("sparse", sparse, image_id="b", bitstream_bytes=900)  # raw 37.6 kB > 3.15 kB >= sparse
        w.add("tight", sparse, image_id="c", bitstream_bytes=200)  # nothing fits: zstd (smallest)
        w.add("bpp", dense, image_id="d", bpp=4.0)  # 4 bpp x 256^2 / 8 = 32.8 kB bitstream -> raw
        w.add("unknown", dense, image_id="e")  # no rate known: zstd
        w.add("const", const, image_id="f", bitstream_bytes=900)  # sparse 5.9 kB > 3.15 kB >= lz4
    assert w.encoding_counts == {"raw": 2, "sparse": 1, "lz4": 1, "zstd": 2}
    r = LatentShardReader(tmp_path / "index.parquet")
    assert r.encodings() == w.encoding_counts
    want = {"dense": dense, "sparse": sparse, "tight": sparse, "bpp": dense, "unknown": dense, "const": const}
    for k, v in want.items():
        assert np.array_equal(r.get(k), v)
    shard = tmp_path / "shard-00000.arrow"
    import pyarrow as pa

    t = pa.ipc.open_file(str(shard)).read_all()
    assert t.column("enc").to_pylist() == [0, 3, 2, 0, 2, 1]
    sizes = [len(b) for b in t.column("data").to_pylist()]
    assert sizes[0] == 192 * 196 and sizes[1] <= 3.5 * 900 and sizes[2] < sizes[1] and sizes[5] <= 3.5 * 900
    batch = r.read_batch(["tight", "dense", "sparse", "const"])
    assert batch.flags.writeable and np.array_equal(batch, np.stack([sparse, dense, sparse, const]))
    assert r.get("sparse").flags.writeable and r.get("const").flags.writeable  # decoded rows are new arrays
    r.verify_all()


def test_sparse_row_bytes_follow_the_documented_layout(tmp_path: Path) -> None:
    """positions (<u2) of the -1 entries, then the +1 entries, then the others, then the others' values."""
    y = np.zeros((2, 14, 14), np.int64)
    y[0, 0, 3], y[0, 5, 5], y[1, 2, 2], y[1, 13, 13], y[0, 0, 0] = -1, 1, 1, -4, 300  # int16 values
    with LatentShardWriter(tmp_path, "Balle2018_mse_Q1", 1, encoding="sparse") as w:
        w.add("a", y, image_id="a")
    import pyarrow as pa

    t = pa.ipc.open_file(str(tmp_path / "shard-00000.arrow")).read_all()
    assert t.column("enc").to_pylist() == [3]
    assert (t.column("n_minus")[0].as_py(), t.column("n_plus")[0].as_py(), t.column("nnz")[0].as_py()) == (1, 2, 5)
    blob = t.column("data")[0].as_py()
    flat = y.ravel()
    pos = [3, 5 * 14 + 5, 196 + 2 * 14 + 2, 0, 196 + 13 * 14 + 13]
    assert blob == np.array(pos, "<u2").tobytes() + flat[[0, 391]].astype(np.int16).tobytes()
    r = LatentShardReader(tmp_path / "index.parquet")
    assert r.get("a").dtype == np.int16 and np.array_equal(r.get("a"), y) and np.array_equal(r.read_batch(["a"])[0], y)


def test_sparse_mixed_dtypes_and_size_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    small, wide = _sparse(rng), _sparse(rng)
    wide[0, 0, 0] = -1000  # int16 row; the batch is int16, its ±1 values cast from the int8 row
    big = np.zeros((400, 14, 14), np.int64)  # 78,400 values > 65,536: no uint16 positions
    big[3, 4, 5] = 1
    with LatentShardWriter(tmp_path, "Balle2018_mse_Q1", 1) as w:
        w.add("small", small, image_id="a", bitstream_bytes=900)
        w.add("wide", wide, image_id="b", bitstream_bytes=1500)
        w.add("big", big, image_id="c", bitstream_bytes=1000)
    assert w.encoding_counts == {"raw": 0, "sparse": 2, "lz4": 1, "zstd": 0}
    r = LatentShardReader(tmp_path / "index.parquet")
    batch = r.read_batch(["wide", "small"])
    assert batch.dtype == np.int16 and np.array_equal(batch, np.stack([wide, small]))
    assert np.array_equal(r.get("big"), big)
    with pytest.raises(ShardError, match="65536 values"):
        with LatentShardWriter(tmp_path / "forced", "Balle2018_mse_Q1", 1, encoding="sparse") as w:
            w.add("big", big, image_id="c")
    with pytest.raises(IndexError, match="out of range"):
        r.get_row(3)


def _rewrite(shard: Path, **cols: list) -> None:
    import pyarrow as pa

    t = pa.ipc.open_file(str(shard)).read_all()
    for name, values in cols.items():
        t = t.set_column(t.schema.get_field_index(name), name, pa.array(values, t.schema.field(name).type))
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_file(sink, t.schema) as wr:
        wr.write_table(t)


def test_corrupt_sparse_rows_are_clear_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with LatentShardWriter(tmp_path, "Balle2018_mse_Q1", 1, encoding="sparse") as w:
        w.add("a", _sparse(rng), image_id="a")
    shard = tmp_path / "shard-00000.arrow"
    import pyarrow as pa

    t = pa.ipc.open_file(str(shard)).read_all()
    nnz, blob = t.column("nnz")[0].as_py(), t.column("data")[0].as_py()
    _rewrite(shard, nnz=[nnz - 1])  # counts disagree with the byte size: rejected when the shard opens
    with pytest.raises(ShardError, match=r"shard-00000\.arrow: row 0 \(sparse\) holds"):
        LatentShardReader(tmp_path / "index.parquet").get("a")
    bad = bytearray(blob)
    bad[0:2] = np.array([60_000], "<u2").tobytes()  # a position past the 37,632 values
    _rewrite(shard, nnz=[nnz], data=[bytes(bad)])
    with pytest.raises(ShardError, match=r"shard-00000\.arrow: row 0 does not decode"):
        LatentShardReader(tmp_path / "index.parquet").get("a")
    with pytest.raises(ShardError, match="does not decode"):
        LatentShardReader(tmp_path / "index.parquet").read_batch(["a"])


@pytest.mark.parametrize("encoding", ["raw", "sparse", "lz4", "zstd"])
def test_forced_encoding_round_trips(tmp_path: Path, encoding: str) -> None:
    rng = np.random.default_rng(4)
    lat = {f"k{i}": (_sparse(rng) if i % 2 else rng.integers(-300, 300, (192, 14, 14))) for i in range(6)}
    with LatentShardWriter(tmp_path, "Balle2018_mse_Q1", 1, shard_rows=4, encoding=encoding) as w:
        for k, v in lat.items():
            w.add(k, v, image_id=k, bitstream_bytes=10)
    r = LatentShardReader(tmp_path / "index.parquet")
    assert r.encodings()[encoding] == 6
    got = r.read_batch(list(lat)[::-1])
    assert got.dtype == np.int16 and np.array_equal(got, np.stack(list(lat.values())[::-1]))


def test_corrupt_compressed_row_is_a_clear_error(tmp_path: Path) -> None:
    import pyarrow as pa

    rng = np.random.default_rng(5)
    with LatentShardWriter(tmp_path, "Balle2018_mse_Q1", 1, encoding="lz4") as w:
        w.add("a", _sparse(rng), image_id="a")
    shard = tmp_path / "shard-00000.arrow"
    t = pa.ipc.open_file(str(shard)).read_all()
    blob = t.column("data").to_pylist()[0]
    bad = pa.table({"key": ["a"], "enc": pa.array([1], pa.int8()), "data": [blob[: len(blob) // 2]]})
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_file(sink, bad.schema) as wr:
        wr.write_table(bad)
    with pytest.raises(ShardError, match=r"shard-00000\.arrow: row 0 does not decode"):
        LatentShardReader(tmp_path / "index.parquet").get("a")
