"""Writing outputs so that a crash never leaves a half-written result in place."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml


@contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden sibling folder to fill; on success it replaces `final`, on error it is removed."""
    final = Path(final)
    tmp = final.parent / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write text to a temp file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)


def write_json_atomic(path: str | os.PathLike[str], data: object) -> None:
    """Write JSON to a temp file beside `path`, then rename it into place."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file with libyaml's C loader where PyYAML was built with it (same result as
    `yaml.safe_load`, ~10x faster: the pure-Python parser spent 2 s of every stage on dvc.lock)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(), Loader=loader)  # noqa: S506 (a safe loader)


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """A prepared .npy array, memory-mapped (read-only). A truncated or foreign file raises DatasetFormatError
    naming it (np.load's own ValueError says neither which file nor what to do)."""
    from facetransfer.data.errors import DatasetFormatError

    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise DatasetFormatError(path, f"not a readable .npy array ({str(err).splitlines()[0][:120]}); expected the "
                                       "file `facetransfer prepare` wrote: prepare again") from None


def check_outputs(folders: Iterable[str | os.PathLike[str]] = (), files: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Raise OutputError before any work when an output cannot be written: a file where an output folder is
    (or where one must be made), a folder where an output file goes, or a nearest existing folder this
    process may not write. A stage that trains for an hour should not find that out at the end."""
    from facetransfer.data.errors import OutputError

    wanted = [(Path(f), "folder") for f in folders] + [(Path(f), "file") for f in files]
    for path, kind in wanted:
        if kind == "folder" and path.exists() and not path.is_dir():
            raise OutputError(path, "is a file; expected a folder (or nothing) there for this stage's outputs")
        if kind == "file" and path.is_dir():
            raise OutputError(path, "is a folder; expected a file path for this output")
        existing = path if kind == "folder" else path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputError(existing, f"is a file; expected a folder, to hold {path}")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(existing, f"is not writable; expected to write {path} there")
