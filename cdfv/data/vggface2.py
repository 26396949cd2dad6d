"""``ingest_vggface2`` stage: index a local VGGFace2 tree, store 112x112 PNGs, split identities.

VGGFace2 cannot be downloaded automatically (registration required). Put the identity folders
(``n000001/0001_01.jpg`` ...; the original release or the 112x112 pre-aligned one) under the path
in ``vggface2.root`` (a ``train/`` sub-folder is also accepted).

The phase-2 split is identity-disjoint and deterministic: identities sorted by name, permuted with
``numpy.random.default_rng(split_seed)``, the first ``val_identities`` go to ``val`` (863 of 8,631 on
the full set -> 7,768 train, as the thesis).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from cdfv import paths, schemas
from cdfv.config import Params, ParamsError, VggFace2Params
from cdfv.data.convert import Job, convert_all, handle_errors
from cdfv.errors import CdfvError
from cdfv.io import atomic_path, write_parquet_atomic

IMAGE_EXT = {".jpg", ".jpeg", ".png"}
OBTAIN = (
    "VGGFace2 is not downloadable automatically: request it from the authors "
    "(https://www.robots.ox.ac.uk/~vgg/data/vgg_face2/ or an academic mirror), extract the identity "
    "folders (n000001/...) and set `vggface2.root` in params.yaml to that folder."
)


class DatasetMissingError(CdfvError, FileNotFoundError):
    """The VGGFace2 tree is absent; the message says where to obtain it and which param to set."""


def find_root(root: Path) -> Path:
    if not root.is_dir():
        raise DatasetMissingError(f"VGGFace2 not found at {root}. {OBTAIN}")
    if (root / "train").is_dir():
        root = root / "train"
    if not any(p.is_dir() for p in root.iterdir()):
        raise DatasetMissingError(f"{root} holds no identity folders. {OBTAIN}")
    return root


def split_identities(identities: list[str], val_identities: int, seed: int) -> set[str]:
    """Deterministic identity-disjoint validation set (pure)."""
    ids = sorted(identities)
    if not 0 < val_identities < len(ids):
        raise ParamsError(
            f"vggface2.val_identities={val_identities} must be in [1, {len(ids) - 1}] for {len(ids)} identities"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[i] for i in order[:val_identities]}


def scan(root: Path, cfg: VggFace2Params) -> list[tuple[str, str, Path]]:
    """``(image_id, identity, file)`` for the selected identities/images, sorted."""
    idents = sorted(p.name for p in root.iterdir() if p.is_dir())
    if cfg.max_identities is not None and cfg.max_identities < len(idents):
        pick = np.random.default_rng(cfg.split_seed).permutation(len(idents))[: cfg.max_identities]
        idents = sorted(idents[i] for i in pick)
    out = []
    for ident in idents:
        files = sorted(f for f in (root / ident).iterdir() if f.suffix.lower() in IMAGE_EXT)
        if cfg.max_images_per_identity is not None:
            files = files[: cfg.max_images_per_identity]
        out.extend((f"{ident}/{f.stem}", ident, f) for f in files)
    return out


def ingest_vggface2(cfg: VggFace2Params, root_dir: Path = Path(".")) -> pa.Table:
    src = find_root(Path(cfg.root).expanduser())
    items = scan(src, cfg)
    identities = sorted({ident for _, ident, _ in items})
    val = split_identities(identities, cfg.val_identities, cfg.split_seed)
    label = {ident: i for i, ident in enumerate(identities)}
    png_dir = root_dir / paths.VGGFACE2_PNG
    rows, errors = [], []
    with atomic_path(png_dir) as tmp:
        jobs = (Job(iid, str(f), str(tmp / f"{iid}.png"), cfg.size) for iid, _, f in items)
        for res in convert_all(jobs, len(items), cfg.workers, desc="VGGFace2 -> png"):
            if res.error:
                errors.append(res.error)
                continue
            ident = res.image_id.split("/")[0]
            rows.append(
                dict(
                    image_id=res.image_id,
                    identity=ident,
                    label=label[ident],
                    path=str(paths.VGGFACE2_PNG / f"{res.image_id}.png"),
                    split="val" if ident in val else "train",
                )
            )
        handle_errors(errors, str(src), cfg.on_corrupt, "vggface2.on_corrupt")
    table = pa.Table.from_pylist(rows, schema=schemas.VGGFACE2_IMAGES)
    write_parquet_atomic(root_dir / paths.VGGFACE2_IMAGES, table, schemas.VGGFACE2_IMAGES)
    n_val = len(val)
    print(
        f"VGGFace2: {table.num_rows} images, {len(identities)} identities "
        f"({len(identities) - n_val} train / {n_val} val)"
    )
    return table


def run_ingest_vggface2(params: Params, root: Path = Path(".")) -> None:
    ingest_vggface2(params.require("vggface2"), root)
