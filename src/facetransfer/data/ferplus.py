"""Reader for FER2013 images with the FER+ re-annotation (DESIGN.md section 4).

fer2013.csv holds the pixels, fer2013new.csv ten annotators' votes; row i of
one is row i of the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from facetransfer.data._files import DatasetRoot, csv_records, make_frame, parse_int
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import FER2013_TO_AFFECTNET, FERPLUS_VOTE_COLUMNS

PIXELS_FILE = "fer2013.csv"
VOTES_FILE = "fer2013new.csv"
PIXELS_HEADER = ("emotion", "pixels", "Usage")
VOTES_HEADER = ("Usage", "Image name", *FERPLUS_VOTE_COLUMNS)
USAGES = ("Training", "PublicTest", "PrivateTest")
SIDE = 48
N_EMOTIONS = 8  # the vote columns after these are "unknown" and "NF" (not a face)
_MAX_VOTES = 2**31 - 1  # anything larger is corrupt (and would overflow int64 later)
DROP_REASONS = ("no_image", "no_votes", "tie", "unknown_or_nf")
SCHEMA = {"usage": "str", "pixels": object, "votes": object, "label": "int64",
          "image_name": "str", "fer2013_emotion": "int64", "row": "int64"}


def read(root: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per kept image, in file order.

    Columns: usage, pixels ((48, 48) uint8), votes ((10,) int64), label
    (majority emotion 0..7 in FER+ order), image_name, fer2013_emotion (0..6),
    row (0-based data row). attrs["dropped"] counts dropped rows by reason:
    no_image (FER+ removed it), no_votes, tie, unknown_or_nf.
    """
    dataset = DatasetRoot(root)
    pixels_path = dataset.require_file(PIXELS_FILE, "FER2013 file")
    votes_path = dataset.require_file(VOTES_FILE, "FER+ votes file")
    # The votes file is small (no pixels), so it is read whole; the big one streams.
    votes_rows = list(csv_records(votes_path, VOTES_HEADER))
    rows = []
    dropped = dict.fromkeys(DROP_REASONS, 0)
    n_rows = 0
    for row, (line, fields) in enumerate(csv_records(pixels_path, PIXELS_HEADER)):
        n_rows += 1
        if row >= len(votes_rows):
            continue  # only counted, for the error below
        record, reason = _parse_row(pixels_path, line, fields, votes_path, *votes_rows[row])
        if reason is not None:
            dropped[reason] += 1
            continue
        rows.append((*record, row))
    if n_rows != len(votes_rows):
        raise DatasetFormatError(
            votes_path, f"has {len(votes_rows)} data rows but {PIXELS_FILE} has {n_rows}; "
            "the two files must be aligned row by row")
    return make_frame(rows, SCHEMA, dropped=dropped)


def _parse_row(pixels_path: Path, pixels_line: int, pixels_fields: list[str],
               votes_path: Path, votes_line: int, votes_fields: list[str],
               ) -> tuple[tuple | None, str | None]:
    """(usage, pixels, votes, label, image_name, fer2013_emotion) or (None, drop reason)."""
    emotion_text, pixels_text, usage = pixels_fields
    if votes_fields[0] != usage or usage not in USAGES:
        raise DatasetFormatError(
            votes_path, f"Usage {votes_fields[0]!r} does not match {PIXELS_FILE} line "
            f"{pixels_line} ({usage!r}); expected one of {', '.join(USAGES)} in both", votes_line)
    image_name = votes_fields[1].strip()
    if not image_name:
        return None, "no_image"
    votes = [parse_int(text, votes_path, votes_line, column)
             for text, column in zip(votes_fields[2:], FERPLUS_VOTE_COLUMNS, strict=True)]
    if min(votes) < 0 or max(votes) > _MAX_VOTES:
        raise DatasetFormatError(
            votes_path, f"votes must be counts 0..{_MAX_VOTES}, got {votes}", votes_line)
    label, reason = _majority(votes)
    if reason is not None:
        return None, reason
    emotion = parse_int(emotion_text, pixels_path, pixels_line, "emotion")
    if not 0 <= emotion < len(FER2013_TO_AFFECTNET):
        raise DatasetFormatError(
            pixels_path, f"emotion: expected 0..{len(FER2013_TO_AFFECTNET) - 1}, got {emotion}",
            pixels_line)
    pixels = _parse_pixels(pixels_path, pixels_line, pixels_text)
    return (usage, pixels, np.array(votes, dtype=np.int64), label, image_name, emotion), None


def _majority(votes: list[int]) -> tuple[int, str | None]:
    """(winning column, None), or (-1, drop reason)."""
    top = max(votes)
    if top == 0:
        return -1, "no_votes"
    if votes.count(top) > 1:
        return -1, "tie"
    best = votes.index(top)
    if best >= N_EMOTIONS:
        return -1, "unknown_or_nf"
    return best, None


def _parse_pixels(path: Path, line: int, text: str) -> np.ndarray:
    text = text.strip()  # numpy reads a lone " " as one 0
    # Only ASCII digits and spaces: then numpy's fast parser cannot misread anything.
    if text.isascii() and not text.encode("ascii").translate(None, b"0123456789 "):
        values = np.fromstring(text, dtype=np.int64, sep=" ")
    else:  # slow path: find the offending value for the message
        values = np.array([_pixel(v, path, line) for v in text.split()], dtype=np.int64)
    if values.size != SIDE * SIDE:
        raise DatasetFormatError(
            path, f"pixels: expected {SIDE * SIDE} values ({SIDE}x{SIDE}), got {values.size}",
            line)
    out_of_range = (values < 0) | (values > 255)
    if out_of_range.any():
        _pixel(str(values[out_of_range][0]), path, line)  # raises, naming the value
    return values.astype(np.uint8).reshape(SIDE, SIDE)


def _pixel(text: str, path: Path, line: int) -> int:
    value = parse_int(text, path, line, "pixels")
    if not 0 <= value <= 255:
        raise DatasetFormatError(path, f"pixels: value {value} outside 0..255", line)
    return value
