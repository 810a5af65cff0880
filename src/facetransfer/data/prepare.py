"""`prepare`: decode, crop, resize once, and store each dataset as memory-mappable arrays.

Layout of prepared/<dataset>/ (N = rows kept, S = image_size):
  images.npy      (N, S, S, 3) uint8
  landmarks.npy   (N, 68, 2) float32 in crop pixels, NaN where the dataset has none
  masks.npy       (M, 17, S, ceil(S/8)) uint8: AU region masks of the rows in `prepare.mask_splits`
                  (index.csv column mask_row, -1 for none), bits packed along the width
  footprints.npy  synthetic data only, rows as masks.npy: each AU's counterfactual footprint in the crop
                  (data/counterfactuals.py; index.csv column footprint says which rows have them)
  counterfactual_images.npy + counterfactuals.csv   synthetic AffectNet only: the test images again
                  with one AU off (row: the original's row, au, image_row: the row of the .npy)
  upper.npy       CK+ only: images with the face below the nose blanked (AU5 vs AU26 control)
  index.csv       one row per array row: labels, AU columns, split, source path
  train.csv / val.csv / test.csv (CK+: all.csv)   the split lists (rows of index.csv)
  meta.json       sizes, counts of dropped rows, class names, AU order

Images stream through worker processes and are appended row by row to the
.npy files (`NpyStream`), so peak memory does not grow with the number of images.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from facetransfer import __version__
from facetransfer.config import PrepareConfig
from facetransfer.data import affectnet, ckplus, counterfactuals, ferplus, unbc
from facetransfer.data._files import DatasetRoot
from facetransfer.data.crops import crop_resize, face_box_from_landmarks, landmarks_in_crop
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import ACTION_UNITS, CKPLUS_TO_AFFECTNET, EMOTIONS, FERPLUS_TO_AFFECTNET
from facetransfer.data.regions import au_region_masks, landmarks_66_to_68
from facetransfer.data.splits import drop_conflicting_duplicates, select_pain_frames, stratified_split
from facetransfer.fsutil import atomic_dir, write_json_atomic

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Sample:
    """What a worker needs to make one stored row."""

    path: str | None  # image file; None when `pixels` holds the image (FER+)
    pixels: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None  # x, y, w, h crop box; None = whole image
    landmarks: np.ndarray | None = None  # (68, 2) in source pixels
    upper_cut: float | None = None  # CK+: blank below this fraction from nose tip to upper lip
    masked: bool = False  # compute AU region masks (needs landmarks)
    footprints: counterfactuals.Footprints | None = None  # synthetic: native footprints, cropped when masked


@dataclass(frozen=True)
class Processed:
    image: np.ndarray  # (S, S, 3) uint8
    landmarks: np.ndarray  # (68, 2) float32, NaN if unknown
    masks: np.ndarray | None  # (17, S, ceil(S/8)) packed bits
    upper: np.ndarray | None  # (S, S, 3) uint8
    footprints: np.ndarray | None = None  # (17, S, ceil(S/8)) packed bits
    error: str | None = None  # set when the image could not be read and errors are skipped


def _open(sample: Sample) -> Image.Image:
    if sample.pixels is not None:
        return Image.fromarray(sample.pixels).convert("RGB")
    try:
        with Image.open(sample.path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DatasetFormatError(sample.path, "image not found") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetFormatError(sample.path, f"image cannot be decoded ({err.__class__.__name__})") from None


def _face_box(sample: Sample, image: Image.Image) -> tuple[float, float, float, float]:
    """The sample's crop box (x, y, w, h), or the whole image. A box with no area (a ZeroDivisionError in the
    crop) or outside the image (a black crop) raises DatasetFormatError naming the image."""
    if sample.box is None:
        return 0, 0, image.width, image.height
    x, y, w, h = sample.box
    where = sample.path if sample.path is not None else "<pixels>"
    if not (w > 0 and h > 0):
        raise DatasetFormatError(where, f"face box (x {x}, y {y}, w {w}, h {h}) has no area; expected w and h > 0")
    if x >= image.width or y >= image.height or x + w <= 0 or y + h <= 0:
        raise DatasetFormatError(where, f"face box (x {x}, y {y}, w {w}, h {h}) lies outside the "
                                        f"{image.width}x{image.height} image; expected it to overlap the image")
    return sample.box


def process(sample: Sample, size: int, skip_errors: bool = False) -> Processed:
    """Decode, crop and resize one image; landmarks into the crop; AU masks from landmarks."""
    try:
        image = _open(sample)
        box = _face_box(sample, image)
    except DatasetFormatError as err:
        if not skip_errors:
            raise
        blank = np.zeros((size, size, 3), np.uint8)
        return Processed(blank, np.full((68, 2), np.nan, np.float32), None, None, error=str(err))
    crop = np.asarray(crop_resize(image, box, size))
    lm = np.full((68, 2), np.nan, np.float32)
    packed = upper = footprints = None
    if sample.landmarks is not None:
        lm = landmarks_in_crop(sample.landmarks, box, size).astype(np.float32)
        if sample.masked:
            packed = np.packbits(au_region_masks(lm, size, size), axis=-1)
    if sample.masked and sample.footprints is not None:
        footprints = counterfactuals.crop_footprints(sample.footprints, image.width, box, size)
    if sample.upper_cut is not None:
        upper = _blank_lower_face(crop, lm, sample.upper_cut)
    return Processed(crop, lm, packed, upper, footprints=footprints)


def _blank_lower_face(image: np.ndarray, lm: np.ndarray, cut: float) -> np.ndarray:
    # Prajod et al. crop the mouth away so an AU5 probe cannot lean on AU26 (jaw drop).
    y = int(np.ceil(lm[33, 1] + cut * (lm[51, 1] - lm[33, 1])))
    out = image.copy()
    out[max(0, y):] = 0
    return out


class _Worker:
    """Picklable callable for the pool: process() with fixed settings."""

    def __init__(self, size: int, skip_errors: bool):
        self.size, self.skip_errors = size, skip_errors

    def __call__(self, sample: Sample) -> Processed:
        return process(sample, self.size, self.skip_errors)


def _processed(samples: list[Sample], worker: _Worker, workers: int) -> Iterator[Processed]:
    if workers <= 1:
        yield from map(worker, samples)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(worker, samples, chunksize=64)


class NpyStream:
    """An .npy file written row by row, in order: no array, and no memory map, is held.

    (A memory map would keep every written page resident; streaming keeps peak
    memory flat however many images there are.)
    """

    def __init__(self, path: Path, dtype: type, shape: tuple[int, ...]):
        self.dtype, self.shape, self.written = np.dtype(dtype), shape, 0
        self.file = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(self.file, header)

    def write(self, row: np.ndarray | None) -> None:
        """Append one row (None writes zeros, e.g. for an unreadable image that was skipped)."""
        row = np.zeros(self.shape[1:], self.dtype) if row is None else np.ascontiguousarray(row, self.dtype)
        if row.shape != self.shape[1:]:
            raise ValueError(f"row of shape {row.shape}, expected {self.shape[1:]}")
        self.file.write(row.tobytes())
        self.written += 1

    def close(self) -> None:
        self.file.close()
        if self.written != self.shape[0]:
            raise RuntimeError(f"{self.file.name}: wrote {self.written} rows, header says {self.shape[0]}")


def write_arrays(folder: Path, samples: list[Sample], cfg: PrepareConfig, name: str,
                 progress: Progress | None = None, workers: int = 2) -> tuple[list[str | None], np.ndarray]:
    """Stream samples into folder/*.npy.

    Returns per row None or the read error that was skipped, and per row its
    row in masks.npy (-1 when it has no masks).
    """
    n, s = len(samples), cfg.image_size
    masked = np.array([smp.masked and smp.landmarks is not None for smp in samples], dtype=bool)
    mask_rows = np.where(masked, np.cumsum(masked) - 1, -1)
    images = NpyStream(folder / "images.npy", np.uint8, (n, s, s, 3))
    landmarks = NpyStream(folder / "landmarks.npy", np.float32, (n, 68, 2))
    masks = NpyStream(folder / "masks.npy", np.uint8, (int(masked.sum()), len(ACTION_UNITS), s, (s + 7) // 8)) \
        if masked.any() else None
    # Footprints share the masks' rows; rows without any (none rendered) stay empty.
    footprints = NpyStream(folder / "footprints.npy", np.uint8, masks.shape) \
        if masks is not None and any(smp.footprints is not None for smp in samples) else None
    upper = NpyStream(folder / "upper.npy", np.uint8, (n, s, s, 3)) \
        if any(smp.upper_cut is not None for smp in samples) else None
    worker = _Worker(s, cfg.missing_images == "skip")
    errors: list[str | None] = []
    for k, out in enumerate(_processed(samples, worker, workers)):
        images.write(out.image)
        landmarks.write(out.landmarks)
        if masked[k]:
            masks.write(out.masks)
            if footprints is not None:
                footprints.write(out.footprints)
        if upper is not None:
            upper.write(out.upper)
        errors.append(out.error)
        if progress and ((k + 1) % 500 == 0 or k + 1 == n):
            progress(name, k + 1, n)
    for stream in (images, landmarks, masks, footprints, upper):
        if stream is not None:
            stream.close()
    return errors, mask_rows


def write_counterfactual_images(folder: Path, planned: list[tuple[int, int, Sample]], readable: np.ndarray,
                                cfg: PrepareConfig, workers: int = 2) -> int:
    """counterfactual_images.npy (K, S, S, 3) and counterfactuals.csv (row, au, image_row); returns K.

    Only counterfactuals of readable rows are kept; with `missing_images: skip` an unreadable
    counterfactual image is left out too (its original then has no counterfactual for that AU).
    """
    kept = [(row, au, smp) for row, au, smp in planned if readable[row]]
    worker = _Worker(cfg.image_size, cfg.missing_images == "skip")
    images = [out for out in _processed([smp for _, _, smp in kept], worker, workers)]
    good = [k for k, out in enumerate(images) if out.error is None]
    stream = NpyStream(folder / "counterfactual_images.npy", np.uint8, (len(good), cfg.image_size, cfg.image_size, 3))
    for k in good:
        stream.write(images[k].image)
    stream.close()
    pd.DataFrame({"row": [kept[k][0] for k in good], "au": [kept[k][1] for k in good],
                  "image_row": np.arange(len(good))}).to_csv(folder / "counterfactuals.csv", index=False)
    return len(good)


def au_columns(aus: pd.Series) -> pd.DataFrame:
    """AU dicts -> columns au_1..au_43: the coded intensity, NaN where the AU is absent.

    0 is kept: in CK+ it means "present, intensity not given".
    """
    return pd.DataFrame({f"au_{au}": [d.get(au, np.nan) for d in aus] for au in ACTION_UNITS}, index=aus.index)


def read_groundtruth(root: Path) -> pd.DataFrame | None:
    """The synthetic benchmark's groundtruth.csv (true AUs, 68 landmarks), or None for real data."""
    path = root / "groundtruth.csv"
    if not path.is_file():
        return None
    gt = pd.read_csv(path, dtype={"image": str, "emotion": str, "side_12": str, "side_14": str}, keep_default_na=False)
    gt["gt_landmarks"] = [np.array(s.split(";"), float).reshape(68, 2) for s in gt.pop("landmarks")]
    return gt.rename(columns={f"au_{au}": f"gt_au_{au}" for au in ACTION_UNITS}
                     | {"emotion": "gt_emotion", "side_12": "gt_side_12", "side_14": "gt_side_14"})


# --- per dataset: read the native files, choose rows and splits, describe samples ---

@dataclass
class Prepared:
    """Rows to store (index.csv columns, one per sample), their samples, and dataset facts."""

    index: pd.DataFrame
    samples: list[Sample]
    splits: tuple[str, ...]
    facts: dict
    # Synthetic AffectNet: (row of index, AU switched off, its counterfactual image) of the test rows.
    counterfactual_images: list[tuple[int, int, Sample]] = field(default_factory=list)


def _rel(paths: pd.Series, root: Path) -> pd.Series:
    base = root.resolve()
    return paths.map(lambda p: Path(p).relative_to(base).as_posix())


def _join_gt(frame: pd.DataFrame, gt: pd.DataFrame | None, key: pd.Series) -> pd.DataFrame:
    if gt is None:
        return frame
    joined = frame.assign(_key=key.values).merge(gt, how="left", left_on="_key", right_on="image")
    joined.index = frame.index
    return joined.drop(columns=["_key", "image"])


def _gt_au_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if c.startswith("gt_") and c != "gt_landmarks"]]


def _footprints(root: Path, frame: pd.DataFrame, keys: pd.Series) -> tuple:
    """(the dataset's counterfactuals or None, per row its footprints or None).

    Footprints need the AUs each image shows (groundtruth.csv): without them none are used.
    """
    found = counterfactuals.read(root) if "gt_au_1" in frame else None
    if found is None:
        return None, [None] * len(frame)
    return found, found.by_image(keys, counterfactuals.shown_aus(frame))


def _disjoint(train: pd.Series, test: pd.Series, where: Path) -> None:
    """An image listed for training and for testing would score the model on what it learned: refused."""
    both = sorted(set(train) & set(test))
    if both:
        raise DatasetFormatError(where, f"{len(both)} image(s) also in the test (validation) list, e.g. {both[0]}; "
                                        "expected disjoint training and test lists")


def plan_affectnet(root: Path, cfg: PrepareConfig) -> Prepared:
    seed = cfg.seed
    train = affectnet.read(root, "training", missing_images=cfg.missing_images)
    test = affectnet.read(root, "validation", missing_images=cfg.missing_images)
    train, dup_train = drop_conflicting_duplicates(train, seed)
    test, dup_test = drop_conflicting_duplicates(test, seed)
    _disjoint(train["rel_path"], test["rel_path"], root / affectnet.LISTS_DIR / "training.csv")
    where = f"{root / affectnet.LISTS_DIR / 'training.csv'} (split by prepare.affectnet.val_fraction)"
    train = train.assign(split=stratified_split(train["label"], cfg.affectnet.val_fraction, seed, where))
    frame = pd.concat([train.sort_values("split", kind="stable"), test.assign(split="test")], ignore_index=True)
    frame = _join_gt(frame, read_groundtruth(root), frame["rel_path"])
    found, footprints = _footprints(root, frame, frame["rel_path"])
    samples = [Sample(p, box=tuple(b), landmarks=lm, footprints=f)
               for p, b, lm, f in zip(frame["path"], frame["face_box"], frame["landmarks"], footprints, strict=True)]
    index = pd.concat([frame[["split", "label", "rel_path", "valence", "arousal"]]
                       .assign(emotion=frame["label"].map(lambda k: EMOTIONS[k])), _gt_au_frame(frame)], axis=1)
    facts = {"training_" + k: v for k, v in dup_train.items()} | {"validation_" + k: v for k, v in dup_test.items()}
    facts["skipped_images"] = train.attrs.get("skipped_images", 0) + test.attrs.get("skipped_images", 0)
    images = _counterfactual_images(root, found, frame) if found else []
    return Prepared(index, samples, ("train", "val", "test"), facts, images)


def _counterfactual_images(root: Path, found: counterfactuals.Counterfactuals, frame: pd.DataFrame) -> list:
    """(row, AU, Sample) of every kept counterfactual test image, cropped with its original's face box."""
    dataset = DatasetRoot(root / counterfactuals.FOLDER)
    out = []
    paths_per_row = found.paths(frame["rel_path"])
    for row, (split, box, paths) in enumerate(zip(frame["split"], frame["face_box"], paths_per_row, strict=True)):
        if split != "test":
            continue
        for au, path in sorted(paths.items()):
            out.append((row, au, Sample(str(dataset.resolve(path)), box=tuple(box))))
    return out


def plan_unbc(root: Path, cfg: PrepareConfig) -> Prepared:
    u = cfg.unbc
    frames = unbc.read(root, missing_images=cfg.missing_images)
    unknown = sorted(set(u.test_subjects) - set(frames["subject"]))
    if unknown:
        raise DatasetFormatError(root / "Images", f"prepare.unbc.test_subjects {unknown} not found; "
                                 f"subjects are {sorted(frames['subject'].unique())}")
    is_test = frames["subject"].isin(u.test_subjects)
    chosen = select_pain_frames(frames[~is_test], u.train_frames + u.val_frames, cfg.seed)
    where = f"{root}: the selected frames (prepare.unbc.val_frames)"
    chosen = chosen.assign(split=stratified_split(chosen["pspi"] > 0, u.val_frames, cfg.seed, where))
    frame = pd.concat([chosen.sort_values("split", kind="stable"), frames[is_test].assign(split="test")],
                      ignore_index=True)
    rel = _rel(frame["path"], root)
    frame = _join_gt(frame, read_groundtruth(root), rel)
    samples = []
    for path, lm66 in zip(frame["path"], frame["landmarks"], strict=True):
        lm = None if lm66 is None else landmarks_66_to_68(lm66)
        samples.append(Sample(path, box=face_box_from_landmarks(lm) if lm is not None else None, landmarks=lm))
    index = pd.concat([frame[["split", "subject", "sequence", "frame", "pspi"]]
                       .assign(label=(frame["pspi"] > 0).astype(int), rel_path=rel),
                       au_columns(frame["aus"]), _gt_au_frame(frame)], axis=1)
    return Prepared(index, samples, ("train", "val", "test"), {"test_subjects": list(u.test_subjects)})


def plan_ckplus(root: Path, cfg: PrepareConfig) -> Prepared:
    peaks = ckplus.read(root, missing_images=cfg.missing_images)
    rel = _rel(peaks["path"], root)
    frame = _join_gt(peaks, read_groundtruth(root), rel)
    _, footprints = _footprints(root, frame, rel)
    samples = [Sample(p, box=face_box_from_landmarks(lm), landmarks=lm, upper_cut=cfg.ckplus.upper_face_cut,
                      footprints=f) for p, lm, f in zip(frame["path"], frame["landmarks"], footprints, strict=True)]
    label = frame["emotion"].map(lambda c: -1 if pd.isna(c) else CKPLUS_TO_AFFECTNET[int(c)])
    index = pd.concat([frame[["subject", "sequence", "frame"]]
                       .assign(split="all", emotion_code=frame["emotion"], label=label, rel_path=rel),
                       au_columns(frame["aus"]), _gt_au_frame(frame)], axis=1)
    return Prepared(index, samples, ("all",), {"with_emotion": int(frame["emotion"].notna().sum())})


def plan_ferplus(root: Path, cfg: PrepareConfig) -> Prepared:
    frame = ferplus.read(root)
    dropped = frame.attrs.get("dropped", {})
    frame = _join_gt(frame, read_groundtruth(root), frame["row"].astype(str))
    gt_lm = frame["gt_landmarks"] if "gt_landmarks" in frame else pd.Series([None] * len(frame), index=frame.index)
    samples = [Sample(None, pixels=px, landmarks=lm if isinstance(lm, np.ndarray) else None)
               for px, lm in zip(frame["pixels"], gt_lm, strict=True)]
    usage_split = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    index = pd.concat([frame[["image_name"]].assign(source_row=frame["row"],
        split=frame["usage"].map(usage_split), label=frame["label"].map(lambda k: FERPLUS_TO_AFFECTNET[k]),
        ferplus_label=frame["label"]), _gt_au_frame(frame)], axis=1)
    return Prepared(index, samples, ("train", "val", "test"), {"dropped": dropped})


PLANNERS = {"affectnet": plan_affectnet, "unbc": plan_unbc, "ckplus": plan_ckplus, "ferplus": plan_ferplus}


def prepare_dataset(name: str, data_root: Path, out_root: Path, cfg: PrepareConfig,
                    progress: Progress | None = None, workers: int = 2) -> dict:
    """Prepare data_root/<name> into out_root/<name> (replaced only when complete); returns meta."""
    plan = PLANNERS[name](Path(data_root) / name, cfg)
    index = plan.index.reset_index(drop=True)
    if index.empty:  # an empty set written as a finished dataset would pass every later stage's file checks
        raise DatasetFormatError(Path(data_root) / name, "no labelled images found; expected at least one")
    samples = [replace(smp, masked=split in cfg.mask_splits)
               for smp, split in zip(plan.samples, index["split"], strict=True)]
    with atomic_dir(Path(out_root) / name) as tmp:
        errors, mask_rows = write_arrays(tmp, samples, cfg, name, progress, workers)
        index.insert(0, "row", np.arange(len(index)))
        index["mask_row"] = mask_rows
        index["readable"] = [e is None for e in errors]
        index["footprint"] = (mask_rows >= 0) & np.array([smp.footprints is not None for smp in samples], bool)
        index.to_csv(tmp / "index.csv", index=False)
        n_counterfactual = write_counterfactual_images(tmp, plan.counterfactual_images, index["readable"].to_numpy(),
                                                       cfg, workers) if plan.counterfactual_images else 0
        counts = {}
        for split in plan.splits:
            rows = index[(index["split"] == split) & index["readable"]]
            if rows.empty:
                raise DatasetFormatError(Path(data_root) / name, f"its {split} split has no readable images; "
                                                                 "expected at least one")
            rows.to_csv(tmp / f"{split}.csv", index=False)
            counts[split] = len(rows)
        unreadable = [e for e in errors if e is not None]
        meta = {"dataset": name, "rows": len(index), "splits": counts, "image_size": cfg.image_size,
                "action_units": list(ACTION_UNITS), "emotions": list(EMOTIONS), "config": cfg.model_dump(mode="json"),
                "unreadable_images": len(unreadable), "unreadable_examples": unreadable[:10],
                "footprint_rows": int(index["footprint"].sum()), "counterfactual_images": n_counterfactual,
                "facts": plan.facts, "facetransfer_version": __version__}
        write_json_atomic(tmp / "meta.json", meta)
    return meta


def prepare(data_root: str | Path, out_root: str | Path, cfg: PrepareConfig,
            datasets: tuple[str, ...] = tuple(PLANNERS), progress: Progress | None = None,
            workers: int = 2) -> dict[str, dict]:
    """Prepare each named dataset; returns {dataset: meta}."""
    unknown = sorted(set(datasets) - set(PLANNERS))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {list(PLANNERS)}")
    return {name: prepare_dataset(name, Path(data_root), Path(out_root), cfg, progress, workers) for name in datasets}
