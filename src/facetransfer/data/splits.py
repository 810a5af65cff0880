"""Splitting rules: AffectNet de-duplication, stratified splits, the UNBC 1,000-frame selection."""

from __future__ import annotations

import numpy as np
import pandas as pd


class SelectionError(ValueError):
    """The UNBC selection constraints cannot be met; the message names the subject or count."""


def drop_conflicting_duplicates(frame: pd.DataFrame, seed: int, key: str = "rel_path") -> tuple[pd.DataFrame, dict]:
    """Keep one row per image: a random one (seeded) where an image is listed with several labels.

    Schiller et al. 2020 found 22,198 AffectNet images listed repeatedly with
    different labels and kept one of each at random; exact repeats are dropped too.
    """
    rng = np.random.default_rng(seed)
    groups = frame.groupby(key, sort=False)
    conflicting = int((groups["label"].nunique() > 1).sum())
    # A random key per row, then the first row of each image in that order.
    order = frame.assign(_r=rng.random(len(frame))).sort_values("_r", kind="stable")
    kept = order.drop_duplicates(key).drop(columns="_r").sort_index()
    return kept, {"conflicting_images": conflicting, "dropped_rows": len(frame) - len(kept)}


def stratified_split(labels: pd.Series, test_size: float | int, seed: int, where: str = "the rows") -> pd.Series:
    """'train' / 'val' per row, stratified by label (sklearn). Rows that cannot be split so (none, a class
    with one row, fewer val rows than classes) raise SelectionError naming `where` (sklearn's own errors
    name neither the data nor the param)."""
    from sklearn.model_selection import train_test_split  # here: sklearn costs ~2 s at import, every CLI call paid it

    counts = labels.value_counts()
    if labels.empty:
        raise SelectionError(f"{where}: no rows to split into train and val; expected labelled rows")
    if (counts < 2).any():
        raise SelectionError(f"{where}: class(es) {sorted(counts[counts < 2].index.tolist())} have a single row; a "
                             "stratified train/val split needs at least 2 of each")
    try:
        train_idx, val_idx = train_test_split(labels.index, test_size=test_size, random_state=seed, stratify=labels)
    except ValueError as err:
        raise SelectionError(f"{where}: cannot split into train and val ({err})") from None
    return pd.Series("train", index=labels.index).where(~labels.index.isin(val_idx), "val")


def select_pain_frames(frames: pd.DataFrame, n_total: int, seed: int) -> pd.DataFrame:
    """Prajod et al. 2022 section 3.1: half pain (PSPI > 0), half no pain, from the training subjects,

    with at least one pain and one no-pain frame per subject and no two
    consecutive frames of a sequence. Returns the selected rows (sorted).
    """
    rng = np.random.default_rng(seed)
    pain = frames["pspi"] > 0
    for subject, group in frames.groupby("subject"):
        for name, has in (("pain (PSPI > 0)", pain[group.index].any()),
                          ("no-pain (PSPI = 0)", (~pain[group.index]).any())):
            if not has:
                raise SelectionError(f"UNBC subject {subject} has no {name} frame; every training subject needs "
                                     "one (list it in prepare.unbc.test_subjects or lower the frame count)")
    chosen: list[int] = []
    blocked: set[tuple[str, str, int]] = set()

    def take(candidates: pd.Index, limit: int) -> int:
        taken = 0
        for idx in candidates:
            if taken == limit:
                break
            row = frames.loc[idx]
            if (row.subject, row.sequence, row.frame) in blocked:
                continue
            chosen.append(idx)
            blocked.update((row.subject, row.sequence, row.frame + d) for d in (-1, 0, 1))
            taken += 1
        return taken

    for subject, group in frames.groupby("subject"):
        for is_pain in (True, False):
            if take(rng.permutation(group.index[pain[group.index] == is_pain]), 1) == 0:
                raise SelectionError(f"UNBC subject {subject}: every {'pain' if is_pain else 'no-pain'} frame "
                                     "is next to one already chosen; no non-consecutive frame is left")
    for is_pain in (True, False):
        have = int((pain[chosen] == is_pain).sum())
        need = n_total // 2 - have
        rest = rng.permutation(frames.index[(pain == is_pain) & ~frames.index.isin(chosen)])
        if take(rest, need) < need:
            label = "pain" if is_pain else "no-pain"
            raise SelectionError(f"UNBC: not enough non-consecutive {label} frames for {n_total // 2} "
                                 f"(prepare.unbc.train_frames + val_frames = {n_total})")
    return frames.loc[sorted(chosen)]
