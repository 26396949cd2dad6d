"""Latent shards: integer ŷ crops in Arrow IPC shards with a Parquet index (random access by key).

Layout of one shard set (a folder)::

    index.parquet        schema cdfv.schemas.LATENT_INDEX, one row per latent; the schema metadata
                         ``cdfv.shards`` holds {shard: {"rows": n, "sha256": hex, "bytes": n}}
    shard-00000.arrow    Arrow IPC file, one record batch: key (string), data (binary)
    ...

Each ``data`` value is one latent (N x 14 x 14) in the narrowest integer type that holds it (int8,
else int16, else int32), C order, zstd-compressed on its own. The IPC file is uncompressed Arrow,
so a memory-mapped shard gives a zero-copy view of each compressed value: a lookup is a dict hit,
two offsets and one zstd decompression (O(1), no neighbouring rows read). Shards are written to a
temporary name and renamed; a reader checks each shard's row count (and sha256 when asked)
against the index manifest on first use and raises :class:`ShardError` naming the shard.
"""

from __future__ import annotations

import json
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
_SHARD_SCHEMA = pa.schema([("key", pa.string()), ("data", pa.binary())])
_INT_TYPES = (np.int8, np.int16, np.int32)


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


class LatentShardWriter:
    """Append latents, flush a shard every ``shard_rows``, write the index on :meth:`close`.

    Use as a context manager; on an exception nothing is published (no index is written).
    """

    def __init__(self, out_dir: str | os.PathLike[str], codec: str, quality: int, shard_rows: int = 4096,
                 zstd_level: int = 3) -> None:  # fmt: skip
        self.out_dir = Path(out_dir)
        self.codec, self.quality = codec, quality
        self.shard_rows, self.zstd = shard_rows, pa.Codec("zstd", compression_level=zstd_level)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self._pending_keys: list[str] = []
        self._pending_data: list[bytes] = []
        self._keys: set[str] = set()
        self._manifest: dict[str, dict[str, Any]] = {}
        self.stored_bytes = 0

    def __len__(self) -> int:
        return len(self._rows)

    def __enter__(self) -> LatentShardWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()

    def add(self, key: str, latent: np.ndarray, *, image_id: str, identity: str = "", bpp: float = float("nan"),
            label: int = -1, split: str = "", variant: int = 0) -> None:  # fmt: skip
        """Store one integer latent (any shape, typically N x 14 x 14) under a unique ``key``."""
        if key in self._keys:
            raise ShardError(f"duplicate latent key {key!r}")
        if not np.issubdtype(latent.dtype, np.integer):
            raise ShardError(f"{key}: latents must be integers (ŷ), got {latent.dtype}")
        dt = narrowest_int(latent)
        raw = np.ascontiguousarray(latent, dtype=dt).tobytes()
        blob = self.zstd.compress(raw, asbytes=True)
        self._keys.add(key)
        shard = self._shard_name(len(self._manifest))
        self._rows.append(dict(key=key, image_id=image_id, identity=identity, codec=self.codec,
                               quality=self.quality, shard=shard, row=len(self._pending_keys),
                               shape=list(latent.shape), dtype=dt.name, bpp=bpp, label=label,
                               split=split, variant=variant))  # fmt: skip
        self._pending_keys.append(key)
        self._pending_data.append(blob)
        if len(self._pending_keys) >= self.shard_rows:
            self._flush()

    @staticmethod
    def _shard_name(i: int) -> str:
        return f"shard-{i:05d}.arrow"

    def _flush(self) -> None:
        if not self._pending_keys:
            return
        name = self._shard_name(len(self._manifest))
        table = pa.table({"key": self._pending_keys, "data": pa.array(self._pending_data, pa.binary())},
                         schema=_SHARD_SCHEMA)  # fmt: skip
        target = self.out_dir / name
        with atomic_path(target) as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, _SHARD_SCHEMA) as w:
                w.write_table(table, max_chunksize=len(table))
        size = target.stat().st_size
        self._manifest[name] = {"rows": len(self._pending_keys), "sha256": sha256_file(target), "bytes": size}
        self.stored_bytes += size
        self._pending_keys, self._pending_data = [], []

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
    """A memory-mapped shard: zero-copy offsets + values of the ``data`` column."""

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
        _, offsets, values = data.buffers()
        self.offsets = np.frombuffer(offsets, dtype=np.int32, count=n + 1, offset=data.offset * 4)
        self.values = values

    def blob(self, row: int) -> pa.Buffer:
        a, b = int(self.offsets[row]), int(self.offsets[row + 1])
        return self.values.slice(a, b - a)


class LatentShardReader:
    """Random access to a shard set by key: ``reader.get(key)``, ``reader.read_batch(keys)``.

    ``verify``: ``"rows"`` (default) checks each shard's row count against the index on first use,
    ``"sha256"`` also hashes it. Shards are opened lazily, so a reader pickles cheaply into
    DataLoader workers (each worker maps the shards itself).
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
        self._shard_of = np.array([sid[s] for s in shard_names], dtype=np.int32)
        self._counts = np.bincount(self._shard_of, minlength=len(self._shard_names)) if keys else np.zeros(0, int)
        self._row = self.index.column("row").to_numpy()
        self._dtype = [np.dtype(d) for d in self.index.column("dtype").to_pylist()]
        self._shape = [tuple(s) for s in self.index.column("shape").to_pylist()]
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
        """The latent of index row ``i``."""
        sh = self._shard(int(self._shard_of[i]))
        dt, shape = self._dtype[i], self._shape[i]
        n = int(np.prod(shape)) * dt.itemsize
        raw = pa.decompress(sh.blob(int(self._row[i])), decompressed_size=n, codec="zstd", asbytes=False)
        return np.frombuffer(raw, dtype=dt).reshape(shape)

    def position(self, key: str) -> int:
        try:
            return self._pos[key]
        except KeyError:
            raise KeyError(f"latent key {key!r} not in {self.index_path}") from None

    def get(self, key: str) -> np.ndarray:
        """One latent (e.g. N x 14 x 14) by key."""
        return self.get_row(self.position(key))

    def read_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Stack latents of index rows into (B, ...) in the widest stored dtype."""
        if len(rows) == 0:
            return np.zeros((0,), dtype=np.int8)
        dt = max((self._dtype[int(i)] for i in rows), key=lambda d: d.itemsize)
        first = self._shape[int(rows[0])]
        out = np.empty((len(rows), *first), dtype=dt)
        for j, i in enumerate(rows):
            if self._shape[int(i)] != first:
                raise ShardError(f"{self.index_path}: read_batch over latents of different shapes")
            out[j] = self.get_row(int(i))
        return out

    def read_batch(self, keys: Iterable[str]) -> np.ndarray:
        """Latents of ``keys`` stacked into (B, N, 14, 14)."""
        return self.read_rows([self.position(k) for k in keys])

    def verify_all(self) -> None:
        """Open (and check) every shard and that each shard's keys match the index rows."""
        keys = self.index.column("key").to_pylist()
        for sid, name in enumerate(self._shard_names):
            sh = self._shard(sid)
            stored = sh.keys.to_pylist()
            for i in np.flatnonzero(self._shard_of == sid):
                if stored[int(self._row[i])] != keys[i]:
                    raise ShardError(f"{self.root / name}: row {self._row[i]} holds {stored[int(self._row[i])]!r}, "
                                     f"index says {keys[i]!r}")  # fmt: skip


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
