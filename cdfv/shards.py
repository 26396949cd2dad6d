"""Latent shards: integer ŷ crops in Arrow IPC shards with a Parquet index (random access by key).

Layout of one shard set (a folder)::

    index.parquet        schema cdfv.schemas.LATENT_INDEX, one row per latent; the schema metadata
                         ``cdfv.shards`` holds {shard: {"rows": n, "sha256": hex, "bytes": n}}
    shard-00000.arrow    Arrow IPC file, one record batch: key (string), enc (int8), data (binary)
    ...

Each ``data`` value is one latent (N x 14 x 14) in the narrowest integer type that holds it (int8,
else int16, else int32), C order, stored in the **fastest-decoding form that fits a storage budget**
(``enc``), tried in this order:

* ``raw`` — no compression: a zero-copy view of the memory-mapped shard;
* ``sparse`` — the flat positions (little-endian uint16, so latents of <= 65,536 values) of the
  entries equal to -1, then of those equal to +1, then of the other non-zero entries, followed by
  the values of those others; counts in the shard columns ``n_minus``, ``n_plus``, ``nnz``. So a
  ±1 entry (most of a trained latent's non-zeros) costs 2 bytes and decoding is one ``np.zeros``
  and two fancy-index scatters, the ±1 values being a slice of a constant [-1 ... -1, 1 ... 1]
  array (~4-5 µs for a trained q1 latent with ~1,100 non-zeros, vs ~6 µs for LZ4);
* ``lz4`` — LZ4 block, ~4-20 µs per 37 kB latent;
* ``zstd`` — smallest, ~15-80 µs.

The budget is ``max_ratio`` x the latent's entropy-coded bitstream bytes (``bitstream_bytes``, or
``bpp`` x ``bpp_pixels`` / 8); when nothing fits it, or the bitstream size is unknown, zstd is used.
So trained low-rate latents (mostly zero channels; ~1 kB bitstreams) land in sparse/lz4, dense ones
(high rates, untrained codecs) in raw — storage stays within ``max_ratio`` x the bitstream while
reads stay cheap.

The IPC file itself is uncompressed Arrow, so a lookup is a dict hit, one tuple of offsets and at
most one decompression or scatter (O(1), no neighbouring rows read). Shards are written to a temporary name and renamed;
a reader checks each shard's row count (and sha256 when asked) against the index manifest on first
use and raises :class:`ShardError` naming the shard.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from struct import Struct
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cdfv.errors import CdfvError
from cdfv.io import atomic_path, sha256_file
from cdfv.schemas import LATENT_INDEX

MANIFEST_KEY = b"cdfv.shards"
_SHARD_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("enc", pa.int8()),
        ("n_minus", pa.int32()),
        ("n_plus", pa.int32()),
        ("nnz", pa.int32()),
        ("data", pa.binary()),
    ]
)
_INT_TYPES = (np.int8, np.int16, np.int32)
#: per-row encodings; the value is the ``enc`` column (decoding speed: raw > sparse > lz4 > zstd)
RAW, LZ4, ZSTD, SPARSE = 0, 1, 2, 3
ENCODINGS = {"raw": RAW, "sparse": SPARSE, "lz4": LZ4, "zstd": ZSTD}
_ENC_NAME = {v: k for k, v in ENCODINGS.items()}
_CODECS = {LZ4: pa.Codec("lz4_raw"), ZSTD: pa.Codec("zstd")}  # decompression ignores the level
_POS = np.dtype("<u2")  # sparse positions
_INTP = np.dtype(np.intp)  # fancy indexing with intp is ~2x faster than with uint16
_frombuffer, _zeros = np.frombuffer, np.zeros
_ROW = Struct("<7q")  # _Shard.rowbuf record
_LOC = Struct("<3i")  # LatentShardReader._loc record: shard id, row in the shard, kind id
SPARSE_MAX_VALUES = 1 << 16
#: per dtype: SPARSE_MAX_VALUES x -1 then SPARSE_MAX_VALUES x +1; the ±1 values of a sparse row are a slice
_SIGNS = {np.dtype(t): np.repeat(np.array([-1, 1], t), SPARSE_MAX_VALUES) for t in _INT_TYPES}


class ShardError(CdfvError, RuntimeError):
    """A shard set whose files disagree with its index (or a bad key); the message names the file."""


def narrowest_int(a: np.ndarray) -> np.dtype:
    """int8 when the values fit, else int16, else int32."""
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for t in _INT_TYPES:
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return np.dtype(t)
    raise ShardError(f"latent values {lo}..{hi} do not fit int32")


#: ŷ of a 256^2 input is N x 16 x 16; cResNet39 reads the central 14 x 14 (thesis §6.2).
LATENT_CROP = 14


def centre_crop(y: np.ndarray, size: int = LATENT_CROP) -> np.ndarray:
    """Centre crop the last two axes, e.g. 16x16 -> 14x14 (``[..., 1:15, 1:15]``)."""
    h, w = y.shape[-2:]
    t, left = (h - size) // 2, (w - size) // 2
    if t < 0 or left < 0:
        raise ValueError(f"cannot crop {h}x{w} to {size}x{size}")
    return y[..., t : t + size, left : left + size]


#: (enc, blob, n_minus, n_plus, nnz); the counts are 0 except for ``sparse``
Encoded = tuple[int, bytes, int, int, int]
#: per index row: dtype, shape, value count, the ±1 constants of that dtype (_SIGNS)
_Kind = tuple[np.dtype, tuple[int, ...], int, np.ndarray]


def sparse_encode(flat: np.ndarray) -> Encoded:
    """The ``sparse`` form of a flat integer latent (see the module doc)."""
    if flat.size > SPARSE_MAX_VALUES:
        raise ShardError(f"sparse rows hold at most {SPARSE_MAX_VALUES} values (uint16 positions), got {flat.size}")
    minus, plus = np.flatnonzero(flat == -1), np.flatnonzero(flat == 1)
    other = np.flatnonzero((flat != 0) & (flat != 1) & (flat != -1))
    pos = np.concatenate([minus, plus, other]).astype(_POS)
    return SPARSE, pos.tobytes() + flat[other].tobytes(), len(minus), len(plus), len(pos)


def sparse_size(flat: np.ndarray) -> int:
    """Bytes of the ``sparse`` form of ``flat`` without building it."""
    nz = int(np.count_nonzero(flat))
    return 2 * nz + flat.itemsize * (nz - int(np.count_nonzero((flat == 1) | (flat == -1))))


def choose_encoding(latent: np.ndarray, budget: float | None, lz4: pa.Codec, zstd: pa.Codec) -> Encoded:
    """The fastest-decoding (raw, sparse, lz4, zstd) form of a contiguous integer ``latent`` with at
    most ``budget`` bytes. ``budget`` None (bitstream size unknown) or too small for all: zstd."""
    raw = latent.tobytes()
    if budget is not None:
        if len(raw) <= budget:
            return RAW, raw, 0, 0, 0
        flat = latent.reshape(-1)
        if flat.size <= SPARSE_MAX_VALUES and sparse_size(flat) <= budget:
            return sparse_encode(flat)
        fast = lz4.compress(raw, asbytes=True)
        if len(fast) <= budget:
            return LZ4, fast, 0, 0, 0
    return ZSTD, zstd.compress(raw, asbytes=True), 0, 0, 0


class LatentShardWriter:
    """Append latents, flush a shard every ``shard_rows``, write the index on :meth:`close`.

    ``max_ratio``: per-latent storage budget in bitstream bytes (see the module doc); ``encoding``
    forces one form for every row instead (``"raw"``, ``"sparse"``, ``"lz4"``, ``"zstd"``). ``bpp_pixels``: the
    pixel count the ``bpp`` given to :meth:`add` is measured over (256² codec input).
    Use as a context manager; on an exception nothing is published (no index is written).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        codec: str,
        quality: int,
        shard_rows: int = 4096,
        zstd_level: int = 3,
        *,
        max_ratio: float = 3.5,
        encoding: str = "auto",
        bpp_pixels: int = 256 * 256,
    ) -> None:
        if encoding != "auto" and encoding not in ENCODINGS:
            raise ValueError(f"encoding must be auto, raw, sparse, lz4 or zstd, got {encoding!r}")
        self.out_dir = Path(out_dir)
        self.codec, self.quality = codec, quality
        self.shard_rows, self.zstd = shard_rows, pa.Codec("zstd", compression_level=zstd_level)
        self.lz4 = pa.Codec("lz4_raw")
        self.max_ratio, self.encoding, self.bpp_pixels = max_ratio, encoding, bpp_pixels
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self._pending_keys: list[str] = []
        self._pending: list[Encoded] = []
        self._keys: set[str] = set()
        self._manifest: dict[str, dict[str, Any]] = {}
        self.stored_bytes = 0
        self.encoding_counts = {name: 0 for name in ENCODINGS}

    def __len__(self) -> int:
        return len(self._rows)

    def __enter__(self) -> LatentShardWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()

    def _encode(self, latent: np.ndarray, bitstream_bytes: float | None) -> Encoded:
        if self.encoding == "raw":
            return RAW, latent.tobytes(), 0, 0, 0
        if self.encoding == "sparse":
            return sparse_encode(latent.reshape(-1))
        if self.encoding == "lz4":
            return LZ4, self.lz4.compress(latent.tobytes(), asbytes=True), 0, 0, 0
        if self.encoding == "zstd":
            return ZSTD, self.zstd.compress(latent.tobytes(), asbytes=True), 0, 0, 0
        budget = None if bitstream_bytes is None else self.max_ratio * bitstream_bytes
        return choose_encoding(latent, budget, self.lz4, self.zstd)

    def add(
        self,
        key: str,
        latent: np.ndarray,
        *,
        image_id: str,
        identity: str = "",
        bpp: float = float("nan"),
        label: int = -1,
        split: str = "",
        variant: int = 0,
        bitstream_bytes: int | None = None,
    ) -> None:
        """Store one integer latent (any shape, typically N x 14 x 14) under a unique ``key``."""
        if key in self._keys:
            raise ShardError(f"duplicate latent key {key!r}")
        if not np.issubdtype(latent.dtype, np.integer):
            raise ShardError(f"{key}: latents must be integers (ŷ), got {latent.dtype}")
        dt = narrowest_int(latent)
        if bitstream_bytes is None and math.isfinite(bpp) and bpp > 0:
            bitstream_bytes = bpp * self.bpp_pixels / 8
        encoded = self._encode(np.ascontiguousarray(latent, dtype=dt), bitstream_bytes)
        self._keys.add(key)
        shard = self._shard_name(len(self._manifest))
        self._rows.append(
            dict(
                key=key,
                image_id=image_id,
                identity=identity,
                codec=self.codec,
                quality=self.quality,
                shard=shard,
                row=len(self._pending),
                shape=list(latent.shape),
                dtype=dt.name,
                bpp=bpp,
                label=label,
                split=split,
                variant=variant,
            )
        )
        self._pending_keys.append(key)
        self._pending.append(encoded)
        self.encoding_counts[_ENC_NAME[encoded[0]]] += 1
        if len(self._pending) >= self.shard_rows:
            self._flush()

    @staticmethod
    def _shard_name(i: int) -> str:
        return f"shard-{i:05d}.arrow"

    def _flush(self) -> None:
        if not self._pending_keys:
            return
        name = self._shard_name(len(self._manifest))
        enc, data, n_minus, n_plus, nnz = zip(*self._pending)
        table = pa.table(
            {
                "key": self._pending_keys,
                "enc": pa.array(enc, pa.int8()),
                "n_minus": pa.array(n_minus, pa.int32()),
                "n_plus": pa.array(n_plus, pa.int32()),
                "nnz": pa.array(nnz, pa.int32()),
                "data": pa.array(data, pa.binary()),
            },
            schema=_SHARD_SCHEMA,
        )
        target = self.out_dir / name
        with atomic_path(target) as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, _SHARD_SCHEMA) as w:
                w.write_table(table, max_chunksize=len(table))
        size = target.stat().st_size
        self._manifest[name] = {"rows": len(self._pending_keys), "sha256": sha256_file(target), "bytes": size}
        self.stored_bytes += size
        self._pending_keys, self._pending = [], []

    def close(self) -> Path:
        """Flush the last shard and write ``index.parquet`` atomically; return its path."""
        self._flush()
        schema = LATENT_INDEX.with_metadata({MANIFEST_KEY: json.dumps(self._manifest, sort_keys=True).encode()})
        cols = {f.name: [r[f.name] for r in self._rows] for f in LATENT_INDEX}
        table = pa.Table.from_pydict(cols, schema=schema)
        path = self.out_dir / "index.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return path


