"""What a stage writes, declared once: its writer and the report both read these names.

Each stage module has an `OUTPUTS`: the default of every path option it writes to (the path `dvc.yaml`
passes; tests/test_stages.py checks they agree) and the files it puts inside its folders. Paths are
relative to the repository root; a `{name}` in a path is a foreach/matrix field of `dvc.yaml` (a seed,
a freeze block).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType


@dataclass(frozen=True)
class Outputs:
    """options: CLI path option (its Python name) -> default path. files: key -> (option, file name inside it)."""

    options: Mapping[str, str]
    files: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = {option for option, _ in self.files.values()} - set(self.options)
        if unknown:
            raise ValueError(f"files placed in options that are not declared: {sorted(unknown)}")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))

    def path(self, option: str, **fields) -> Path:
        """The default path of one option, with dvc.yaml's foreach fields filled in (seed=..., freeze=...)."""
        return Path(self.options[option].format(**fields))

    def name(self, key: str, **fields) -> str:
        """The name of one file inside its folder (what the writer writes and a reader looks for), with its
        fields filled in (variant=..., method=...)."""
        return self.files[key][1].format(**fields)

    def file(self, key: str, folder: Path | None = None, **fields) -> Path:
        """One file: inside `folder` (the path given on the command line) or inside its option's default."""
        option = self.files[key][0]
        return Path(folder if folder is not None else self.path(option, **fields)) / self.name(key, **fields)
