"""Embeddings of the LFW pair images for one solution (I/O at the edges, batched, tqdm).

Pipeline A: original 224 faces for probes and references. B2: probe = decoded face of the codec
(``data/processed/lfw/<codec>/index.parquet`` ``decoded``), reference = original face. C: both
images as latents from the LFW latent shards of the codec. B1 (thesis ch. 5): probe = the whole
decoded image aligned with the original detection (``align_lfw_full@<codec>``), reference = original face.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from cdfv import paths as P
from cdfv.chunks import chunked
from cdfv.evaluate.recognisers import Recogniser
from cdfv.evaluate.solutions import Solution
from cdfv.io import read_parquet, read_rgb

Embeddings = dict[str, np.ndarray]


def _load(root: Path, paths: dict[str, str], ids: Sequence[str]) -> np.ndarray:
    return np.stack([read_rgb(root / paths[i]) for i in ids])


def embed_faces(
    rec: Recogniser,
    root: Path,
    ids: Sequence[str],
    paths: dict[str, str],
    geometry_paths: dict[str, str] | None,
    batch_size: int,
    desc: str,
) -> Embeddings:
    """Embed the images ``paths[id]``; alignment (dlib) computed on ``geometry_paths[id]`` if given."""
    out: Embeddings = {}
    for chunk in tqdm(chunked(list(ids), batch_size), desc=desc, unit="batch", leave=False):
        batch = _load(root, paths, chunk)
        geometry = None
        if geometry_paths is not None:
            geometry = rec.geometry(_load(root, geometry_paths, chunk))
        for i, v in zip(chunk, rec.embed(batch, geometry)):
            out[i] = v
    return out


def embed_latents(
    rec: Recogniser, root: Path, codec: str, ids: Sequence[str], batch_size: int, verify_shards: bool = True
) -> Embeddings:
    """Embed entropy-decoded latents ``(N, 14, 14)`` of ``ids`` read from the codec's LFW shards.

    ``verify_shards`` hashes every shard once against the index manifest before reading.
    """
    from cdfv.shards import LatentShardReader

    index = root / P.lfw_latent_index(codec)
    if not index.is_file():
        raise FileNotFoundError(f"{index}: LFW latents missing. Run `dvc repro encode_lfw@{codec}` first.")
    reader = LatentShardReader(index)
    if verify_shards:
        reader.verify_checksums()
    table = reader.index
    key_of = dict(zip(table.column("image_id").to_pylist(), table.column("key").to_pylist()))
    have = [i for i in ids if i in key_of]
    out: Embeddings = {}
    for chunk in tqdm(chunked(have, batch_size), desc=f"{rec.name} latents", unit="batch", leave=False):
        lat = reader.read_batch([key_of[i] for i in chunk])
        for i, v in zip(chunk, rec.embed(np.asarray(lat, dtype=np.float32))):
            out[i] = v
    return out  # missing ids are reported by the scorer, listing them


def face_paths(faces: pa.Table) -> dict[str, str]:
    """image_id -> aligned 224 face path for every face with a usable image (incl. fallbacks)."""
    ids = faces.column("image_id").to_pylist()
    paths = faces.column("path").to_pylist()
    return {i: p for i, p in zip(ids, paths) if p}


def decoded_paths(root: Path, codec: str) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    """image_id -> decoded 224 face path, and image_id -> (bpp_224, bpp_256) for one codec."""
    t = read_parquet(root / P.codec_index(codec), f"decoded faces of {codec}", f"encode_lfw@{codec}")
    ids = t.column("image_id").to_pylist()
    dec = dict(zip(ids, t.column("decoded").to_pylist()))
    bpp = dict(zip(ids, zip(t.column("bpp_224").to_pylist(), t.column("bpp_256").to_pylist())))
    return {i: p for i, p in dec.items() if p}, bpp


def b1_paths(root: Path, codec: str) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    """Pipeline B1: image_id -> aligned 224 face of the decoded whole image, and -> (bpp_orig, bpp_256)."""
    faces = read_parquet(root / P.full_faces_index(codec), f"B1 faces of {codec}", f"align_lfw_full@{codec}")
    t = read_parquet(root / P.full_codec_index(codec), f"B1 decoded images of {codec}", f"encode_lfw_full@{codec}")
    ids = t.column("image_id").to_pylist()
    bpp = dict(zip(ids, zip(t.column("bpp_orig").to_pylist(), t.column("bpp_256").to_pylist())))
    return face_paths(faces), {i: b for i, b in bpp.items() if b[1] is not None}


def probe_sources(root: Path, sol: Solution) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    """The probe images of a decoded solution (B1 or B2) and their (unpadded, padded-256) bpp."""
    assert sol.codec is not None
    return b1_paths(root, sol.codec) if sol.pipeline == "B1" else decoded_paths(root, sol.codec)


def embed_solution(
    sol: Solution,
    rec: Recogniser,
    root: Path,
    faces: pa.Table,
    probes: Sequence[str],
    references: Sequence[str],
    batch_size: int,
    verify_shards: bool = True,
) -> tuple[Embeddings, Embeddings]:
    """(probe embeddings, reference embeddings) keyed by image_id for one solution."""
    originals = face_paths(faces)
    ref_ids = sorted({i for i in references if i in originals})
    if sol.pipeline == "A":
        ids = sorted({i for i in (*probes, *references) if i in originals})
        emb = embed_faces(rec, root, ids, originals, None, batch_size, f"{sol.name} faces")
        return emb, emb
    if sol.pipeline in ("B1", "B2"):
        # the codec changes the probe's pixels only: dlib's alignment comes from the original face
        decoded, _ = probe_sources(root, sol)
        probe_ids = sorted({i for i in probes if i in decoded and i in originals})
        geometry = originals if getattr(rec, "needs_geometry", False) else None
        probe = embed_faces(rec, root, probe_ids, decoded, geometry, batch_size, f"{sol.name} probes")
        ref = embed_faces(rec, root, ref_ids, originals, geometry, batch_size, f"{sol.name} references")
        return probe, ref
    assert sol.codec is not None
    emb = embed_latents(rec, root, sol.codec, sorted(set(probes) | set(references)), batch_size, verify_shards)
    return emb, emb
