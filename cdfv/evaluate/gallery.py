"""Gallery protocol of Xiao et al. (2023, §4): FRR at fixed FAR over queries against an enrolled gallery (pure).

* **Gallery**: the first ``n`` images of each identity in image-name order (``n = 1`` on LFW); every other
  image of that identity is a **query**. Identities with ``<= n`` images only enrol (they are impostors
  for everyone else's queries).
* **Scores** (higher = more similar): cosine similarity of L2-normalised embeddings, so "minimum
  distance" = maximum similarity. Per query: the genuine score is its best similarity to its own
  identity's gallery, the impostor score its best similarity to any other identity's gallery.
* **ROC** over the pooled genuine and impostor scores (:func:`cdfv.evaluate.metrics.roc`);
  ``FRR@FAR = 1 - TAR@FAR`` with the project's TAR@FAR rule (``floor`` by default).
* **Subset**: ``keep`` restricts gallery and queries to a set of identities (e.g. the test identities of
  an identity-disjoint split when the codec was trained on the others).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from cdfv.errors import CdfvError
from cdfv.evaluate.metrics import TarRule, roc, tar_at_far


class GalleryError(CdfvError, ValueError):
    """Inputs that cannot form a gallery protocol (no queries, length mismatch, bad n)."""


@dataclass(frozen=True)
class GalleryScores:
    """One row per query: its index in the input, genuine and impostor similarity."""

    query: np.ndarray
    genuine: np.ndarray
    impostor: np.ndarray

    def labels_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Pooled (labels, scores): genuine scores first (label 1), then impostor scores (label 0)."""
        labels = np.r_[np.ones(self.genuine.size, bool), np.zeros(self.impostor.size, bool)]
        return labels, np.r_[self.genuine, self.impostor]


def gallery_mask(identities: Sequence[str], images: Sequence[str], n: int) -> np.ndarray:
    """True for the first ``n`` images (by name) of each identity."""
    if n < 1:
        raise GalleryError(f"gallery size per identity must be >= 1, got {n}")
    if len(identities) != len(images):
        raise GalleryError(f"{len(identities)} identities for {len(images)} images")
    order = sorted(range(len(images)), key=lambda i: (identities[i], images[i]))
    mask = np.zeros(len(images), bool)
    seen: dict[str, int] = {}
    for i in order:
        k = seen.get(identities[i], 0)
        mask[i] = k < n
        seen[identities[i]] = k + 1
    return mask


def gallery_scores(
    embeddings: np.ndarray,
    identities: Sequence[str],
    images: Sequence[str],
    n: int = 1,
    keep: Collection[str] | None = None,
) -> GalleryScores:
    """Genuine / impostor similarity of every query (see the module docstring)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    ids = np.asarray(identities, dtype=object)
    if emb.ndim != 2 or emb.shape[0] != ids.size:
        raise GalleryError(f"embeddings {emb.shape} do not match {ids.size} images")
    idx = np.arange(ids.size) if keep is None else np.flatnonzero([i in set(keep) for i in ids])
    mask = gallery_mask(list(ids[idx]), [images[i] for i in idx], n)
    g, q = idx[mask], idx[~mask]
    if q.size == 0:
        raise GalleryError(f"no queries: every identity has <= {n} images in the scored subset")
    if np.unique(ids[g]).size < 2:
        raise GalleryError("the gallery needs at least two identities for impostor scores")
    norm = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = norm[q] @ norm[g].T  # queries x gallery
    same = ids[q][:, None] == ids[g][None, :]
    genuine = np.where(same, sim, -np.inf).max(axis=1)
    impostor = np.where(same, -np.inf, sim).max(axis=1)
    return GalleryScores(query=q, genuine=genuine, impostor=impostor)


def frr_at_far(scores: GalleryScores, target: float, rule: TarRule = "floor") -> float:
    """False rejection rate at a FAR target: ``1 - TAR@FAR`` on the query ROC."""
    return 1.0 - tar_at_far(roc(*scores.labels_scores()), target, rule)
