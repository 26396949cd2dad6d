"""Chunked execution shared by the detect/align stages and their Prefect flow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

#: ``map_chunks(worker, chunks) -> [worker(chunk) for chunk in chunks]`` (in order). The default runs
#: them here with a progress bar; the Prefect flow passes one that submits a task per chunk.
ChunkMapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def chunked(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def map_sequential(worker: Callable[[Any], Any], chunks: list[Any], desc: str = "chunks") -> list[Any]:
    """Default :data:`ChunkMapper`: in process, a tqdm bar counting items."""
    out = []
    with tqdm(total=sum(len(c) for c in chunks), desc=desc, unit="img") as bar:
        for c in chunks:
            out.append(worker(c))
            bar.update(len(c))
    return out
