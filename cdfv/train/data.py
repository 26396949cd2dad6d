"""Training data: VGGFace2 splits, datasets, a resumable batch order and on-device augmentation.

* Phase 1 uses every identity with ``label`` from ``images.parquet`` (all 8,631 classes).
* Phase 2 trains ArcFace on the ``split == "train"`` identities with labels re-indexed 0..7,767
  and measures the validation loss on the identity-disjoint ``val`` identities (863).
* Batches are drawn by :class:`EpochBatches`: a permutation fixed by ``(seed, phase, epoch)``,
  incomplete last batch dropped ("all batches have the same number of samples"), optionally
  skipping the batches a resumed run already did, and sharded over DDP ranks.
* Augmentation (resize 112 -> 256 bilinear, random crop 224, grayscale p = 0.2, no flip) runs
  batched on the training device (:func:`augment`); CPU workers only decode PNGs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset, Sampler

from cdfv import paths
from cdfv.io import read_parquet, read_rgb

#: ITU-R 601 luma weights (torchvision ``rgb_to_grayscale``)
GREY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Split:
    """Image ids, files and contiguous labels of one training set."""

    image_ids: list[str]
    files: list[str]
    labels: np.ndarray  # int64, 0..num_classes-1
    num_classes: int
    identities: list[str]  # identities[label]

    def __len__(self) -> int:
        return len(self.image_ids)


def read_images_table(root: Path = Path(".")) -> pa.Table:
    """``data/interim/vggface2/images.parquet`` or the ingestion error naming the stage."""
    return read_parquet(root / paths.VGGFACE2_IMAGES, "VGGFace2 image index", "ingest_vggface2")


def make_split(table: pa.Table, which: str) -> Split:
    """``which`` = ``all`` (phase 1, labels as stored) | ``train`` | ``val`` (phase 2, re-indexed)."""
    rows = table.to_pydict()
    ids, idents, files, labels = rows["image_id"], rows["identity"], rows["path"], rows["label"]
    if which == "all":
        keep = list(range(len(ids)))
        n = int(max(labels)) + 1 if labels else 0
        names = [""] * n
        for i in keep:
            names[labels[i]] = idents[i]
        lab = np.asarray(labels, dtype=np.int64)
    elif which in ("train", "val"):
        keep = [i for i, s in enumerate(rows["split"]) if s == which]
        names = sorted({idents[i] for i in keep})
        index = {name: j for j, name in enumerate(names)}
        lab = np.asarray([index[idents[i]] for i in keep], dtype=np.int64)
        n = len(names)
    else:
        raise ValueError(f"unknown split {which!r}")
    if not keep:
        raise ValueError(f"VGGFace2 index has no images in split {which!r}; rerun `dvc repro ingest_vggface2`")
    if n < 2:
        raise ValueError(f"VGGFace2 split {which!r} has {n} identity; training needs at least 2")
    return Split([ids[i] for i in keep], [files[i] for i in keep], lab, n, names)


class ImageDataset(Dataset):
    """``(uint8 tensor 3 x H x W, label, index)`` from the PNGs of a :class:`Split`."""

    def __init__(self, split: Split, root: Path = Path(".")) -> None:
        self.split, self.root = split, Path(root)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        path = self.root / self.split.files[i]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: VGGFace2 PNG missing (image {self.split.image_ids[i]}). "
                                    "Rerun `dvc repro ingest_vggface2`.")
        rgb = read_rgb(path)
        return torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), int(self.split.labels[i]), i


class LatentShardDataset(Dataset):
    """``(float tensor N x 14 x 14, label, index)`` from ``latents_vggface2@<codec>`` shards.

    With K augmentation variants per image (``encode.vggface2.variants``) each epoch picks one
    variant per image deterministically from ``(seed, epoch)`` (:meth:`set_epoch`).
    """

    def __init__(self, split: Split, index_path: Path, seed: int = 0) -> None:
        from cdfv.shards import LatentShardReader

        if not Path(index_path).is_file():
            raise FileNotFoundError(
                f"{index_path}: VGGFace2 latent shards missing. Run `dvc repro latents_vggface2@<codec>` "
                "or set train.cresnet39.latents: online"
            )
        self.split, self.reader, self.seed = split, LatentShardReader(index_path), seed
        idx = self.reader.index.to_pydict()
        variants = idx.get("variant", [0] * len(idx["key"]))
        by_image: dict[str, list[str]] = {}
        for key, image_id, v in sorted(zip(idx["key"], idx["image_id"], variants), key=lambda t: (t[1], t[2])):
            by_image.setdefault(image_id, []).append(key)
        missing = [i for i in split.image_ids if i not in by_image]
        if missing:
            raise ValueError(f"{index_path}: no latents for {len(missing)} training images (e.g. {missing[:3]}); "
                             "rerun the latents_vggface2 stage after ingest_vggface2")
        self.keys = [by_image[i] for i in split.image_ids]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        keys = self.keys[i]
        k = 0 if len(keys) == 1 else int(np.random.default_rng([self.seed, self.epoch, i]).integers(len(keys)))
        z = self.reader.get(keys[k])
        return torch.from_numpy(np.asarray(z, dtype=np.float32)), int(self.split.labels[i]), i


class EpochBatches(Sampler[list[int]]):
    """Deterministic, resumable batch order of one epoch (a ``batch_sampler``).

    The permutation depends only on ``(seed, epoch)``; ``skip`` drops the first batches (resume);
    with ``world > 1`` each rank takes ``batch[rank::world]`` of every global batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, skip: int = 0, max_batches: int | None = None,
                 rank: int = 0, world: int = 1, shuffle: bool = True) -> None:
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} must be divisible by the number of processes {world}")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.skip, self.max_batches, self.rank, self.world, self.shuffle = skip, max_batches, rank, world, shuffle

    def num_batches(self) -> int:
        full = self.n // self.batch_size
        return full if self.max_batches is None else min(full, self.max_batches)

    def __len__(self) -> int:
        return max(0, self.num_batches() - self.skip)

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        for b in range(self.skip, self.num_batches()):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch[self.rank :: self.world].tolist()


