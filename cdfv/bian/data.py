"""Training faces of Bian et al. (§2.3: CASIA-WebFace, MTCNN, 112x96) and their dataset.

Stage ``bian_faces`` writes ``data/interim/bian/train/index.parquet`` (:data:`cdfv.schemas.BIAN_TRAIN_FACES`):

* **CASIA** (``bian.identities.source: casia``, or ``auto`` when ``casia_root`` holds identity folders):
  any ``<identity>/<image>`` tree. Every image goes through MTCNN (``detect.mtcnn``, the centre
  heuristic) and the similarity alignment to ``bian.reference`` (96x112), the function LFW uses
  (:func:`cdfv.align.similarity.align_to_reference`); the faces are stored under
  ``data/interim/bian/train/faces``. Images without a face use the fallback box (``detect.fallback``).
* **VGGFace2** (default when CASIA is absent): the ingested 112x112 pre-aligned faces. That release is
  aligned to insightface's 112x112 template (``bian.identities.vggface2_template``), so the same
  similarity alignment with the template's points as landmarks maps it onto the 96x112 reference:
  a shift of 8 px, i.e. the central 96 columns (:func:`cdfv.align.similarity.realign`), done when a
  face is loaded (no second copy of VGGFace2 on disk).

Labels are 0..n-1 over the identities in sorted order; every image trains (the LFW evaluation is the
test, as in the paper).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset

from cdfv import paths, schemas
from cdfv.align.similarity import realign
from cdfv.config import Params, ReferenceSet
from cdfv.errors import CdfvError
from cdfv.io import read_parquet, read_rgb, write_parquet_atomic


class TrainingFacesError(CdfvError, FileNotFoundError):
    """No usable training identities; the message says which param to set."""


def vggface2_rows(params: Params, root: Path) -> list[dict[str, Any]]:
    """Index rows of the ingested VGGFace2 faces (re-aligned when loaded)."""
    table = read_parquet(root / paths.VGGFACE2_IMAGES, "VGGFace2 image index", "ingest_vggface2").to_pylist()
    template = params.bian.identities.vggface2_template
    ref = params.align.references[template]
    vgg = params.vggface2
    if vgg is not None and (vgg.size, vgg.size) != (ref.width, ref.height):
        raise TrainingFacesError(
            f"vggface2.size is {vgg.size} but bian.identities.vggface2_template {template} is "
            f"{ref.width}x{ref.height}: pick a template of the ingested size"
        )
    idents = sorted({r["identity"] for r in table})
    label = {k: i for i, k in enumerate(idents)}
    return [
        dict(
            image_id=r["image_id"],
            identity=r["identity"],
            label=label[r["identity"]],
            path=r["path"],
            template=template,
            source="vggface2",
        )
        for r in table
    ]


def write_index(rows: list[dict[str, Any]], root: Path) -> pa.Table:
    table = pa.Table.from_pylist(rows, schema=schemas.BIAN_TRAIN_FACES)
    write_parquet_atomic(root / paths.BIAN_TRAIN_INDEX, table, schemas.BIAN_TRAIN_FACES)
    return table


class BianFaces(Dataset):
    """``(uint8 tensor 3 x H x W, label, index)`` at the reference size (112x96) from the index."""

    def __init__(self, rows: list[dict[str, Any]], params: Params, root: Path = Path(".")) -> None:
        self.rows, self.root = rows, Path(root)
        self.refs: dict[str, ReferenceSet] = dict(params.align.references)
        self.ref = self.refs[params.bian.reference]
        self.interpolation = params.align.interpolation
        self.num_classes = int(max(r["label"] for r in rows)) + 1 if rows else 0
        self.split = self  # the trainer names failing images through ``ds.split.image_ids``
        self.image_ids = [r["image_id"] for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    @functools.cached_property
    def labels(self) -> np.ndarray:
        return np.asarray([r["label"] for r in self.rows], dtype=np.int64)

    def face(self, i: int) -> np.ndarray:
        r = self.rows[i]
        path = self.root / r["path"]
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: training face missing (image {r['image_id']}); rerun `dvc repro bian_faces`"
            )
        img = read_rgb(path)
        if r["template"]:
            img = realign(img, self.refs[r["template"]], self.ref, self.interpolation)
        if img.shape[:2] != (self.ref.height, self.ref.width):
            raise ValueError(f"{path}: {img.shape[1]}x{img.shape[0]}, expected {self.ref.width}x{self.ref.height}")
        return img

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return torch.from_numpy(self.face(i)).permute(2, 0, 1).contiguous(), int(self.rows[i]["label"]), i


def load_index(root: Path) -> list[dict[str, Any]]:
    rows = read_parquet(root / paths.BIAN_TRAIN_INDEX, "Bian training faces", "bian_faces").to_pylist()
    if len({r["label"] for r in rows}) < 2:
        raise TrainingFacesError(f"{root / paths.BIAN_TRAIN_INDEX}: training needs at least 2 identities")
    return rows
