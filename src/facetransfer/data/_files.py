"""Helpers shared by the dataset readers: safe paths, text tables, CSVs, numbers.

Every failure becomes a DatasetFormatError naming the file (and line), so a
reader never leaks a bare KeyError, IndexError or UnicodeDecodeError.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facetransfer.data.errors import DatasetFormatError

MISSING_IMAGE_POLICIES = ("error", "skip")


def check_missing_images(policy: str) -> None:
    """Reject an unknown `missing_images` value (a caller bug, so a plain ValueError)."""
    if policy not in MISSING_IMAGE_POLICIES:
        raise ValueError(f"missing_images must be 'error' or 'skip', got {policy!r}")


class DatasetRoot:
    """A dataset's root folder; resolves relative paths and refuses any that escape it."""

    def __init__(self, root: str | os.PathLike[str]):
        given = Path(root)
        if not given.is_dir():
            raise DatasetFormatError(given, "dataset root not found (expected a directory)")
        self.path = given.resolve()
        # Resolving every component of every path costs one lstat per component;
        # datasets hold many files per folder, so folders are resolved once.
        self._folders: dict[Path, Path] = {}

    def resolve(self, rel: str | os.PathLike[str], *, source: Path | None = None,
                line: int | None = None) -> Path:
        """Absolute, symlink-free path of root/rel; an error if it leads outside the root.

        The error names `source` at `line` (the file that gave `rel`) when given.
        """
        candidate = self.path / rel
        folder = self._folders.get(candidate.parent)
        if folder is None:
            folder = self._folders[candidate.parent] = candidate.parent.resolve()
        resolved = folder / candidate.name
        if candidate.name == ".." or resolved.is_symlink():
            resolved = resolved.resolve()
        if not resolved.is_relative_to(self.path):
            raise DatasetFormatError(
                source or candidate,
                f"path {os.fspath(rel)!r} leads outside the dataset root {self.path}", line)
        return resolved

    def require_dir(self, rel: str | os.PathLike[str]) -> Path:
        """Resolved folder root/rel, which must exist."""
        path = self.resolve(rel)
        if not path.is_dir():
            raise DatasetFormatError(self.path / rel, "folder not found (expected a directory)")
        return path

    def require_file(self, rel: str | os.PathLike[str], what: str = "file") -> Path:
        """Resolved file root/rel, which must exist."""
        path = self.resolve(rel)
        if not path.is_file():
            raise DatasetFormatError(self.path / rel, f"{what} not found (expected a file)")
        return path


# --- numbers -----------------------------------------------------------------

def parse_float(text: str, path: Path, line: int | None, what: str) -> float:
    """A finite float, or an error naming `what` (a column or field name)."""
    try:
        value = float(text)
    except ValueError:
        raise DatasetFormatError(path, f"{what}: expected a number, got {text!r}", line) from None
    if not math.isfinite(value):
        raise DatasetFormatError(path, f"{what}: expected a finite number, got {text!r}", line)
    return value


def parse_int(text: str, path: Path, line: int | None, what: str) -> int:
    """An integer written as such (no decimal point), or an error naming `what`."""
    try:
        return int(text)
    except ValueError:
        message = f"{what}: expected an integer, got {text!r}"
        raise DatasetFormatError(path, message, line) from None


def integral(value: float, path: Path, line: int | None, what: str) -> int:
    """A float that must hold a whole number (label files write codes as '3.0000000e+00')."""
    if not value.is_integer():
        raise DatasetFormatError(path, f"{what}: expected a whole number, got {value!r}", line)
    return int(value)


def parse_float_array(values: Sequence[str], path: Path, line: int | None, what: str,
                      dtype: Any = np.float32) -> np.ndarray:
    """Parse many numbers at once; on failure find the bad one for the message."""
    try:
        array = np.array(values, dtype=dtype)
    except ValueError:
        array = np.array([parse_float(v, path, line, what) for v in values], dtype=dtype)
    if not np.isfinite(array).all():
        bad = values[int(np.flatnonzero(~np.isfinite(array))[0])]
        raise DatasetFormatError(path, f"{what}: expected a finite number, got {bad!r}", line)
    return array


# --- whitespace-separated text tables ----------------------------------------

def read_text(path: Path) -> str:
    """A whole UTF-8 text file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetFormatError(path, f"cannot read file: {err.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DatasetFormatError(path, "not UTF-8 text", line) from None


def read_float_rows(path: Path, widths: Collection[int] | None) -> list[tuple[int, list[float]]]:
    """(line, numbers) for each non-blank line; each row's width must be in `widths` if given."""
    rows = []
    for line, text in enumerate(read_text(path).splitlines(), start=1):
        fields = text.split()
        if not fields:
            continue
        if widths is not None and len(fields) not in widths:
            expected = " or ".join(str(w) for w in sorted(widths))
            raise DatasetFormatError(
                path, f"expected {expected} numbers on a line, got {len(fields)}", line)
        rows.append((line, [parse_float(f, path, line, f"column {i + 1}")
                            for i, f in enumerate(fields)]))
    return rows


def read_scalar(path: Path, what: str) -> tuple[int, float]:
    """(line, value) of a file holding exactly one number."""
    rows = read_float_rows(path, widths=None)
    if len(rows) != 1 or len(rows[0][1]) != 1:
        count = sum(len(values) for _, values in rows)
        raise DatasetFormatError(path, f"expected exactly one number ({what}), got {count}")
    line, (value,) = rows[0]
    return line, value