def augment(images: torch.Tensor, resize: int, crop: int, grayscale_p: float, generator: torch.Generator,
            train: bool = True) -> torch.Tensor:
    """uint8 ``(B, 3, h, w)`` -> float 0..255 ``(B, 3, crop, crop)`` on ``images.device``.

    Bilinear resize to ``resize``, then a random crop (centre crop when ``train`` is false) and
    random grayscale with probability ``grayscale_p`` (train only). Random draws come from the CPU
    ``generator`` so a batch is reproducible on any device.
    """
    b = images.shape[0]
    x = images.float()
    if x.shape[-2:] != (resize, resize):
        x = torch.nn.functional.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False)
    span = resize - crop
    if train and span > 0:
        oy = torch.randint(0, span + 1, (b,), generator=generator)
        ox = torch.randint(0, span + 1, (b,), generator=generator)
    else:
        oy = ox = torch.full((b,), span // 2)
    ar = torch.arange(crop)
    rows = (oy[:, None] + ar).to(x.device)  # (B, crop)
    cols = (ox[:, None] + ar).to(x.device)
    bi = torch.arange(b, device=x.device)[:, None, None]
    x = x.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, 3, crop, crop)
    if train and grayscale_p > 0:
        grey_mask = (torch.rand(b, generator=generator) < grayscale_p).to(x.device)
        w = torch.tensor(GREY, device=x.device).view(1, 3, 1, 1)
        grey = (x * w).sum(1, keepdim=True).expand_as(x)
        x = torch.where(grey_mask.view(b, 1, 1, 1), grey, x)
    return x.contiguous()
