"""The error types for files a user gave: malformed datasets (the readers), model files (the stages that load
them) and output locations that cannot be written."""

from __future__ import annotations

import os
from pathlib import Path


class DatasetFormatError(ValueError):
    """A dataset file is missing or does not match its native format.

    `path` is the offending (or expected) file, `line` its 1-based line number
    or None. str() is one line: "<path>:<line>: <message>".
    """

    def __init__(self, path: str | os.PathLike[str], message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        # Keep the error picklable (multiprocessing) despite the custom __init__.
        return type(self), (self.path, self.message, self.line)


class PathError(ValueError):
    """A file or folder the user named cannot serve. str() is one line: "<path>: <message>"."""

    def __init__(self, path: str | os.PathLike[str], message: str):
        self.path = Path(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")

    def __reduce__(self):
        return type(self), (self.path, self.message)


class ModelFileError(PathError):
    """A model file is unreadable, not a facetransfer model, or not the kind the stage needs."""


class OutputError(PathError):
    """An output location cannot be written (a file where a folder must be, or no permission): found before
    any work starts."""