class _Shard:
    """A memory-mapped shard: per row ``(enc, start, end, s0, s1, k2, nnz)`` into ``mv``, the zero-copy
    ``data`` values of the mapped file, with ``_SIGNS[s0:s1]`` the row's ±1 values and ``k2`` their
    count. The row records are packed in ``rowbuf`` (7 x int64, read with one ``struct.unpack_from``:
    one cache line per random read instead of a tuple and its seven int objects)."""

    def __init__(self, path: Path, expect: dict[str, Any] | None, n_index_rows: int, verify: str) -> None:
        if not path.is_file():
            raise ShardError(f"{path}: shard listed in the index is missing; rebuild the shard set")
        if verify == "sha256" and expect is not None and sha256_file(path) != expect["sha256"]:
            raise ShardError(f"{path}: sha256 differs from the index manifest (corrupt or replaced shard)")
        try:
            self.table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        except pa.ArrowInvalid as err:
            raise ShardError(f"{path}: not a readable Arrow IPC shard ({err})") from None
        n = self.table.num_rows
        if (expect is not None and n != expect["rows"]) or n != n_index_rows:
            raise ShardError(
                f"{path}: {n} rows, but the index lists {n_index_rows} (manifest: "
                f"{expect['rows'] if expect else '?'}); rebuild the shard set"
            )
        self.path = path
        data = self.table.column("data").combine_chunks()
        self.keys = self.table.column("key")
        names = self.table.schema.names

        def col(name: str, default: int) -> np.ndarray:  # older shards lack enc (all zstd) / the counts
            return self.table.column(name).to_numpy().astype(np.int64) if name in names else np.full(n, default)

        self.enc = col("enc", ZSTD)
        if n and (self.enc.min() < RAW or self.enc.max() > SPARSE):
            raise ShardError(f"{path}: unknown encoding {int(self.enc.max())} in the enc column; rebuild the shard set")
        _, offsets, values = data.buffers()
        off = np.frombuffer(offsets, dtype=np.int32, count=n + 1, offset=data.offset * 4).astype(np.int64)
        self.size = np.diff(off)
        self.counts = np.stack([col("n_minus", 0), col("n_plus", 0), col("nnz", 0)])
        n_minus, n_plus, nnz = self.counts
        m = SPARSE_MAX_VALUES
        self.rowbuf = (
            np.stack([self.enc, off[:-1], off[1:], m - n_minus, m + n_plus, n_minus + n_plus, nnz], axis=1)
            .astype("<i8")
            .tobytes()
        )
        self.mv = memoryview(values if values is not None else pa.py_buffer(b""))

    def check_sizes(self, rows: np.ndarray, nbytes: np.ndarray, itemsize: np.ndarray) -> None:
        """Every raw / sparse row holds exactly the bytes its indexed shape + dtype (+ counts) need."""
        enc, size = self.enc[rows], self.size[rows]
        n_minus, n_plus, nnz = self.counts[:, rows]
        want = np.where(enc == SPARSE, 2 * nnz + itemsize * (nnz - n_plus - n_minus), nbytes)
        bad = ((enc == RAW) | (enc == SPARSE)) & (size != want)
        bad |= (enc == SPARSE) & (
            (n_plus < 0)
            | (n_minus < 0)
            | (n_plus > SPARSE_MAX_VALUES)
            | (n_minus > SPARSE_MAX_VALUES)
            | (n_plus + n_minus > nnz)
        )
        if bad.any():
            r = int(rows[np.argmax(bad)])
            raise ShardError(
                f"{self.path}: row {r} ({_ENC_NAME[int(self.enc[r])]}) holds {int(self.size[r])} bytes, "
                f"not what the index shape/dtype needs; rebuild the shard set"
            )


