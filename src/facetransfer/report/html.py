"""A self-contained HTML page: inline CSS, tables as HTML, figures as base64 PNG data URIs.

No script, no CDN, no external file: the page opens offline and can be mailed or logged as
one artifact. (DVC's plot HTML loads vega from a CDN and shows nothing offline.)
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #aaa; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5rem 0; }
figure { margin: 1rem 0; } figcaption { font-size: 0.85rem; color: #555; }
.note { background: #fff6d6; padding: 0.4rem 0.8rem; border-left: 4px solid #e0b400; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
nav a { margin-right: 1rem; }
"""


def heading(words: str) -> str:
    """A sub-heading inside a section."""
    return f"<h3>{html.escape(words)}</h3>"


def text(words: str) -> str:
    return f"<p>{html.escape(words)}</p>"


def note(words: str) -> str:
    """A highlighted remark, e.g. that an input was missing."""
    return f'<p class="note">{html.escape(words)}</p>'


def preformatted(content: str, summary: str | None = None) -> str:
    """A <pre> block; with `summary`, folded in a <details> element (opens on click, no script)."""
    block = f"<pre>{html.escape(content)}</pre>"
    return block if summary is None else f"<details><summary>{html.escape(summary)}</summary>{block}</details>"


def figure(png: bytes, caption: str) -> str:
    """A PNG embedded as a data URI, with its caption as alt text and figcaption."""
    if not png.startswith(b"\x89PNG"):
        raise ValueError(f"figure {caption!r}: expected PNG bytes")
    data = base64.b64encode(png).decode("ascii")
    words = html.escape(caption)
    return f'<figure><img src="data:image/png;base64,{data}" alt="{words}"><figcaption>{words}</figcaption></figure>'


def figure_file(path: Path, caption: str) -> str:
    """The PNG at `path`, embedded (the page carries its figures)."""
    return figure(path.read_bytes(), caption)


def table(frame: pd.DataFrame, digits: int = 3, index: bool = False) -> str:
    """A DataFrame as an HTML table; floats to `digits` significant digits, missing values as "-"."""
    return frame.to_html(index=index, float_format=lambda v: f"{v:.{digits}g}", na_rep="-", border=0, escape=True)


def section(anchor: str, title: str, parts: list[str]) -> str:
    return f'<section id="{html.escape(anchor)}"><h2>{html.escape(title)}</h2>\n' + "\n".join(parts) + "</section>"


def page(title: str, sections: list[tuple[str, str, list[str]]]) -> str:
    """The whole document: a table of contents, then each (anchor, title, parts) section."""
    nav = " ".join(f'<a href="#{html.escape(a)}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "\n".join(section(a, t, parts) for a, t, parts in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1><nav>{nav}</nav>\n{body}\n</body></html>\n")
