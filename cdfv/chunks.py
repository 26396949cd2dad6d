"""Chunked execution shared by the per-image stages and their Prefect flows.

A stage splits its images into chunks (:func:`chunked`) and maps a worker over them with a
:data:`ChunkMapper`: in process with a progress bar (:func:`map_sequential`, the default), or one
Prefect task per chunk (the flows in ``pipelines/``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

#: ``map_chunks(worker, chunks) -> [worker(chunk) for chunk in chunks]`` (in order). The default runs
#: them here with a progress bar; the Prefect flow passes one that submits a task per chunk.
ChunkMapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive chunks of at most ``size`` items (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def map_sequential(worker: Callable[[Any], Any], chunks: list[Any], desc: str = "chunks") -> list[Any]:
    """Default :data:`ChunkMapper`: in process, a tqdm bar counting items."""
    out = []
    with tqdm(total=sum(len(c) for c in chunks), desc=desc, unit="img") as bar:
        for c in chunks:
            out.append(worker(c))
            bar.update(len(c))
    return out
