"""Prepared arrays as torch datasets, and the augmentations of the paper.

Images stay memory-mapped uint8 (N, H, W, 3); a sample is copied out and
augmented only when the loader asks for it, and each batch is normalised once.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from facetransfer.config import AugmentSpec
from facetransfer.data.errors import DatasetFormatError
from facetransfer.fsutil import load_array

# The normalisation of torchvision's ImageNet weights, used for every init so a
# scratch model and an ImageNet model see the same input scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Split:
    """One split of a prepared dataset: images (memory-mapped), labels, and their row ids."""

    images: np.ndarray  # (N_all, H, W, 3) uint8, the whole prepared array
    rows: np.ndarray  # (N,) indices into `images`
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.rows)


def load_split(prepared: str | Path, split: str, n_classes: int | None = None) -> Split:
    """The `split` rows (train/val/test/all) of a prepared dataset folder. A list whose rows or labels
    cannot serve (a row past the images, a label outside 0..n_classes-1) raises DatasetFormatError naming
    the list: training would fail later with an IndexError, or silently learn a wrong class count."""
    prepared = Path(prepared)
    table = prepared / f"{split}.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: split list not found (run `facetransfer prepare` first)")
    frame = pd.read_csv(table)
    images = load_array(prepared / "images.npy")
    rows = _column(frame, "row", table, len(images), "images in images.npy")
    labels = _column(frame, "label", table, n_classes, "classes")
    return Split(images, rows, labels)


def _column(frame: pd.DataFrame, name: str, table: Path, limit: int | None, counted: str) -> np.ndarray:
    """Column `name` as int64, every value in 0..limit-1 (`limit` `counted`, e.g. 8 classes; None: any >= 0)."""
    if name not in frame or not pd.api.types.is_integer_dtype(frame[name]):
        raise DatasetFormatError(table, f"column {name!r} missing or not whole numbers; expected the split list "
                                        "`facetransfer prepare` writes (row, label)")
    values = frame[name].to_numpy(np.int64)
    bad = (values < 0) | (values >= (np.inf if limit is None else limit))
    if bad.any():
        first = int(np.argmax(bad))
        allowed = ">= 0" if limit is None else f"0..{limit - 1}, {limit} {counted}"
        raise DatasetFormatError(table, f"{name} {values[first]} out of range; expected {allowed}",
                                 line=first + 2)  # 1-based, after the header
    return values


def data_digest(prepared: str | Path, splits: tuple[str, ...] = ("train", "val")) -> str:
    """Identity of the data a run trains on: the split lists and the whole image array, hashed.

    Part of every training run's resume key, so a checkpoint written on other
    data (a regenerated benchmark, another dataset in the same folder) starts
    over instead of being resumed. Hashing reads images.npy once (about 1 s per
    GB); a training epoch reads it anyway.
    """
    prepared = Path(prepared)
    digest = hashlib.sha256()
    for name in (*(f"{split}.csv" for split in splits), "images.npy"):
        with open(prepared / name, "rb") as f:
            digest.update(name.encode() + b"\0" + hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:16]


def build_transform(augment: AugmentSpec | None) -> v2.Compose:
    """The random augmentations, on uint8 (3, H, W) tensors (conversion happens per batch, in `normalize`).

    The paper's Keras settings map as: rotation_range -> degrees, width/height
    shift -> translate, shear_range -> shear factor (converted to degrees),
    zoom_range -> isotropic scale; `grayscale` (ours) -> RandomGrayscale. Flip comes last so that, with flip as the only
    augmentation, its random draw is the only one (training/cached.py relies on it).

    The affine warp runs on a PIL image (PIL's C resampler), not on the tensor (torchvision's
    grid_sample in float): the whole transform is 2.9x faster per 224 px image on one core (1.4x
    at 64 px), and 8 loader workers deliver 7,101 instead of 3,536 images/s on the H200 machine
    (bench/gpu_paper_profile.py), headroom for machines with fewer cores per GPU. Same random
    draws; the nearest-neighbour output differs from the tensor path's in ~0.1 % of pixels.
    """
    ops: list[v2.Transform] = []
    if augment is not None and augment.geometric:
        shear_deg = float(np.degrees(np.arctan(augment.shear)))
        ops += [v2.ToPILImage(),
                v2.RandomAffine(degrees=augment.rotation, translate=(augment.shift, augment.shift),
                                scale=(1 - augment.zoom, 1 + augment.zoom), shear=(-shear_deg, shear_deg)),
                v2.PILToTensor()]
    if augment is not None and augment.grayscale > 0:
        ops.append(v2.RandomGrayscale(p=augment.grayscale))  # keeps 3 channels
    if augment is not None and augment.hflip:
        ops.append(v2.RandomHorizontalFlip(p=0.5))
    return v2.Compose(ops or [v2.Identity()])


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 scaled to [0, 1] and normalised with the ImageNet statistics.

    Done once per batch rather than per image (measured ~5 % of a CPU training
    step per image); on a GPU the batch also travels as uint8, 4x less data.
    """
    return F.normalize(F.to_dtype(batch, torch.float32, scale=True), *_imagenet_stats(batch.device))


@functools.cache
def _imagenet_stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (3,) mean and std as float32 tensors on `device`, made once per device.

    Given Python lists, torchvision's normalize copies them to the device on every call, and a
    copy from ordinary host memory makes the host wait for the GPU: two stalls per training step
    on CUDA (bench/gpu_paper_profile.py --part trace). Same numbers as the lists, bit for bit.
    """
    return (torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device),
            torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device))


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch, a 64-bit integer.

    Drawn from (seed, epoch, index) alone, so a sample is augmented the same way
    whichever process draws it: results do not depend on the DataLoader's worker
    count. numpy's SeedSequence mixes the three numbers (neighbouring indices get
    unrelated streams, which seed * K + index would not guarantee).
    """
    return int(np.random.SeedSequence((seed, epoch, index)).generate_state(1, np.uint64)[0])


class ImageDataset(Dataset):
    """(image (3, H, W) uint8, label) pairs of a split, augmented on access; see `normalize`.

    Each sample's random augmentation draws from its own stream, seeded by
    `sample_seed(seed, epoch, index)`; the training loop calls `set_epoch` before each
    epoch, like torch's DistributedSampler. The global RNG is restored afterwards, so
    dropout draws the same numbers with or without loader workers.
    """

    def __init__(self, split: Split, transform: v2.Compose, seed: int = 0):
        self.split, self.transform, self.seed, self.epoch = split, transform, seed, 0
        self.random = not all(isinstance(t, v2.Identity) for t in transform.transforms)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # np.array copies the row out of the memory map: (H, W, 3) -> (3, H, W)
        image = torch.from_numpy(np.array(self.split.images[self.split.rows[i]])).permute(2, 0, 1)
        if self.random:
            image = _seeded(self.transform, image, sample_seed(self.seed, self.epoch, i))
        return image, int(self.split.labels[i])


def _seeded(transform: v2.Compose, image: torch.Tensor, seed: int) -> torch.Tensor:
    """`transform(image)` with torch's global RNG seeded to `seed`, its previous state restored after.

    torchvision's transforms draw from the global generator and take no generator argument.
    (torch.random.fork_rng does the same but costs ~15x more per sample.)
    """
    generator = torch.default_generator
    saved = generator.get_state()
    generator.manual_seed(seed)
    try:
        return transform(image)
    finally:
        generator.set_state(saved)


def class_counts(split: Split, n_classes: int) -> np.ndarray:
    """(n_classes,) number of training samples per class."""
    return np.bincount(split.labels, minlength=n_classes)
