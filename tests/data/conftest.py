"""Helpers that write small, hand-made datasets in their native layouts.

The tests write every fixture file themselves (no data generator), so each
test states exactly which bytes the reader sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetransfer.data.errors import DatasetFormatError


class DatasetTree:
    """Files under one dataset root, written by the test."""

    def __init__(self, root: Path):
        self.root = root

    def text(self, rel: str, content: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8", newline="")
        return path

    def raw(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def image(self, rel: str) -> Path:
        """A real 4x4 grey PNG (the readers only check it exists)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4), color=128).save(path)
        return path

    def points(self, rel: str, count: int, offset: float = 0.0) -> np.ndarray:
        """A landmark file of `count` lines "x y" in the scientific notation CK+ and
        UNBC use; point i is (100.25 + i + offset, 50.5 + 2 i). Returns those points."""
        points = np.array([(100.25 + i + offset, 50.5 + 2 * i) for i in range(count)])
        self.text(rel, "".join(f"   {x:.7e}   {y:.7e}\n" for x, y in points))
        return points.astype(np.float32)

    def link(self, rel: str, target: Path) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        return path


@pytest.fixture
def tree(tmp_path: Path) -> DatasetTree:
    # Resolved, so expected paths compare equal to the readers' resolved paths.
    root = tmp_path.resolve() / "dataset"
    root.mkdir()
    return DatasetTree(root)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside (not inside) the dataset root, holding secret.png and secret.txt."""
    folder = tmp_path.resolve() / "outside"
    folder.mkdir()
    Image.new("L", (4, 4)).save(folder / "secret.png")
    (folder / "secret.txt").write_text("1.0\n")
    return folder


@pytest.fixture
def format_error():
    """check(call, path, line, *fragments): call() must raise DatasetFormatError for
    `path` at `line` (None: no line) whose message contains every fragment."""

    def check(call, path: Path, line: int | None, *fragments: str) -> DatasetFormatError:
        with pytest.raises(DatasetFormatError) as info:
            call()
        err = info.value
        where = f"{path}:{line}: " if line is not None else f"{path}: "
        message = str(err)
        assert message.startswith(where), message
        assert "\n" not in message
        assert (err.path, err.line) == (path, line)
        for fragment in fragments:
            assert fragment in message, (fragment, message)
        return err

    return check
