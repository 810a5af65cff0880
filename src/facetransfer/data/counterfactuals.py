"""Counterfactual ground truth of the synthetic benchmark: where each AU is, measured by switching it off.

For every image of the splits where explanations are scored (the AffectNet-like test list, the
CK+-like peak frames) `synth` renders the image again once per AU it shows, with that AU alone
switched off and everything else identical, and records the pixels that changed: the AU's
footprint. For the AffectNet-like test list it also keeps those counterfactual images, the test
sets of the `necessity` stage. Layout under <dataset>/counterfactuals/ (real datasets have none):

  index.csv        image, au, footprint, path: one row per (image, AU it shows); image is the key
                   of groundtruth.csv, footprint a row of footprints.npy, path the counterfactual
                   image under counterfactuals/ ("" when only the footprint was kept)
  footprints.npy   (K, H, ceil(W/8)) uint8: changed pixels, bits packed along the width

`prepare` carries each footprint into the face crop (`footprint_in_crop`) and stores them beside
the landmark regions, which they replace wherever a score needs "where is AU k in this image".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from facetransfer.data.crops import crop_resize
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import ACTION_UNITS

FOLDER = "counterfactuals"
COLUMNS = ["image", "au", "footprint", "path"]

# One image's footprints as `prepare` passes them to its workers: ((au, packed (H, ceil(W/8)) uint8), ...).
Footprints = tuple[tuple[int, np.ndarray], ...]


@dataclass(frozen=True)
class Counterfactuals:
    index: pd.DataFrame  # COLUMNS, one row per (image, AU)
    footprints: np.ndarray  # (K, H, ceil(W/8)) uint8

    def by_image(self, keys: pd.Series, shown: list[set[int]]) -> list[Footprints | None]:
        """Per key (groundtruth.csv image key) the footprints of the AUs in `shown` (the AUs it shows).

        None when some shown AU has no footprint (the image was not rendered with counterfactuals,
        e.g. a training image); an image showing no AU has the empty footprint set ().
        """
        groups = {image: rows for image, rows in self.index.groupby("image", sort=False)}
        out: list[Footprints | None] = []
        for key, aus in zip(keys, shown, strict=True):
            rows = groups.get(key, self.index.iloc[:0])
            found = tuple((int(au), self.footprints[int(k)])
                          for au, k in zip(rows["au"], rows["footprint"], strict=True))
            out.append(found if {au for au, _ in found} == set(aus) else None)
        return out

    def paths(self, keys: pd.Series) -> list[dict[int, str]]:
        """Per key: AU -> counterfactual image path under counterfactuals/ (empty when none were kept)."""
        kept = self.index[self.index["path"] != ""]
        groups = {image: dict(zip(rows["au"].astype(int), rows["path"], strict=True))
                  for image, rows in kept.groupby("image")}
        return [groups.get(key, {}) for key in keys]


def shown_aus(frame: pd.DataFrame) -> list[set[int]]:
    """Per row of a frame joined with groundtruth.csv (gt_au_* columns): the AUs the image shows."""
    present = frame[[f"gt_au_{au}" for au in ACTION_UNITS]].to_numpy(dtype=float) > 0
    return [{au for au, on in zip(ACTION_UNITS, row, strict=True) if on} for row in present]


def read(root: Path) -> Counterfactuals | None:
    """root/counterfactuals/ of a synthetic dataset, checked; None when the dataset has none (real data)."""
    folder = Path(root) / FOLDER
    index_path, array_path = folder / "index.csv", folder / "footprints.npy"
    if not index_path.is_file():
        return None
    try:
        index = pd.read_csv(index_path, dtype={"image": str, "path": str}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DatasetFormatError(index_path, f"not a readable CSV ({err.__class__.__name__})") from None
    if list(index.columns) != COLUMNS:
        raise DatasetFormatError(index_path, f"header {list(index.columns)}, expected {COLUMNS}", 1)
    if not array_path.is_file():
        raise DatasetFormatError(array_path, "footprint array not found (expected a file beside index.csv)")
    try:
        footprints = np.load(array_path, mmap_mode="r")
    except ValueError as err:
        raise DatasetFormatError(array_path, f"not a readable .npy file ({err})") from None
    _check(index, footprints, index_path, array_path)
    return Counterfactuals(index, footprints)


def _check(index: pd.DataFrame, footprints: np.ndarray, index_path: Path, array_path: Path) -> None:
    if footprints.ndim != 3 or footprints.dtype != np.uint8:
        raise DatasetFormatError(array_path,
                                 f"expected (K, H, ceil(W/8)) uint8, got {footprints.shape} {footprints.dtype}")
    for column in ("au", "footprint"):
        if not pd.api.types.is_integer_dtype(index[column]):
            raise DatasetFormatError(index_path, f"column {column}: expected integers")
    bad = ~index["au"].isin(ACTION_UNITS) | (index["footprint"] < 0) | (index["footprint"] >= len(footprints))
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # 1-based, after the header
        raise DatasetFormatError(index_path, f"AU must be one of {list(ACTION_UNITS)} and footprint a row of "
                                 f"footprints.npy (0..{len(footprints) - 1})", line)
    if any(p.startswith("/") or ".." in Path(p).parts for p in index["path"]):
        raise DatasetFormatError(index_path, "a counterfactual image path leads outside counterfactuals/")


def footprint_in_crop(packed: np.ndarray, width: int, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """(size, size) bool: the crop's pixels computed from at least one changed native pixel.

    The footprint (H, ceil(W/8)) packed, native pixels, is cropped and resized exactly as the
    image is (`crop_resize`, bilinear). Bilinear weights are non-negative, so a crop pixel whose
    value can differ between the image and its counterfactual has a positive resized mask: the
    crop's changed pixels are a subset of this footprint (tested).
    """
    mask = np.unpackbits(packed, axis=-1, count=width).astype(np.uint8) * 255
    return np.asarray(crop_resize(Image.fromarray(mask, "L"), box, size)) > 0


def crop_footprints(footprints: Footprints, width: int, box: tuple[float, float, float, float],
                    size: int) -> np.ndarray:
    """(len(ACTION_UNITS), size, ceil(size/8)) uint8 packed: each AU's footprint in the crop, empty for AUs
    not shown."""
    out = np.zeros((len(ACTION_UNITS), size, size), dtype=bool)
    for au, packed in footprints:
        out[ACTION_UNITS.index(au)] = footprint_in_crop(packed, width, box, size)
    return np.packbits(out, axis=-1)