def read_points(path: Path, count: int) -> np.ndarray:
    """A landmark file of exactly `count` lines "x y" -> (count, 2) float32."""
    rows = read_float_rows(path, widths=(2,))
    if len(rows) != count:
        raise DatasetFormatError(path, f"expected {count} landmark lines 'x y', got {len(rows)}")
    return np.array([values for _, values in rows], dtype=np.float32)


MAX_AU_INTENSITY = 5  # FACS intensities A..E


def read_aus(path: Path, widths: Collection[int]) -> dict[int, float]:
    """A FACS file: one line per coded AU, "AU intensity [extra columns]" -> {AU: intensity}.

    An empty file means no AU. Intensity 0 is kept: it means "present, intensity not given".
    """
    aus: dict[int, float] = {}
    for line, values in read_float_rows(path, widths):
        au = integral(values[0], path, line, "AU code")
        if au <= 0:
            raise DatasetFormatError(path, f"AU code: expected a positive number, got {au}", line)
        if au in aus:
            raise DatasetFormatError(path, f"AU {au} is listed twice", line)
        if not 0 <= values[1] <= MAX_AU_INTENSITY:
            raise DatasetFormatError(
                path, f"AU {au}: expected an intensity 0..{MAX_AU_INTENSITY} (FACS A-E = 1-5, 0 = not given), "
                      f"got {values[1]}", line)
        aus[au] = values[1]
    return aus


# --- CSV files ---------------------------------------------------------------

def _decoded_lines(path: Path, handle: Iterable[bytes]) -> Iterator[str]:
    # Decoding line by line (not in 8 KiB chunks) keeps decode errors' line numbers exact.
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DatasetFormatError(path, "not UTF-8 text", number) from None


def csv_records(path: Path, header: Sequence[str],
                headerless: Callable[[list[str]], bool] | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) for each data record of a CSV whose header must equal `header`.

    `line` is the 1-based physical line where the record starts; blank lines are skipped.
    `headerless(first_fields)`: when given and true, the file has no header
    row and its first record is data (some copies of real files lack it).
    """
    try:
        handle = path.open("rb")
    except OSError as err:
        raise DatasetFormatError(path, f"cannot read file: {err.strerror}") from None
    with handle:
        reader = csv.reader(_decoded_lines(path, handle), strict=True)
        seen_header, end = False, 0
        while True:
            try:
                fields = next(reader, None)
            except csv.Error as err:
                raise DatasetFormatError(path, f"malformed CSV: {err}", reader.line_num) from None
            if fields is None:
                break
            line, end = end + 1, reader.line_num
            if not fields:
                continue
            if not seen_header:
                seen_header = True
                if not (headerless and list(fields) != list(header) and headerless(fields)):
                    check_header(path, line, fields, header)
                    continue
            if len(fields) != len(header):
                raise DatasetFormatError(
                    path, f"expected {len(header)} fields, got {len(fields)}", line)
            else:
                yield line, fields
    if not seen_header:
        raise DatasetFormatError(path, f"empty file, expected the header {','.join(header)}", 1)


def check_header(path: Path, line: int, got: Sequence[str], expected: Sequence[str]) -> None:
    """The header must list exactly the expected columns, in order."""
    if list(got) == list(expected):
        return
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    detail = "".join([f"; missing {missing}" if missing else "",
                      f"; unexpected {extra}" if extra else ""])
    raise DatasetFormatError(
        path, f"expected header {','.join(expected)!r}, got {','.join(got)!r}{detail}", line)


# --- folder datasets ---------------------------------------------------------

def _visible(folder: Path) -> list[Path]:
    """The folder's entries, sorted; hidden ones (.DS_Store, macOS "._x.png") are never data."""
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        raise DatasetFormatError(folder, f"cannot list folder: {err.strerror}") from None
    return sorted(e for e in entries if not e.name.startswith("."))


def walk_sequences(dataset: DatasetRoot, images_dir: str, prefix: Callable[[str, str], str],
                   ) -> Iterator[tuple[str, str, list[tuple[int, str]]]]:
    """(subject, sequence, [(frame, file name)]) for images_dir/<subject>/<sequence>/*.png.

    Sorted by subject, sequence, frame; image names must be
    "<prefix(subject, sequence)><frame digits>.png".
    """
    images = dataset.require_dir(images_dir)
    for subject in _visible(images):
        if not subject.is_dir():
            continue
        for sequence in _visible(subject):
            if sequence.is_dir():
                names = [p.name for p in _visible(sequence)
                         if p.suffix.lower() == ".png" and p.is_file()]
                frames = _numbered(sequence, names, prefix(subject.name, sequence.name))
                yield subject.name, sequence.name, frames


def _numbered(folder: Path, names: Iterable[str], prefix: str) -> list[tuple[int, str]]:
    frames: dict[int, str] = {}
    for name in names:
        digits = Path(name).stem.removeprefix(prefix)
        if not name.startswith(prefix) or not (digits.isascii() and digits.isdigit()):
            raise DatasetFormatError(
                folder / name, f"image name should be '{prefix}<frame number>.png'")
        frame = int(digits)
        if frame in frames:
            raise DatasetFormatError(folder / name, f"frame {frame} also given by {frames[frame]}")
        frames[frame] = name
    return sorted(frames.items())


def make_frame(rows: list[tuple], schema: dict[str, Any], **attrs: Any) -> pd.DataFrame:
    """Build the result once from row tuples; schema maps column name -> dtype, in order."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    df = pd.DataFrame({name: pd.Series(list(values), dtype=dtype)
                       for (name, dtype), values in zip(schema.items(), columns, strict=True)})
    df.attrs.update(attrs)
    return df
