"""``ingest_lfw`` stage: download + verify LFW and ``pairs.txt``, convert every JPEG to PNG.

Outputs (all written atomically; a killed run leaves nothing half-written):
``data/interim/lfw/png/<identity>/<image>.png`` ("simulated originals", paper §IV.B),
``data/interim/lfw/images.parquet`` and ``data/interim/lfw/pairs.parquet`` (schemas in
:mod:`cdfv.schemas`).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pyarrow as pa

from cdfv import paths, schemas
from cdfv.config import LfwParams, Params
from cdfv.data.convert import CorruptImagesError, Job, convert_all, handle_errors
from cdfv.data.pairs import check_pairs_reference, parse_pairs
from cdfv.download import DownloadError, fetch
from cdfv.io import atomic_path, write_parquet_atomic

IMAGE_EXT = (".jpg", ".jpeg", ".png")


def iter_archive(archive: Path) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(image_id, identity, bytes)`` for every image in an LFW ``.tgz`` (any prefix folder)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                if not m.isfile() or not m.name.lower().endswith(IMAGE_EXT):
                    continue
                p = PurePosixPath(m.name)
                identity = p.parent.name
                f = tar.extractfile(m)
                assert f is not None
                yield f"{identity}/{p.stem}", identity, f.read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise DownloadError(
            f"{archive}: truncated or corrupt archive ({err}). Delete it and re-run to download again "
            f"(and check lfw.archive_sha256)."
        ) from None


def count_images(archive: Path) -> int:
    try:
        with tarfile.open(archive, "r:*") as tar:
            return sum(1 for m in tar if m.isfile() and m.name.lower().endswith(IMAGE_EXT))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError(f"{archive}: truncated or corrupt archive ({err}). Delete it and re-run.") from None


def ingest_lfw(cfg: LfwParams, cache: Path, root: Path = Path(".")) -> tuple[pa.Table, pa.Table]:
    """Run the stage under ``root``; return ``(images, pairs)`` tables as written."""
    archive = fetch(cfg.archive_url, cache, cfg.archive_sha256)
    pairs_file = fetch(cfg.pairs_url, cache, cfg.pairs_sha256)
    pairs = parse_pairs(pairs_file.read_text(), source=cfg.pairs_url)  # fail fast before converting

    png_dir = root / paths.LFW_PNG
    total = count_images(archive)
    rows: list[dict] = []
    errors: list[str] = []
    with atomic_path(png_dir) as tmp:
        jobs = (
            Job(image_id, data, str(tmp / f"{image_id}.png")) for image_id, _identity, data in iter_archive(archive)
        )
        for res in convert_all(jobs, total, cfg.workers, desc="LFW jpeg->png"):
            if res.error:
                errors.append(res.error)
                continue
            rows.append(
                dict(
                    image_id=res.image_id,
                    identity=res.image_id.split("/")[0],
                    path=str(paths.LFW_PNG / f"{res.image_id}.png"),
                    width=res.width,
                    height=res.height,
                    sha256=res.sha256,
                )
            )
        handle_errors(errors, str(archive), cfg.on_corrupt, "lfw.on_corrupt")
        if not rows:
            raise CorruptImagesError(f"{archive}: no images found (expected <identity>/<identity>_NNNN.jpg)")
        check_pairs_reference(pairs, {r["image_id"] for r in rows}, source=cfg.pairs_url)

    rows.sort(key=lambda r: r["image_id"])
    images = pa.Table.from_pylist(rows, schema=schemas.LFW_IMAGES)
    pairs_tbl = pa.Table.from_pylist(
        [dict(pair_id=p.pair_id, fold=p.fold, left_id=p.left_id, right_id=p.right_id, same=p.same) for p in pairs],
        schema=schemas.LFW_PAIRS,
    )
    write_parquet_atomic(root / paths.LFW_IMAGES, images, schemas.LFW_IMAGES)
    write_parquet_atomic(root / paths.LFW_PAIRS, pairs_tbl, schemas.LFW_PAIRS)
    n_same = sum(p.same for p in pairs)
    print(
        f"LFW: {images.num_rows} images, {len(set(images['identity'].to_pylist()))} identities, "
        f"{len(pairs)} pairs ({n_same} same), {len(errors)} skipped"
    )
    return images, pairs_tbl


def run_ingest_lfw(params: Params, root: Path = Path(".")) -> None:
    ingest_lfw(params.require("lfw"), params.cache_path, root)
