"""The report as GitHub-flavoured Markdown: `docs/results.md`, written by the report stage.

The same sections as the HTML page (facetransfer.report.study), with the same functions, so every number
in docs/results.md is read from metrics/ and reports/ by `dvc repro`, never typed by hand. Figures are
linked (relative to the Markdown file), not embedded: a page in git should not carry megabytes of PNG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

GENERATED = ("Written by `facetransfer report` (the `report` stage of `dvc repro`) from `metrics/` and `reports/`; "
             "edit the code, not this file. Figures link to the pipeline's outputs: run `dvc repro` or `dvc pull` "
             "to see them.")


@dataclass(frozen=True)
class Markdown:
    """Markdown output for a file in `base` (figure links are relative to it)."""

    base: Path

    def heading(self, words: str) -> str:
        return f"### {words}"

    def text(self, words: str) -> str:
        return words

    def note(self, words: str) -> str:
        return f"> {words}"

    def preformatted(self, content: str, summary: str | None = None) -> str:
        block = f"```\n{content.rstrip()}\n```"
        return block if summary is None else f"<details><summary>{summary}</summary>\n\n{block}\n\n</details>"

    def figure_file(self, path: Path, caption: str) -> str:
        return f"![{caption}]({Path(os.path.relpath(path, self.base)).as_posix()})"

    def table(self, frame: pd.DataFrame, digits: int = 3, index: bool = False) -> str:
        """Floats to `digits` significant digits, missing values as "-" (as the HTML page)."""
        if frame.empty:
            return "(no rows)"
        cells = frame.astype(object).where(frame.notna(), None)
        return cells.to_markdown(index=index, floatfmt=f".{digits}g", missingval="-")

    def page(self, title: str, sections: list[tuple[str, str, list[str]]]) -> str:
        contents = "\n".join(f"- [{name}](#{anchor})" for anchor, name, _ in sections)
        body = "\n\n".join(f'<a id="{anchor}"></a>\n\n## {name}\n\n' + "\n\n".join(parts)
                             for anchor, name, parts in sections)
        return f"# {title}\n\n{GENERATED}\n\n{contents}\n\n{body}\n"
