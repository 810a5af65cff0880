"""Reader for AffectNet's manually annotated file lists (DESIGN.md section 4)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from facetransfer.data._files import (
    DatasetRoot,
    check_missing_images,
    csv_records,
    make_frame,
    parse_float,
    parse_float_array,
    parse_int,
)
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import AFFECTNET_DROPPED_IDS, EMOTIONS

SPLITS = ("training", "validation")
HEADER = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
          "facial_landmarks", "expression", "valence", "arousal")
LISTS_DIR = "Manually_Annotated_file_lists"
IMAGES_DIR = "Manually_Annotated_Images"
N_LANDMARKS = 68
_MAX_ID = max(AFFECTNET_DROPPED_IDS)
SCHEMA = {"path": "str", "rel_path": "str", "label": "int64", "face_box": object,
          "landmarks": object, "valence": "float64", "arousal": "float64", "line": "int64"}


def read(root: str | os.PathLike[str], split: str, *,
         missing_images: str = "error") -> pd.DataFrame:
    """One row per kept image of `split`, in file order.

    Columns: path (resolved image path), rel_path, label (0..7), face_box
    (x, y, w, h ints), landmarks ((68, 2) float32), valence, arousal, line
    (1-based CSV line). Ids 8-10 and rows with face_width < 0 are dropped;
    duplicates are kept. attrs["skipped_images"] counts rows dropped by
    missing_images="skip".
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}; got {split!r}")
    check_missing_images(missing_images)
    dataset = DatasetRoot(root)
    csv_path = dataset.require_file(Path(LISTS_DIR, f"{split}.csv"), "AffectNet file list")
    rows = []
    skipped = 0
    for line, fields in csv_records(csv_path, HEADER, headerless=_looks_like_data):
        record = _parse_record(csv_path, line, fields)
        if record is None:
            continue
        image = _image_path(dataset, csv_path, line, fields[0])
        if not image.is_file():
            if missing_images == "skip":
                skipped += 1
                continue
            raise DatasetFormatError(csv_path, f"image not found: {image}", line)
        rows.append((str(image), fields[0], *record, line))
    return make_frame(rows, SCHEMA, skipped_images=skipped)


def _looks_like_data(fields: list[str]) -> bool:
    """A first row with 9 fields whose box and expression are integers is data, not a header.

    Some distributed copies of validation.csv have no header row.
    """
    return len(fields) == len(HEADER) and all(f.strip().lstrip("-").isdigit() for f in fields[1:5] + [fields[6]])


def _parse_record(path: Path, line: int, fields: list[str]) -> tuple | None:
    """(label, face_box, landmarks, valence, arousal), or None for a dropped row."""
    # Check the drop rules first: dropped rows need no further validation.
    label = parse_int(fields[6], path, line, "expression")
    if label in AFFECTNET_DROPPED_IDS:
        return None
    if not 0 <= label < len(EMOTIONS):
        raise DatasetFormatError(
            path, f"unknown expression id {label}, expected 0..{_MAX_ID}", line)
    face_box = tuple(parse_int(fields[i], path, line, HEADER[i]) for i in range(1, 5))
    if face_box[2] < 0:  # real AffectNet marks faces it could not box with width -1
        return None
    landmarks = _parse_landmarks(path, line, fields[5])
    valence = parse_float(fields[7], path, line, "valence")
    arousal = parse_float(fields[8], path, line, "arousal")
    return label, face_box, landmarks, valence, arousal


def _parse_landmarks(path: Path, line: int, text: str) -> np.ndarray:
    values = text.split(";")
    if len(values) != 2 * N_LANDMARKS:
        raise DatasetFormatError(
            path, f"facial_landmarks: expected {2 * N_LANDMARKS} numbers "
            f"({N_LANDMARKS} x,y pairs) joined by ';', got {len(values)}", line)
    return parse_float_array(values, path, line, "facial_landmarks").reshape(N_LANDMARKS, 2)


def _image_path(dataset: DatasetRoot, csv_path: Path, line: int, rel: str) -> Path:
    if not rel.strip():
        raise DatasetFormatError(csv_path, "subDirectory_filePath: expected an image path, got ''",
                                 line)
    return dataset.resolve(Path(IMAGES_DIR, rel), source=csv_path, line=line)
