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

import hashlib
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
            raise FileNotFoundError(
                f"{path}: VGGFace2 PNG missing (image {self.split.image_ids[i]}). Rerun `dvc repro ingest_vggface2`."
            )
        rgb = read_rgb(path)
        return torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), int(self.split.labels[i]), i


class LatentShardDataset(Dataset):
    """``(float tensor N x 14 x 14, label, index)`` from ``latents_vggface2@<codec>`` shards.

    The shards hold K variants per image (``encode.vggface2.variants``): 0 = centre crop, 1..K-1 =
    random crop 224 of the 256 resize + grey with p = 0.2 (thesis §6.3, the augmentation ResNet50
    gets). ``train=False`` (validation) always reads variant 0. ``train=True`` reads, for training
    epoch ``draw`` (0, 1, ... over phase 1 then phase 2, :meth:`set_draw`), the ``draw``-th entry of
    a per-image permutation of 1..K-1 fixed by ``(seed, image_id)``: a fresh random variant every
    epoch, never the same one twice (drawn without replacement), never the centre crop.
    """

    def __init__(self, split: Split, index_path: Path, seed: int = 0, train: bool = True) -> None:
        from cdfv.shards import LatentShardReader

        if not Path(index_path).is_file():
            raise FileNotFoundError(
                f"{index_path}: VGGFace2 latent shards missing. Run `dvc repro latents_vggface2@<codec>` "
                "or train the codec online (train.cresnet39.online_codecs)"
            )
        self.split, self.reader, self.seed, self.train = split, LatentShardReader(index_path), seed, train
        self.index_path = Path(index_path)
        idx = self.reader.index.to_pydict()
        variants = idx.get("variant") or [0] * len(idx["key"])
        by_image: dict[str, dict[int, str]] = {}
        for key, image_id, v in zip(idx["key"], idx["image_id"], variants):
            by_image.setdefault(image_id, {})[int(v)] = key
        missing = [i for i in split.image_ids if i not in by_image]
        if missing:
            raise ValueError(
                f"{index_path}: no latents for {len(missing)} training images (e.g. {missing[:3]}); "
                "rerun the latents_vggface2 stage after ingest_vggface2"
            )
        self.variants = len(by_image[split.image_ids[0]])
        for image_id in split.image_ids:
            have = by_image[image_id]
            if sorted(have) != list(range(self.variants)):
                raise ValueError(
                    f"{index_path}: image {image_id} has variants {sorted(have)}, expected 0..{self.variants - 1} "
                    "like the others (an encoding failure skipped with encode.on_error: skip?); "
                    "rerun latents_vggface2 with encode.on_error: fail"
                )
        self.keys = [[by_image[i][v] for v in range(self.variants)] for i in split.image_ids]
        self.draw = 0

    def set_draw(self, draw: int) -> None:
        """Select training epoch ``draw`` (phase-1 epochs first, then phase 2's)."""
        if self.train and draw >= self.variants - 1:
            raise ValueError(
                f"{self.index_path}: {self.variants} latent variants per image (centre + {self.variants - 1} random) "
                f"but training epoch {draw + 1} needs a {draw + 1}th distinct random variant; set "
                f"encode.vggface2.variants >= {draw + 2} (phase1 + phase2 epochs + 1) and rerun latents_vggface2"
            )
        self.draw = draw

    def variant(self, i: int) -> int:
        """The variant image ``i`` reads at the current draw (0 when not training)."""
        if not self.train:
            return 0
        key = int.from_bytes(hashlib.sha256(self.split.image_ids[i].encode()).digest()[:8], "little")
        order = np.random.default_rng([self.seed, key]).permutation(self.variants - 1) + 1
        return int(order[self.draw])

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        z = self.reader.get(self.keys[i][self.variant(i)])
        return torch.from_numpy(np.asarray(z, dtype=np.float32)), int(self.split.labels[i]), i


class EpochBatches(Sampler[list[int]]):
    """Deterministic, resumable batch order of one epoch (a ``batch_sampler``).

    The permutation depends only on ``(seed, epoch)``; ``skip`` drops the first batches (resume);
    with ``world > 1`` each rank takes ``batch[rank::world]`` of every global batch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        epoch: int,
        skip: int = 0,
        max_batches: int | None = None,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
    ) -> None:
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
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        )
        for b in range(self.skip, self.num_batches()):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch[self.rank :: self.world].tolist()


def augment(
    images: torch.Tensor, resize: int, crop: int, grayscale_p: float, generator: torch.Generator, train: bool = True
) -> torch.Tensor:
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
