"""Reader for the UNBC-McMaster Shoulder Pain archive (DESIGN.md section 4).

The images are the anchor: every Images/<subject>/<sequence>/<sequence><frame>.png
is one row, and its label files must exist; label files without an image are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from facetransfer.data._files import (
    DatasetRoot,
    check_missing_images,
    make_frame,
    read_aus,
    read_points,
    read_scalar,
    walk_sequences,
)
from facetransfer.data.errors import DatasetFormatError

IMAGES_DIR = "Images"
PSPI_DIR = Path("Frame_Labels", "PSPI")
MAX_PSPI = 16  # AU4 (5) + max(AU6, AU7) (5) + max(AU9, AU10) (5) + AU43 (1), Prkachin and Solomon
FACS_DIR = Path("Frame_Labels", "FACS")
AAM_DIR = "AAM_landmarks"
N_LANDMARKS = 66
FACS_WIDTHS = (2, 4)  # AU, intensity [, two optional columns]
SCHEMA = {"subject": "str", "sequence": "str", "frame": "int64", "path": "str",
          "pspi": "float64", "aus": object, "landmarks": object}


def read(root: str | os.PathLike[str], *, missing_images: str = "error") -> pd.DataFrame:
    """One row per frame, sorted by subject, sequence, frame.

    Columns: subject, sequence, frame (int), path (resolved image path), pspi
    (float), aus ({AU: intensity}; empty FACS file = {}), landmarks ((66, 2)
    float32, or None without an AAM file). `missing_images` is accepted for
    symmetry with affectnet.read; no image list exists, so none can be missing.
    """
    check_missing_images(missing_images)
    dataset = DatasetRoot(root)
    rows = []
    for subject, sequence, frames in walk_sequences(
            dataset, IMAGES_DIR, prefix=lambda subject, sequence: sequence):
        folder = Path(subject, sequence)
        for frame, name in frames:
            rows.append((subject, sequence, frame, *_read_frame(dataset, folder, name)))
    return make_frame(rows, SCHEMA, skipped_images=0)


def _read_frame(dataset: DatasetRoot, folder: Path, name: str) -> tuple:
    """(path, pspi, aus, landmarks) of the frame image folder/name."""
    stem = Path(name).stem
    image = dataset.resolve(IMAGES_DIR / folder / name)
    pspi_path = dataset.require_file(PSPI_DIR / folder / f"{stem}_facs.txt", "PSPI label file")
    line, pspi = read_scalar(pspi_path, "the PSPI score")
    if not 0 <= pspi <= MAX_PSPI:
        raise DatasetFormatError(pspi_path, f"expected a PSPI score 0..{MAX_PSPI}, got {pspi}", line)
    aus = read_aus(dataset.require_file(FACS_DIR / folder / f"{stem}_facs.txt",
                                        "FACS label file"), FACS_WIDTHS)
    aam = dataset.resolve(AAM_DIR / folder / f"{stem}_aam.txt")
    landmarks = read_points(aam, N_LANDMARKS) if aam.is_file() else None
    return str(image), pspi, aus, landmarks