class LatentShardReader:
    """Random access to a shard set by key: ``reader.get(key)``, ``reader.read_batch(keys)``.

    ``verify``: ``"rows"`` (default) checks each shard's row count and every row's byte size against
    the index on first use, ``"sha256"`` also hashes it. Shards are opened lazily, so a reader
    pickles cheaply into DataLoader workers (each worker maps the shards itself). ``get`` returns a
    new writable array for sparse / lz4 / zstd rows and a read-only zero-copy view of the mapped
    shard for raw rows (copy before writing into it); ``read_batch`` always returns a new array.
    """

    def __init__(self, index_path: str | os.PathLike[str], verify: Literal["rows", "sha256"] = "rows") -> None:
        self.index_path = Path(index_path)
        if not self.index_path.is_file():
            raise FileNotFoundError(
                f"{self.index_path}: latent index missing; run the stage that writes it "
                f"(encode_lfw@<codec> or latents_vggface2@<codec>)"
            )
        self.index: pa.Table = pq.read_table(self.index_path)
        meta = self.index.schema.metadata or {}
        self.manifest: dict[str, dict[str, Any]] = json.loads(meta[MANIFEST_KEY]) if MANIFEST_KEY in meta else {}
        self.verify = verify
        self.root = self.index_path.parent
        keys = self.index.column("key").to_pylist()
        self._keys = np.asarray(keys, dtype=object)
        self._pos = {k: i for i, k in enumerate(keys)}
        if len(self._pos) != len(keys):
            raise ShardError(f"{self.index_path}: duplicate keys in the index")
        shard_names = self.index.column("shard").to_pylist()
        self._shard_names = sorted(set(shard_names))
        sid = {s: i for i, s in enumerate(self._shard_names)}
        self._shard_of = np.array([sid[s] for s in shard_names], dtype=np.int64)
        self._counts = np.bincount(self._shard_of, minlength=len(self._shard_names)) if keys else np.zeros(0, int)
        self._row = self.index.column("row").to_numpy().astype(np.int64)
        # (dtype, shape, value count, ±1 constants) of the few distinct combinations, and per row its id
        kind_id: dict[tuple[str, tuple[int, ...]], int] = {}
        self._kinds: list[_Kind] = []
        ids = []
        for d, s in zip(self.index.column("dtype").to_pylist(), self.index.column("shape").to_pylist()):
            k = (d, tuple(s))
            if k not in kind_id:
                dt = np.dtype(d)
                if dt not in _SIGNS:
                    raise ShardError(f"{self.index_path}: latent dtype {d!r} is not int8/int16/int32")
                kind_id[k] = len(self._kinds)
                self._kinds.append((dt, k[1], int(np.prod(k[1], dtype=np.int64)), _SIGNS[dt]))
            ids.append(kind_id[k])
        self._kind_id = np.array(ids, dtype=np.int64)
        # per index row (shard id, row, kind id) packed: one struct read per lookup (see _Shard)
        self._n = len(keys)
        self._loc = np.stack([self._shard_of, self._row, self._kind_id], axis=1).astype("<i4").tobytes()
        for name in set(self.manifest) ^ set(self._shard_names):
            raise ShardError(f"{self.root / name}: shard in the manifest xor the index rows; rebuild the shard set")
        self._open: dict[int, _Shard] = {}

    def __len__(self) -> int:
        return self.index.num_rows

    def __contains__(self, key: str) -> bool:
        return key in self._pos

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": {}}

    @property
    def keys(self) -> list[str]:
        return self.index.column("key").to_pylist()

    def _shard(self, sid: int) -> _Shard:
        sh = self._open.get(sid)
        if sh is None:
            name = self._shard_names[sid]
            sh = _Shard(self.root / name, self.manifest.get(name), int(self._counts[sid]), self.verify)
            mine = np.flatnonzero(self._shard_of == sid)
            if mine.size and (self._row[mine].min() < 0 or self._row[mine].max() >= len(sh.enc)):
                raise ShardError(f"{sh.path}: the index points at rows outside the shard; rebuild the shard set")
            itemsize = np.array([k[0].itemsize for k in self._kinds], dtype=np.int64)[self._kind_id[mine]]
            count = np.array([k[2] for k in self._kinds], dtype=np.int64)[self._kind_id[mine]]
            sh.check_sizes(self._row[mine], count * itemsize, itemsize)
            stored = np.asarray(sh.keys.to_pylist(), dtype=object)[self._row[mine]]
            wrong = np.flatnonzero(stored != self._keys[mine])
            if wrong.size:
                i = int(mine[wrong[0]])
                raise ShardError(
                    f"{sh.path}: row {int(self._row[i])} holds key {stored[wrong[0]]!r}, the index says "
                    f"{self._keys[i]!r} ({wrong.size} rows disagree); rebuild the shard set"
                )
            self._open[sid] = sh
        return sh

    def verify_checksums(self) -> int:
        """Hash every shard once against the manifest's sha256 (eval / training start-up); returns the count.

        Raises :class:`ShardError` naming the first corrupt or replaced shard. Later opens in this
        reader (and in DataLoader workers it is pickled into) then need only the cheap row checks.
        """
        for name in self._shard_names:
            path, expect = self.root / name, self.manifest.get(name)
            if not path.is_file():
                raise ShardError(f"{path}: shard listed in the index is missing; rebuild the shard set")
            if expect is None:
                raise ShardError(f"{path}: no sha256 in the index manifest; rebuild the shard set")
            if sha256_file(path) != expect["sha256"]:
                raise ShardError(f"{path}: sha256 differs from the index manifest (corrupt or replaced shard)")
        return len(self._shard_names)

    def _bad_row(self, sh: _Shard, r: int, dt: np.dtype, shape: tuple[int, ...], err: Exception) -> ShardError:
        return ShardError(f"{sh.path}: row {r} does not decode to {shape} {dt.name} ({err}); rebuild the shard set")

    def get_row(self, i: int) -> np.ndarray:
        """The latent of index row ``i`` (see the class doc for which results are views)."""
        if not 0 <= i < self._n:
            raise IndexError(f"row {i} out of range for {self.index_path} ({self._n} rows)")
        sid, r, kid = _LOC.unpack_from(self._loc, 12 * i)
        sh = self._open.get(sid) or self._shard(sid)
        enc, a, b, s0, s1, k2, k = _ROW.unpack_from(sh.rowbuf, 56 * r)
        dt, shape, count, signs = self._kinds[kid]
        if enc == SPARSE:
            mv = sh.mv
            p = _frombuffer(mv, _POS, k, a).astype(_INTP)
            out = _zeros(count, dt)
            try:
                out[p[:k2]] = signs[s0:s1]
                if k != k2:
                    out[p[k2:]] = _frombuffer(mv, dt, k - k2, a + 2 * k)
            except IndexError as err:
                raise self._bad_row(sh, r, dt, shape, err) from None
            return out.reshape(shape)
        if enc == RAW:
            return _frombuffer(sh.mv, dt, count, a).reshape(shape)
        try:
            raw = _CODECS[enc].decompress(sh.mv[a:b], decompressed_size=count * dt.itemsize)
        except (OSError, pa.ArrowException) as err:
            raise self._bad_row(sh, r, dt, shape, err) from None
        return _frombuffer(raw, dt, count).reshape(shape)

    def position(self, key: str) -> int:
        try:
            return self._pos[key]
        except KeyError:
            raise KeyError(f"latent key {key!r} not in {self.index_path}") from None

    def get(self, key: str) -> np.ndarray:
        """One latent (e.g. N x 14 x 14) by key (the sparse path of :meth:`get_row` inlined: hot path)."""
        i = self._pos.get(key)
        if i is None:
            raise KeyError(f"latent key {key!r} not in {self.index_path}")
        sid, r, kid = _LOC.unpack_from(self._loc, 12 * i)
        try:
            sh = self._open[sid]
        except KeyError:
            sh = self._shard(sid)
        enc, a, _, s0, s1, k2, k = _ROW.unpack_from(sh.rowbuf, 56 * r)
        if enc != SPARSE:
            return self.get_row(i)
        dt, shape, count, signs = self._kinds[kid]
        mv = sh.mv
        p = _frombuffer(mv, _POS, k, a).astype(_INTP)
        out = _zeros(count, dt)
        try:
            out[p[:k2]] = signs[s0:s1]
            if k != k2:
                out[p[k2:]] = _frombuffer(mv, dt, k - k2, a + 2 * k)
        except IndexError as err:
            raise self._bad_row(sh, r, dt, shape, err) from None
        return out.reshape(shape)

    def read_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Stack latents of index rows into a new writable (B, ...) array in the widest stored dtype.

        One zeroed output; rows are visited in index order (= shard order for sets written by
        :class:`LatentShardWriter`, so each shard's mapped pages are touched together) and decoded
        straight into their slot: sparse rows are scattered into it, raw and
        decompressed rows copied once.
        """
        rows = [int(i) for i in rows]
        if not rows:
            return np.zeros((0,), dtype=np.int8)
        kind_ids = self._kind_id[rows]
        kinds = [self._kinds[k] for k in np.unique(kind_ids).tolist()]
        shapes = {k[1] for k in kinds}
        if len(shapes) > 1:
            raise ShardError(f"{self.index_path}: read_batch over latents of different shapes {sorted(shapes)}")
        shape = shapes.pop()
        dt = max((k[0] for k in kinds), key=lambda d: d.itemsize)
        out = np.zeros((len(rows), kinds[0][2]), dtype=dt)
        opened, frombuffer, pos, intp, signs = self._open, _frombuffer, _POS, _INTP, _SIGNS[dt]
        loc, all_kinds = self._loc, self._kinds
        for j in sorted(range(len(rows)), key=rows.__getitem__):
            i = rows[j]
            sid, r, kid = _LOC.unpack_from(loc, 12 * i)
            sh = opened.get(sid) or self._shard(sid)
            enc, a, b, s0, s1, k2, k = _ROW.unpack_from(sh.rowbuf, 56 * r)
            rdt, _, count, _ = all_kinds[kid]
            o = out[j]
            if enc == SPARSE:
                p = frombuffer(sh.mv, pos, k, a).astype(intp)
                try:
                    o[p[:k2]] = signs[s0:s1]
                    if k != k2:
                        o[p[k2:]] = frombuffer(sh.mv, rdt, k - k2, a + 2 * k)
                except IndexError as err:
                    raise self._bad_row(sh, r, rdt, shape, err) from None
            elif enc == RAW:
                o[:] = frombuffer(sh.mv, rdt, count, a)
            else:
                o[:] = self.get_row(i).reshape(-1)
        return out.reshape(len(rows), *shape)

    def read_batch(self, keys: Iterable[str]) -> np.ndarray:
        """Latents of ``keys`` stacked into (B, N, 14, 14)."""
        pos = self._pos
        try:
            rows = [pos[k] for k in keys]
        except KeyError as err:
            raise KeyError(f"latent key {err.args[0]!r} not in {self.index_path}") from None
        return self.read_rows(rows)

    def encodings(self) -> dict[str, int]:
        """How many rows are stored raw / sparse / lz4 / zstd (opens every shard)."""
        counts = np.zeros(len(ENCODINGS), dtype=np.int64)
        for sid in range(len(self._shard_names)):
            counts += np.bincount(self._shard(sid).enc, minlength=len(ENCODINGS))
        return {name: int(counts[v]) for name, v in ENCODINGS.items()}

    def verify_all(self) -> None:
        """Open (and check) every shard, that each shard's keys match the index rows and every row decodes."""
        keys = self.index.column("key").to_pylist()
        for sid, name in enumerate(self._shard_names):
            stored = self._shard(sid).keys.to_pylist()
            for i in np.flatnonzero(self._shard_of == sid).tolist():
                r = int(self._row[i])
                if stored[r] != keys[i]:
                    raise ShardError(f"{self.root / name}: row {r} holds {stored[r]!r}, index says {keys[i]!r}")
                self.get_row(i)


class LatentDataset:
    """A torch ``Dataset`` of ``(float32 tensor N x 14 x 14, label int)`` over a shard set.

    ``split`` keeps only rows of that split (VGGFace2 ``train``/``val``); ``variants`` keeps only those
    variant numbers (e.g. ``[0]`` = the centre crops).
    """

    def __init__(
        self, index_path: str | os.PathLike[str], split: str | None = None, variants: Sequence[int] | None = None
    ) -> None:
        self.reader = LatentShardReader(index_path)
        idx = self.reader.index
        mask = np.ones(idx.num_rows, dtype=bool)
        if split is not None:
            mask &= np.asarray(idx.column("split").to_pylist()) == split
        if variants is not None:
            mask &= np.isin(idx.column("variant").to_numpy(), list(variants))
        self.rows = np.flatnonzero(mask)
        self.labels = idx.column("label").to_numpy()[self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        latent = self.reader.get_row(int(self.rows[i]))
        return torch.from_numpy(latent.astype(np.float32)), int(self.labels[i])
