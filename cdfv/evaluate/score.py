"""Pair scores: cosine similarity of probe and reference embeddings (pure, vectorised)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cdfv.errors import CdfvError


class MissingEmbeddingsError(CdfvError, KeyError):
    """Pairs reference images that have no embedding; the message lists them."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class NonFiniteScoresError(CdfvError, ValueError):
    """A score is NaN/inf (e.g. an all-zero embedding)."""


def stack_embeddings(ids: Sequence[str], table: Mapping[str, np.ndarray], role: str) -> np.ndarray:
    """``(len(ids), D)`` matrix of ``table[id]``; raise listing every missing id."""
    missing = sorted({i for i in ids if i not in table})
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... (+{len(missing) - 20} more)" if len(missing) > 20 else "")
        raise MissingEmbeddingsError(f"{len(missing)} {role} image(s) of the pairs have no embedding: {shown}")
    return np.stack([np.asarray(table[i], dtype=np.float32) for i in ids]) if ids else np.zeros((0, 0), np.float32)


def cosine_scores(probe: np.ndarray, reference: np.ndarray, pair_ids: Sequence[object] | None = None) -> np.ndarray:
    """Row-wise cosine similarity of two ``(P, D)`` matrices; NaN (zero vectors) is an error."""
    a = np.asarray(probe, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"probe {a.shape} and reference {b.shape} embeddings differ in shape")
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        who = [pair_ids[i] for i in bad[:20]] if pair_ids is not None else bad[:20].tolist()
        raise NonFiniteScoresError(f"{bad.size} pair score(s) are NaN/inf (zero-norm embedding?): pairs {who}")
    return s


def score_pairs(
    left_ids: Sequence[str],
    right_ids: Sequence[str],
    probe_table: Mapping[str, np.ndarray],
    reference_table: Mapping[str, np.ndarray],
    pair_ids: Sequence[object] | None = None,
) -> np.ndarray:
    """Scores of pairs (probe = left image, reference = right image)."""
    return cosine_scores(
        stack_embeddings(left_ids, probe_table, "probe"),
        stack_embeddings(right_ids, reference_table, "reference"),
        pair_ids,
    )
