"""Splitting rules: AffectNet conflicting duplicates, stratified splits, the UNBC selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facetransfer.data.splits import SelectionError, drop_conflicting_duplicates, select_pain_frames, stratified_split


def test_conflicting_duplicates_keep_one_row_per_image():
    frame = pd.DataFrame({"rel_path": ["a", "a", "a", "b", "b", "c"], "label": [1, 2, 1, 3, 3, 4]})
    kept, facts = drop_conflicting_duplicates(frame, seed=0)
    assert sorted(kept["rel_path"]) == ["a", "b", "c"]
    assert facts == {"conflicting_images": 1, "dropped_rows": 3}  # only "a" has two labels
    assert kept.set_index("rel_path").loc["b", "label"] == 3
    again, _ = drop_conflicting_duplicates(frame, seed=0)
    pd.testing.assert_frame_equal(kept, again)
    picks = {drop_conflicting_duplicates(frame, seed=s)[0].set_index("rel_path").loc["a", "label"] for s in range(20)}
    assert picks == {1, 2}  # the kept label is a seeded random choice


@pytest.mark.parametrize(("labels", "test_size", "message"), [
    ([], 0.1, "train.csv: no rows to split into train and val; expected labelled rows"),
    ([0, 0, 1, 1, 2], 0.4, "train.csv: class(es) [2] have a single row; a stratified train/val split needs at least 2"),
    ([0, 0, 1, 1, 2, 2], 1, "train.csv: cannot split into train and val ("),  # 1 val row for 3 classes
])
def test_a_split_that_cannot_be_made_names_its_rows(labels, test_size, message):
    """Issue 18: a header-only list or a class with one member ended in sklearn's ValueError traceback."""
    with pytest.raises(SelectionError) as err:
        stratified_split(pd.Series(labels, dtype=int), test_size, seed=0, where="train.csv")
    assert str(err.value).startswith(message)


def test_stratified_split_keeps_class_balance():
    labels = pd.Series([0] * 80 + [1] * 20)
    split = stratified_split(labels, 0.1, seed=0)
    assert (split == "val").sum() == 10
    assert labels[split == "val"].value_counts().to_dict() == {0: 8, 1: 2}


def _frames(n_subjects=4, n_sequences=2, n_frames=30, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        for q in range(n_sequences):
            start = rng.integers(0, n_frames - 10)
            for f in range(1, n_frames + 1):
                pain = float(start <= f < start + 10)
                rows.append((f"s{s}", f"s{s}q{q}", f, pain * rng.integers(1, 5)))
    return pd.DataFrame(rows, columns=["subject", "sequence", "frame", "pspi"])


def test_pain_selection_meets_the_paper_constraints():
    frames = _frames()
    chosen = select_pain_frames(frames, 40, seed=1)
    assert len(chosen) == 40 and (chosen["pspi"] > 0).sum() == 20
    per_subject = chosen.groupby("subject")["pspi"].agg([lambda p: (p > 0).sum(), lambda p: (p == 0).sum()])
    assert (per_subject.to_numpy() >= 1).all()
    gaps = chosen.sort_values(["sequence", "frame"]).groupby("sequence")["frame"].diff().dropna()
    assert (gaps >= 2).all()  # no two consecutive frames
    pd.testing.assert_frame_equal(chosen, select_pain_frames(frames, 40, seed=1))


def test_pain_selection_names_the_subject_without_pain():
    frames = _frames()
    frames.loc[frames["subject"] == "s2", "pspi"] = 0.0
    with pytest.raises(SelectionError, match="subject s2 has no pain"):
        select_pain_frames(frames, 20, seed=0)


def test_pain_selection_reports_too_few_frames():
    with pytest.raises(SelectionError, match="not enough non-consecutive pain frames"):
        select_pain_frames(_frames(), 200, seed=0)  # 8 runs of 10 pain frames give at most 40
