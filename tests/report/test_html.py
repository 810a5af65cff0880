"""The report's HTML pieces and the whole page: self-contained, escaped, every figure embedded."""

from __future__ import annotations

import base64
import io
import os
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facetransfer.config import ReportConfig
from facetransfer.report import html
from facetransfer.report.study import StudyPaths, build_report, pain_table, ranking_table
from tests.browser import needs_chromium, render


def _png(colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_figure_embeds_the_png_bytes_and_rejects_other_files():
    png = _png()
    tag = html.figure(png, "a <red> box")
    data = re.search(r'src="data:image/png;base64,([^"]+)"', tag).group(1)
    assert base64.b64decode(data) == png
    assert "a &lt;red&gt; box" in tag
    with pytest.raises(ValueError, match="expected PNG"):
        html.figure(b"GIF89a", "x")


def test_table_rounds_and_escapes():
    out = html.table(pd.DataFrame({"name": ["<b>"], "value": [0.123456], "gap": [np.nan]}))
    assert "&lt;b&gt;" in out and "0.123" in out and "0.1234" not in out and "<td>-</td>" in out


def test_pain_table_has_table1_columns():
    numbers = {"accuracy": 0.9,
               **{m: {"no_pain": 0.8, "pain": 0.7, "macro": 0.75} for m in ("precision", "recall", "f1")}}
    table = pain_table({"freeze0": numbers})
    assert list(table.columns)[:3] == ["model", "accuracy", "precision no_pain"] and table.shape == (1, 11)


def test_ranking_table_keeps_the_top_aus():
    entry = {"ranking": [{"au": au, "mass_reference": 0.3, "mass_model": 0.2, "mean_diff": 0.1, "pvalue_holm": 0.01,
                          "n_images": 5} for au in (5, 14, 4)]}
    table = ranking_table({"pairs": {"freeze0": {"surprise": entry}}}, top=2)
    assert list(table["AU"]) == [5, 14] and list(table["rank"]) == [1, 2]


def _fake_study(root):
    """The smallest set of pipeline outputs: two pain models, the figures, the forgetting summary."""
    (root / "metrics" / "pain").mkdir(parents=True)
    numbers = {"accuracy": 0.9,
               **{m: {"no_pain": 0.8, "pain": 0.7, "macro": 0.75} for m in ("precision", "recall", "f1")}}
    for k in (0, 5):
        (root / "metrics" / "pain" / f"freeze{k}.json").write_text(pd.Series(numbers).to_json())
    (root / "reports" / "forgetting").mkdir(parents=True)
    for name in ("recall.png", "trade_off.png"):
        (root / "reports" / "forgetting" / name).write_bytes(_png())
    return StudyPaths(root / "metrics", root / "reports", root / "saliency", root / "masked")


def test_a_partial_study_names_what_is_missing(tmp_path):
    paths = _fake_study(tmp_path)
    page, missing = build_report(paths, ReportConfig(), "seed: 1\n", {"git commit": "abc"})
    assert "Table 1" in page and "abc" in page and "seed: 1" in page
    assert str(paths.metrics / "forgetting.json") in missing
    assert str(paths.reports / "trainee" / "curves.png") in missing
    assert "not available" in page or "missing figure" in page
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page and "<link" not in page



def test_localisation_skipped_on_real_data_is_said_not_tabled(tmp_path):
    paths = _fake_study(tmp_path)
    (paths.metrics / "localisation.json").write_text('{"skipped": "no ground-truth AU labels"}')
    page, missing = build_report(paths, ReportConfig(), "seed: 1\n", {"git commit": "abc"})
    assert "Skipped: no ground-truth AU labels." in page and str(paths.metrics / "localisation.json") not in missing
    (paths.metrics / "localisation.json").write_text(
        '{"freeze0": {"n_images": 3, "lrp": {"relevance_mass_accuracy": 0.25}, "gradcam": {"dice": 0.5}}}')
    page, _ = build_report(paths, ReportConfig(), "seed: 1\n", {"git commit": "abc"})
    assert "LRP relevance mass accuracy" in page and "Grad-CAM dice" in page


@needs_chromium
def test_the_page_renders_in_headless_chromium(tmp_path):
    paths = _fake_study(tmp_path)
    page, _ = build_report(paths, ReportConfig(), "seed: 1\n", {"git commit": "abc"})
    (tmp_path / "index.html").write_text(page)
    counts = render(tmp_path / "index.html", tmp_path / "shot.png", tmp_path / "profile", height=1500)
    assert counts["images"] == page.count("<img") >= 1 and counts["broken"] == 0 and counts["text"] > 200
    shot = np.asarray(Image.open(tmp_path / "shot.png").convert("L"))
    assert shot.std() > 5  # not a blank page
    # The check can fail: a figure whose bytes do not decode counts as broken.
    (tmp_path / "bad.html").write_text(page.replace("base64,", "base64,AAAA", 1))
    assert render(tmp_path / "bad.html", tmp_path / "bad.png", tmp_path / "profile2", height=800)["broken"] == 1


def test_the_report_leads_with_the_across_seed_verdicts_and_the_cka_figure(tmp_path):
    import json

    paths = _fake_study(tmp_path)
    cell = {"mean_diff": 0.1, "ci_low": 0.02, "ci_high": 0.18, "pvalue": 0.01, "pvalue_holm": 0.04, "n_seeds": 3}
    (paths.metrics / "forgetting.json").write_text(json.dumps({
        "seeds": [1, 2, 3], "reference": "freeze5", "family_rule": "Holm within one model", "mcnemar": {},
        "across_seeds": {"freeze0": {"contempt": cell}},
        "trade_off": {"pareto_front": ["freeze3"], "balanced": "freeze3", "rule": "r"}}))
    blocks = {f"block{b}": {"mean": 1.0 - b / 10, "ci_low": 0.5, "ci_high": 0.99, "n_seeds": 3} for b in range(1, 6)}
    (paths.metrics / "cka.json").write_text(json.dumps({"freeze0": blocks}))
    (paths.reports / "cka").mkdir()
    (paths.reports / "cka" / "cka.png").write_bytes(_png())
    (paths.reports / "forgetting" / "across_seeds.png").write_bytes(_png())
    page, missing = build_report(paths, ReportConfig(), "seed: 1\n", {"git commit": "abc"})
    first, rest = page.index("Forgetting across 3 training seeds"), page.index("Table 1")
    assert first < page.index("Representation drift") < rest  # the verdicts come before every detail section
    assert "0.900 [0.500, 0.990]" in page and str(paths.metrics / "cka.json") not in missing
    assert len(missing) == len(set(missing))  # a file two sections read is named once


def test_the_markdown_report_has_the_same_numbers_and_links_its_figures(tmp_path):
    """docs/results.md (issue 19): written by the report stage from metrics/, never typed by hand. The same
    sections and numbers as the page; figures linked relative to the Markdown file, not embedded."""
    import json

    from facetransfer.report.markdown import GENERATED, Markdown

    paths = _fake_study(tmp_path)
    blocks = {f"block{b}": {"mean": 1.0 - b / 10, "ci_low": 0.5, "ci_high": 0.99, "n_seeds": 3} for b in range(1, 6)}
    (paths.metrics / "cka.json").write_text(json.dumps({"freeze0": blocks}))
    (paths.reports / "cka").mkdir()
    (paths.reports / "cka" / "cka.png").write_bytes(_png())
    docs = tmp_path / "docs"
    text, missing = build_report(paths, ReportConfig(), "seed: 1\n", {"git commit": "abc"}, Markdown(docs))
    page, page_missing = build_report(paths, ReportConfig(), "seed: 1\n", {"git commit": "abc"})
    assert missing == page_missing
    assert text.startswith("# facetransfer: ") and GENERATED in text and "<img" not in text
    assert "| 0.900 [0.500, 0.990] |" in text and "0.900 [0.500, 0.990]" in page
    assert f"![CKA by block, one line per model]({os.path.relpath(paths.reports / 'cka' / 'cka.png', docs)})" in text
    assert text.index("## What held up") < text.index("## Transfer to pain")
    assert Markdown(docs).table(pd.DataFrame({"a": [0.123456, None]})).splitlines()[2:] == ["| 0.123 |", "| -     |"]
