"""I/O at the edges: atomic writes, hashing, Parquet with declared schemas, image reading.

Every stage output goes through these helpers so a killed stage never leaves a half-written
file behind: data is written to ``<name>.tmp-<pid>`` next to the target and ``os.replace``-d.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cdfv.errors import CdfvError

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``target`` (file or dir)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        _remove(tmp)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(target: str | os.PathLike[str], obj: Any) -> None:
    write_bytes_atomic(target, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_parquet_atomic(target: str | os.PathLike[str], table: pa.Table, schema: pa.Schema | None = None) -> None:
    """Write ``table`` (cast to ``schema`` when given, so schemas are enforced) atomically."""
    if schema is not None:
        table = table.select(schema.names).cast(schema)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_parquet(path: str | os.PathLike[str], what: str = "", stage: str = "") -> pa.Table:
    """Read a Parquet file, or fail naming the stage that produces it."""
    path = Path(path)
    if not path.is_file():
        hint = f" Run `dvc repro {stage}` first." if stage else ""
        raise FileNotFoundError(f"{path}: missing{(' (' + what + ')') if what else ''}.{hint}")
    return pq.read_table(path)


def encode_png(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """Lossless PNG bytes of an HxWx3 uint8 array (fast zlib level: PNG is lossless at any level)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


class ImageReadError(CdfvError, ValueError):
    """An image that cannot be decoded; the message names the file."""


def read_rgb(path_or_bytes: str | os.PathLike[str] | bytes, name: str | None = None) -> np.ndarray:
    """Decode any Pillow-readable image to HxWx3 uint8 RGB (grey, palette, CMYK, 16-bit, alpha).

    Raises :class:`ImageReadError` naming the file for truncated or corrupt data.
    """
    from PIL import Image, UnidentifiedImageError

    label = name or (str(path_or_bytes) if not isinstance(path_or_bytes, bytes) else "<bytes>")
    try:
        src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
        with Image.open(src) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                peak = 65535.0 if arr.max() > 255 else 255.0
                grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{label}: cannot decode image ({err}). Replace or re-download the file.") from None


def tmpdir_near(target: str | os.PathLike[str]) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory on the same filesystem as ``target`` (so renames are atomic)."""
    parent = Path(target).parent
    parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=parent, prefix=f".{Path(target).name}.")
