"""Latent shards: integer ŷ crops in Arrow IPC shards with a Parquet index (random access by key).

Layout of one shard set (a folder)::

    index.parquet        schema cdfv.schemas.LATENT_INDEX, one row per latent; the schema metadata
                         ``cdfv.shards`` holds {shard: {"rows": n, "sha256": hex, "bytes": n}}
    shard-00000.arrow    Arrow IPC file, one record batch: key (string), enc (int8), data (binary)
    ...

Each ``data`` value is one latent (N x 14 x 14) in the narrowest integer type that holds it (int8,
else int16, else int32), C order, stored in the **fastest-decoding form that fits a storage budget**
(``enc``): ``raw`` (no compression: a zero-copy view of the memory-mapped shard), ``lz4`` (LZ4
block, ~4-20 µs per 37 kB latent) or ``zstd`` (smallest, ~15-80 µs). The budget is ``max_ratio`` x
the latent's entropy-coded bitstream bytes (``bitstream_bytes``, or ``bpp`` x ``bpp_pixels`` / 8);
when even zstd exceeds it, or the bitstream size is unknown, zstd is used. So trained low-rate
latents (mostly zero channels; ~1 kB bitstreams) land in lz4/zstd, dense ones (high rates, untrained
codecs) in raw — storage stays within ``max_ratio`` x the bitstream while reads stay cheap.

The IPC file itself is uncompressed Arrow, so a lookup is a dict hit, two offsets and at most one
decompression (O(1), no neighbouring rows read). Shards are written to a temporary name and renamed;
a reader checks each shard's row count (and sha256 when asked) against the index manifest on first
use and raises :class:`ShardError` naming the shard.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cdfv.io import atomic_path, sha256_file
from cdfv.schemas import LATENT_INDEX

MANIFEST_KEY = b"cdfv.shards"
_SHARD_SCHEMA = pa.schema([("key", pa.string()), ("enc", pa.int8()), ("data", pa.binary())])
_INT_TYPES = (np.int8, np.int16, np.int32)
#: per-row encodings, in order of decoding speed; the value is the ``enc`` column
RAW, LZ4, ZSTD = 0, 1, 2
ENCODINGS = {"raw": RAW, "lz4": LZ4, "zstd": ZSTD}
_CODECS = {LZ4: pa.Codec("lz4_raw"), ZSTD: pa.Codec("zstd")}  # decompression ignores the level


class ShardError(RuntimeError):
    """A shard set whose files disagree with its index (or a bad key); the message names the file."""


def narrowest_int(a: np.ndarray) -> np.dtype:
    """int8 when the values fit, else int16, else int32."""
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for t in _INT_TYPES:
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return np.dtype(t)
    raise ShardError(f"latent values {lo}..{hi} do not fit int32")


def centre_crop(y: np.ndarray, size: int = 14) -> np.ndarray:
    """Centre crop the last two axes, e.g. 16x16 -> 14x14 (``[..., 1:15, 1:15]``)."""
    h, w = y.shape[-2:]
    t, left = (h - size) // 2, (w - size) // 2
    if t < 0 or left < 0:
        raise ValueError(f"cannot crop {h}x{w} to {size}x{size}")
    return y[..., t : t + size, left : left + size]


def choose_encoding(raw: bytes, budget: float | None, lz4: pa.Codec, zstd: pa.Codec) -> tuple[int, bytes]:
    """The fastest-decoding (raw, lz4, zstd) form of ``raw`` with at most ``budget`` bytes.

    ``budget`` None (bitstream size unknown) or too small for all three: zstd (the smallest).
    """
    if budget is not None and len(raw) <= budget:
        return RAW, raw
    if budget is not None:
        fast = lz4.compress(raw, asbytes=True)
        if len(fast) <= budget:
            return LZ4, fast
    return ZSTD, zstd.compress(raw, asbytes=True)


class LatentShardWriter:
    """Append latents, flush a shard every ``shard_rows``, write the index on :meth:`close`.

    ``max_ratio``: per-latent storage budget in bitstream bytes (see the module doc); ``encoding``
    forces one form for every row instead (``"raw"``, ``"lz4"``, ``"zstd"``). ``bpp_pixels``: the
    pixel count the ``bpp`` given to :meth:`add` is measured over (256² codec input).
    Use as a context manager; on an exception nothing is published (no index is written).
    """

    def __init__(self, out_dir: str | os.PathLike[str], codec: str, quality: int, shard_rows: int = 4096,
                 zstd_level: int = 3, *, max_ratio: float = 3.5, encoding: str = "auto",
                 bpp_pixels: int = 256 * 256) -> None:  # fmt: skip
        if encoding != "auto" and encoding not in ENCODINGS:
            raise ValueError(f"encoding must be auto, raw, lz4 or zstd, got {encoding!r}")
        self.out_dir = Path(out_dir)
        self.codec, self.quality = codec, quality
        self.shard_rows, self.zstd = shard_rows, pa.Codec("zstd", compression_level=zstd_level)
        self.lz4 = pa.Codec("lz4_raw")
        self.max_ratio, self.encoding, self.bpp_pixels = max_ratio, encoding, bpp_pixels
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self._pending_keys: list[str] = []
        self._pending_enc: list[int] = []
        self._pending_data: list[bytes] = []
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

    def _encode(self, raw: bytes, bitstream_bytes: float | None) -> tuple[int, bytes]:
        if self.encoding == "raw":
            return RAW, raw
        if self.encoding == "lz4":
            return LZ4, self.lz4.compress(raw, asbytes=True)
        if self.encoding == "zstd":
            return ZSTD, self.zstd.compress(raw, asbytes=True)
        budget = None if bitstream_bytes is None else self.max_ratio * bitstream_bytes
        return choose_encoding(raw, budget, self.lz4, self.zstd)

    def add(self, key: str, latent: np.ndarray, *, image_id: str, identity: str = "", bpp: float = float("nan"),
            label: int = -1, split: str = "", variant: int = 0, bitstream_bytes: int | None = None) -> None:  # fmt: skip
        """Store one integer latent (any shape, typically N x 14 x 14) under a unique ``key``."""
        if key in self._keys:
            raise ShardError(f"duplicate latent key {key!r}")
        if not np.issubdtype(latent.dtype, np.integer):
            raise ShardError(f"{key}: latents must be integers (ŷ), got {latent.dtype}")
        dt = narrowest_int(latent)
        raw = np.ascontiguousarray(latent, dtype=dt).tobytes()
        if bitstream_bytes is None and math.isfinite(bpp) and bpp > 0:
            bitstream_bytes = bpp * self.bpp_pixels / 8
        enc, blob = self._encode(raw, bitstream_bytes)
        self._keys.add(key)
        shard = self._shard_name(len(self._manifest))
        self._rows.append(dict(key=key, image_id=image_id, identity=identity, codec=self.codec,
                               quality=self.quality, shard=shard, row=len(self._pending_keys),
                               shape=list(latent.shape), dtype=dt.name, bpp=bpp, label=label,
                               split=split, variant=variant))  # fmt: skip
        self._pending_keys.append(key)
        self._pending_enc.append(enc)
        self._pending_data.append(blob)
        self.encoding_counts[next(n for n, v in ENCODINGS.items() if v == enc)] += 1
        if len(self._pending_keys) >= self.shard_rows:
            self._flush()

    @staticmethod
    def _shard_name(i: int) -> str:
        return f"shard-{i:05d}.arrow"

    def _flush(self) -> None:
        if not self._pending_keys:
            return
        name = self._shard_name(len(self._manifest))
        table = pa.table({"key": self._pending_keys, "enc": pa.array(self._pending_enc, pa.int8()),
                          "data": pa.array(self._pending_data, pa.binary())}, schema=_SHARD_SCHEMA)  # fmt: skip
        target = self.out_dir / name
        with atomic_path(target) as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, _SHARD_SCHEMA) as w:
                w.write_table(table, max_chunksize=len(table))
        size = target.stat().st_size
        self._manifest[name] = {"rows": len(self._pending_keys), "sha256": sha256_file(target), "bytes": size}
        self.stored_bytes += size
        self._pending_keys, self._pending_enc, self._pending_data = [], [], []

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
    """A memory-mapped shard: per-row encodings and zero-copy offsets + values of ``data``."""

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
            raise ShardError(f"{path}: {n} rows, but the index lists {n_index_rows} (manifest: "
                             f"{expect['rows'] if expect else '?'}); rebuild the shard set")  # fmt: skip
        data = self.table.column("data").combine_chunks()
        self.keys = self.table.column("key")
        # shards written before the enc column hold zstd values only
        names = self.table.schema.names
        enc = self.table.column("enc").to_numpy() if "enc" in names else np.full(n, ZSTD, np.int8)
        if n and (enc.min() < RAW or enc.max() > ZSTD):
            raise ShardError(f"{path}: unknown encoding {int(enc.max())} in the enc column; rebuild the shard set")
        _, offsets, values = data.buffers()
        off = np.frombuffer(offsets, dtype=np.int32, count=n + 1, offset=data.offset * 4)
        # Python lists: scalar indexing of a list is ~10x cheaper than of a numpy array (hot path)
        self.enc: list[int] = enc.tolist()
        self.start: list[int] = off[:-1].tolist()
        self.end: list[int] = off[1:].tolist()
        self.values = values if values is not None else pa.py_buffer(b"")


class LatentShardReader:
    """Random access to a shard set by key: ``reader.get(key)``, ``reader.read_batch(keys)``.

    ``verify``: ``"rows"`` (default) checks each shard's row count against the index on first use,
    ``"sha256"`` also hashes it. Shards are opened lazily, so a reader pickles cheaply into
    DataLoader workers (each worker maps the shards itself). Returned arrays are read-only views
    (of the mapped shard or of the decompressed buffer): copy before writing into them.
    """

    def __init__(self, index_path: str | os.PathLike[str], verify: Literal["rows", "sha256"] = "rows") -> None:
        self.index_path = Path(index_path)
        if not self.index_path.is_file():
            raise FileNotFoundError(f"{self.index_path}: latent index missing; run the stage that writes it "
                                    f"(encode_lfw@<codec> or latents_vggface2@<codec>)")  # fmt: skip
        self.index: pa.Table = pq.read_table(self.index_path)
        meta = self.index.schema.metadata or {}
        self.manifest: dict[str, dict[str, Any]] = json.loads(meta[MANIFEST_KEY]) if MANIFEST_KEY in meta else {}
        self.verify = verify
        self.root = self.index_path.parent
        keys = self.index.column("key").to_pylist()
        self._pos = {k: i for i, k in enumerate(keys)}
        if len(self._pos) != len(keys):
            raise ShardError(f"{self.index_path}: duplicate keys in the index")
        shard_names = self.index.column("shard").to_pylist()
        self._shard_names = sorted(set(shard_names))
        sid = {s: i for i, s in enumerate(self._shard_names)}
        shard_of = np.array([sid[s] for s in shard_names], dtype=np.int32)
        self._counts = np.bincount(shard_of, minlength=len(self._shard_names)) if keys else np.zeros(0, int)
        self._shard_of: list[int] = shard_of.tolist()
        self._row: list[int] = self.index.column("row").to_pylist()
        # per row (dtype, shape, byte count), shared objects for the few distinct combinations
        kinds: dict[tuple[str, tuple[int, ...]], tuple[np.dtype, tuple[int, ...], int, int]] = {}
        self._kind: list[tuple[np.dtype, tuple[int, ...], int, int]] = []
        for d, s in zip(self.index.column("dtype").to_pylist(), self.index.column("shape").to_pylist()):
            k = (d, tuple(s))
            if k not in kinds:
                dt = np.dtype(d)
                count = int(np.prod(k[1], dtype=np.int64))
                kinds[k] = (dt, k[1], count, count * dt.itemsize)
            self._kind.append(kinds[k])
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
            self._open[sid] = sh
        return sh

    def get_row(self, i: int) -> np.ndarray:
        """The latent of index row ``i`` (read-only array)."""
        sid = self._shard_of[i]
        sh = self._open.get(sid) or self._shard(sid)
        r = self._row[i]
        dt, shape, count, nbytes = self._kind[i]
        a = sh.start[r]
        n = sh.end[r] - a
        enc = sh.enc[r]
        if enc == RAW and n == nbytes:
            return np.frombuffer(sh.values, dtype=dt, count=count, offset=a).reshape(shape)
        return self._decode(sid, sh, r, enc, a, n, dt, shape, count, nbytes)

    def _decode(self, sid: int, sh: _Shard, r: int, enc: int, a: int, n: int, dt: np.dtype,
                shape: tuple[int, ...], count: int, nbytes: int) -> np.ndarray:  # fmt: skip
        where = f"{self.root / self._shard_names[sid]}: row {r}"
        if enc == RAW:
            raise ShardError(f"{where} holds {n} bytes, the index says {shape} {dt.name}; rebuild the shard set")
        try:
            raw = _CODECS[enc].decompress(sh.values.slice(a, n), decompressed_size=nbytes)
        except (OSError, pa.ArrowException) as err:
            raise ShardError(f"{where} does not decompress to {shape} {dt.name} ({err}); rebuild the shard set") from None
        return np.frombuffer(raw, dtype=dt, count=count).reshape(shape)

    def position(self, key: str) -> int:
        try:
            return self._pos[key]
        except KeyError:
            raise KeyError(f"latent key {key!r} not in {self.index_path}") from None

    def get(self, key: str) -> np.ndarray:
        """One latent (e.g. N x 14 x 14) by key."""
        return self.get_row(self.position(key))

    def read_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Stack latents of index rows into a new writable (B, ...) array in the widest stored dtype.

        Rows are read in shard order (each shard's mapped pages are touched together) and written
        straight into the output, one copy per latent.
        """
        rows = [int(i) for i in rows]
        if not rows:
            return np.zeros((0,), dtype=np.int8)
        kinds = {self._kind[i] for i in rows}
        shapes = {k[1] for k in kinds}
        if len(shapes) > 1:
            raise ShardError(f"{self.index_path}: read_batch over latents of different shapes {sorted(shapes)}")
        dt = max((k[0] for k in kinds), key=lambda d: d.itemsize)
        out = np.empty((len(rows), *shapes.pop()), dtype=dt)
        for j in sorted(range(len(rows)), key=lambda j: (self._shard_of[rows[j]], self._row[rows[j]])):
            out[j] = self.get_row(rows[j])
        return out

    def read_batch(self, keys: Iterable[str]) -> np.ndarray:
        """Latents of ``keys`` stacked into (B, N, 14, 14)."""
        pos = self._pos
        try:
            rows = [pos[k] for k in keys]
        except KeyError as err:
            raise KeyError(f"latent key {err.args[0]!r} not in {self.index_path}") from None
        return self.read_rows(rows)

    def encodings(self) -> dict[str, int]:
        """How many rows are stored raw / lz4 / zstd (opens every shard)."""
        counts = np.zeros(3, dtype=np.int64)
        for sid in range(len(self._shard_names)):
            counts += np.bincount(np.asarray(self._shard(sid).enc, dtype=np.int64), minlength=3)
        return {name: int(counts[v]) for name, v in ENCODINGS.items()}

    def verify_all(self) -> None:
        """Open (and check) every shard, that each shard's keys match the index rows and every row decodes."""
        keys = self.index.column("key").to_pylist()
        for sid, name in enumerate(self._shard_names):
            stored = self._shard(sid).keys.to_pylist()
            for i in np.flatnonzero(np.asarray(self._shard_of) == sid):
                if stored[self._row[i]] != keys[i]:
                    raise ShardError(f"{self.root / name}: row {self._row[i]} holds {stored[self._row[i]]!r}, "
                                     f"index says {keys[i]!r}")  # fmt: skip
                self.get_row(int(i))


class LatentDataset:
    """A torch ``Dataset`` of ``(float32 tensor N x 14 x 14, label int)`` over a shard set.

    ``split`` keeps only rows of that split (VGGFace2 ``train``/``val``); ``variants`` keeps only those
    variant numbers (e.g. ``[0]`` = the centre crops).
    """

    def __init__(self, index_path: str | os.PathLike[str], split: str | None = None,
                 variants: Sequence[int] | None = None) -> None:  # fmt: skip
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
