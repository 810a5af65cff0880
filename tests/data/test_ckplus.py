"""ckplus.read on hand-written CK+ folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facetransfer.data import ckplus

PEAK = "S005/001/S005_001_00000011"
FACS = f"FACS/{PEAK}_facs.txt"
EMOTION = f"Emotion/{PEAK}_emotion.txt"
LANDMARKS = f"Landmarks/{PEAK}_landmarks.txt"


def write_sequence(tree, folder="S005/001", frames=(1, 2, 11),
                   facs="   1.0000000e+00   0.0000000e+00\n", emotion: str | None = None,
                   offset: float = 0.0):
    """Images for `frames`; FACS, emotion (unless None) and landmarks for the last one."""
    subject, sequence = folder.split("/")
    stems = [f"{folder}/{subject}_{sequence}_{frame:08d}" for frame in frames]
    for stem in stems:
        tree.image(f"cohn-kanade-images/{stem}.png")
    tree.text(f"FACS/{stems[-1]}_facs.txt", facs)
    if emotion is not None:
        tree.text(f"Emotion/{stems[-1]}_emotion.txt", emotion)
    return tree.points(f"Landmarks/{stems[-1]}_landmarks.txt", 68, offset)


@pytest.fixture
def happy(tree):
    """Three sequences (one without an emotion file) and an empty sequence folder."""
    points = write_sequence(
        tree, facs="   1.0000000e+00   0.0000000e+00\n   2.0000000e+00   0.0000000e+00\n"
                   "   4.0000000e+00   1.0000000e+00\n\n   5.0000000e+00   3.0000000e+00\n",
        emotion="   3.0000000e+00\n")
    # A FACS file for an earlier frame is not the peak's and is ignored.
    tree.text("FACS/S005/001/S005_001_00000002_facs.txt", "99 9\n")
    write_sequence(tree, "S005/002", frames=(1, 2), facs="   1.2000000e+01   4.0000000e+00\n",
                   offset=1.0)
    write_sequence(tree, "S010/001", frames=(7,), facs="", emotion="7.0", offset=2.0)
    (tree.root / "cohn-kanade-images/S011/003").mkdir(parents=True)
    tree.text("cohn-kanade-images/S010/001/.DS_Store", "")
    return points


def test_reads_one_peak_frame_per_sequence(tree, happy):
    df = ckplus.read(tree.root)
    assert list(df.columns) == ["subject", "sequence", "path", "frame", "n_frames", "aus",
                                "emotion", "landmarks"]
    assert list(zip(df["subject"], df["sequence"], strict=True)) == [
        ("S005", "001"), ("S005", "002"), ("S010", "001")]
    assert df["path"].tolist() == [
        str(tree.root / "cohn-kanade-images" / f"{PEAK}.png"),
        str(tree.root / "cohn-kanade-images/S005/002/S005_002_00000002.png"),
        str(tree.root / "cohn-kanade-images/S010/001/S010_001_00000007.png")]
    assert df["frame"].tolist() == [11, 2, 7]
    assert df["n_frames"].tolist() == [3, 2, 1]
    assert df.attrs["skipped_images"] == 0


def test_intensity_zero_means_present(tree, happy):
    aus = ckplus.read(tree.root)["aus"].tolist()
    assert aus == [{1: 0.0, 2: 0.0, 4: 1.0, 5: 3.0}, {12: 4.0}, {}]


def test_emotion_is_int64_with_na_without_a_file(tree, happy):
    emotion = ckplus.read(tree.root)["emotion"]
    assert str(emotion.dtype) == "Int64"
    assert emotion.iloc[0] == 3 and emotion.iloc[2] == 7
    assert emotion.iloc[1] is pd.NA


def test_landmarks_are_68_by_2_float32(tree, happy):
    landmarks = ckplus.read(tree.root)["landmarks"].tolist()
    assert landmarks[0].shape == (68, 2) and landmarks[0].dtype == np.float32
    assert landmarks[0][0].tolist() == [100.25, 50.5]
    assert landmarks[2][67].tolist() == [169.25, 184.5]
    np.testing.assert_array_equal(landmarks[0], happy)


def test_unknown_missing_images_policy(tree, happy):
    with pytest.raises(ValueError, match="'error' or 'skip'"):
        ckplus.read(tree.root, missing_images=None)


def test_missing_images_folder(tree, format_error):
    tree.text(FACS, "1 0")
    format_error(lambda: ckplus.read(tree.root), tree.root / "cohn-kanade-images", None,
                 "folder not found")


def test_peak_frame_without_facs_file(tree, format_error):
    write_sequence(tree)
    (tree.root / FACS).unlink()
    tree.text("FACS/S005/001/S005_001_00000002_facs.txt", "1 0\n")
    format_error(lambda: ckplus.read(tree.root), tree.root / FACS, None,
                 "FACS file of the peak frame not found")


@pytest.mark.parametrize("content, line, fragment", [
    ("1 0\n4 1 0\n", 2, "expected 2 numbers on a line, got 3"),
    ("1 0 0 0\n", 1, "expected 2 numbers on a line, got 4"),
    ("1 0\n\nAU4 1\n", 3, "column 1: expected a number, got 'AU4'"),
    ("1.5 0\n", 1, "AU code: expected a whole number"),
])
def test_bad_facs_file(tree, format_error, content, line, fragment):
    write_sequence(tree, facs=content)
    format_error(lambda: ckplus.read(tree.root), tree.root / FACS, line, fragment)


@pytest.mark.parametrize("content, line, fragment", [
    ("   2.5000000e+00\n", 1, "emotion code: expected a whole number, got 2.5"),
    ("   8.0000000e+00\n", 1, "emotion code: expected 0..7, got 8"),
    ("-1\n", 1, "emotion code: expected 0..7, got -1"),
    ("3 4\n", None, "expected exactly one number (the emotion code), got 2"),
    ("", None, "got 0"),
    ("happy\n", 1, "expected a number, got 'happy'"),
])
def test_bad_emotion_file(tree, format_error, content, line, fragment):
    write_sequence(tree, emotion=content)
    format_error(lambda: ckplus.read(tree.root), tree.root / EMOTION, line, fragment)


def test_missing_landmarks_file(tree, format_error):
    write_sequence(tree)
    (tree.root / LANDMARKS).unlink()
    format_error(lambda: ckplus.read(tree.root), tree.root / LANDMARKS, None,
                 "landmarks file of the peak frame not found")


def test_wrong_landmark_count(tree, format_error):
    write_sequence(tree)
    tree.points(LANDMARKS, 67)
    format_error(lambda: ckplus.read(tree.root), tree.root / LANDMARKS, None,
                 "expected 68 landmark lines 'x y', got 67")


def test_image_of_another_sequence(tree, format_error):
    write_sequence(tree)
    tree.image("cohn-kanade-images/S005/001/S005_002_00000012.png")
    format_error(lambda: ckplus.read(tree.root),
                 tree.root / "cohn-kanade-images/S005/001/S005_002_00000012.png", None,
                 "image name should be 'S005_001_<frame number>.png'")


def test_symlinked_landmarks_escape(tree, outside, format_error):
    write_sequence(tree)
    (tree.root / LANDMARKS).unlink()
    tree.link(LANDMARKS, outside / "secret.txt")
    format_error(lambda: ckplus.read(tree.root), tree.root / LANDMARKS, None, "leads outside")


def test_symlinked_sequence_folder_escape(tree, outside, format_error):
    write_sequence(tree)
    (outside / "secret.png").rename(outside / "S005_009_00000001.png")
    tree.link("cohn-kanade-images/S005/009", outside)
    format_error(lambda: ckplus.read(tree.root),
                 tree.root / "cohn-kanade-images/S005/009/S005_009_00000001.png", None,
                 "leads outside")
