"""unbc.read on hand-written UNBC-McMaster folders."""

from __future__ import annotations

import numpy as np
import pytest

from facetransfer.data import unbc

SUBJECT, SEQUENCE = "042-ll042", "ll042t1aaaff"
STEM = f"{SEQUENCE}001"
FOLDER = f"{SUBJECT}/{SEQUENCE}"
PSPI = f"Frame_Labels/PSPI/{FOLDER}/{STEM}_facs.txt"
FACS = f"Frame_Labels/FACS/{FOLDER}/{STEM}_facs.txt"
AAM = f"AAM_landmarks/{FOLDER}/{STEM}_aam.txt"


def write_frame(tree, folder=FOLDER, stem=STEM, pspi="   0.0000000e+00\n", facs="",
                aam_offset: float | None = 0.0):
    """Image, PSPI and FACS files (and the AAM file unless aam_offset is None)."""
    tree.image(f"Images/{folder}/{stem}.png")
    tree.text(f"Frame_Labels/PSPI/{folder}/{stem}_facs.txt", pspi)
    tree.text(f"Frame_Labels/FACS/{folder}/{stem}_facs.txt", facs)
    if aam_offset is None:
        return None
    return tree.points(f"AAM_landmarks/{folder}/{stem}_aam.txt", 66, aam_offset)


@pytest.fixture
def happy(tree):
    """Two subjects, three sequences, five frames; returns the expected AAM points."""
    points = {
        1: write_frame(tree),  # empty FACS file
        2: write_frame(tree, stem=f"{SEQUENCE}002", pspi="   3.0000000e+00\n",
                       facs="   4.0000000e+00   2.0000000e+00\n"
                            "\n"
                            "   6.0000000e+00   1.0000000e+00   0.0000000e+00   0.0000000e+00\n",
                       aam_offset=1.0),
        10: write_frame(tree, stem=f"{SEQUENCE}010", pspi="\n  1.5\n", facs=" \n \t\n",
                        aam_offset=None),  # whitespace-only FACS, no AAM file
    }
    write_frame(tree, f"{SUBJECT}/ll042t1aiaff", "ll042t1aiaff001", facs="43 5\n")
    write_frame(tree, "047-jl047/jl047t1aaaff", "jl047t1aaaff005", pspi="1e+00",
                facs="9 1.0000000e+00 0.0000000e+00 0.0000000e+00\n")
    # Label files without an image, stray files and hidden files are ignored.
    tree.text(f"Frame_Labels/PSPI/{FOLDER}/{SEQUENCE}003_facs.txt", "oops")
    tree.text(f"Frame_Labels/FACS/{FOLDER}/{SEQUENCE}003_facs.txt", "oops")
    tree.text(f"Images/{FOLDER}/notes.txt", "not an image")
    tree.text(f"Images/{FOLDER}/.{SEQUENCE}004.png", "macOS shadow file")
    tree.text("Images/README", "not a subject")
    return points


def test_reads_every_frame_sorted(tree, happy):
    df = unbc.read(tree.root)
    assert list(df.columns) == ["subject", "sequence", "frame", "path", "pspi", "aus",
                                "landmarks"]
    assert list(zip(df["subject"], df["sequence"], df["frame"], strict=True)) == [
        ("042-ll042", SEQUENCE, 1), ("042-ll042", SEQUENCE, 2), ("042-ll042", SEQUENCE, 10),
        ("042-ll042", "ll042t1aiaff", 1), ("047-jl047", "jl047t1aaaff", 5),
    ]
    assert df["frame"].dtype == np.int64
    assert df["path"].iloc[2] == str(tree.root / "Images" / FOLDER / f"{SEQUENCE}010.png")
    assert df["pspi"].tolist() == [0.0, 3.0, 1.5, 0.0, 1.0]
    assert df["aus"].tolist() == [{}, {4: 2.0, 6: 1.0}, {}, {43: 5.0}, {9: 1.0}]
    assert df.attrs["skipped_images"] == 0


def test_landmarks_are_66_by_2_or_none(tree, happy):
    landmarks = unbc.read(tree.root)["landmarks"].tolist()
    assert landmarks[2] is None
    assert landmarks[0].shape == (66, 2) and landmarks[0].dtype == np.float32
    assert landmarks[0][0].tolist() == [100.25, 50.5]
    assert landmarks[1][65].tolist() == [166.25, 180.5]
    np.testing.assert_array_equal(landmarks[1], happy[2])


def test_skip_policy_is_accepted(tree, happy):
    df = unbc.read(tree.root, missing_images="skip")
    assert len(df) == 5 and df.attrs["skipped_images"] == 0


def test_empty_images_folder_gives_empty_frame(tree):
    (tree.root / "Images").mkdir()
    df = unbc.read(tree.root)
    assert len(df) == 0
    assert list(df.columns) == ["subject", "sequence", "frame", "path", "pspi", "aus",
                                "landmarks"]


def test_unknown_missing_images_policy(tree, happy):
    with pytest.raises(ValueError, match="'error' or 'skip'"):
        unbc.read(tree.root, missing_images="warn")


def test_missing_root(tmp_path, format_error):
    format_error(lambda: unbc.read(tmp_path / "none"), tmp_path / "none", None, "root not found")


def test_missing_images_folder(tree, format_error):
    tree.text(PSPI, "0")
    format_error(lambda: unbc.read(tree.root), tree.root / "Images", None, "folder not found")


def test_missing_pspi_file(tree, format_error):
    write_frame(tree)
    (tree.root / PSPI).unlink()
    format_error(lambda: unbc.read(tree.root), tree.root / PSPI, None, "PSPI label file not found")


@pytest.mark.parametrize("content, line, fragment", [
    ("", None, "expected exactly one number (the PSPI score), got 0"),
    ("1.0 2.0\n", None, "expected exactly one number (the PSPI score), got 2"),
    ("1.0\n2.0\n", None, "got 2"),
    ("\nabc\n", 2, "column 1: expected a number, got 'abc'"),
    ("inf\n", 1, "expected a finite number"),
    ("-1.0000000e+00\n", 1, "expected a PSPI score 0..16, got -1.0"),
    ("99\n", 1, "expected a PSPI score 0..16, got 99.0"),  # issue 18: had been accepted
])
def test_bad_pspi_file(tree, format_error, content, line, fragment):
    write_frame(tree, pspi=content)
    format_error(lambda: unbc.read(tree.root), tree.root / PSPI, line, fragment)


def test_missing_facs_file(tree, format_error):
    write_frame(tree)
    (tree.root / FACS).unlink()
    format_error(lambda: unbc.read(tree.root), tree.root / FACS, None, "FACS label file not found")


@pytest.mark.parametrize("content, line, fragment", [
    ("4 2\n6 1 0\n", 2, "expected 2 or 4 numbers on a line, got 3"),
    ("4\n", 1, "expected 2 or 4 numbers on a line, got 1"),
    ("4 2\n6 1 0 0 0\n", 2, "got 5"),
    ("4 2\n6 strong\n", 2, "column 2: expected a number, got 'strong'"),
    ("4.5 2\n", 1, "AU code: expected a whole number, got 4.5"),
    ("0 2\n", 1, "AU code: expected a positive number"),
    ("4 2\n4 3\n", 2, "AU 4 is listed twice"),
    ("4 -2\n", 1, "expected an intensity 0..5 (FACS A-E = 1-5, 0 = not given), got -2.0"),
    ("4 2\n6 7\n", 2, "AU 6: expected an intensity 0..5"),  # issue 18: had been accepted
])
def test_bad_facs_file(tree, format_error, content, line, fragment):
    write_frame(tree, facs=content)
    format_error(lambda: unbc.read(tree.root), tree.root / FACS, line, fragment)


def test_facs_file_not_utf8(tree, format_error):
    write_frame(tree)
    tree.raw(FACS, b"4 2\n\xff 1\n")
    format_error(lambda: unbc.read(tree.root), tree.root / FACS, 2, "not UTF-8")


def test_aam_file_with_wrong_row_count(tree, format_error):
    write_frame(tree)
    tree.points(AAM, 65)
    format_error(lambda: unbc.read(tree.root), tree.root / AAM, None,
                 "expected 66 landmark lines 'x y', got 65")


def test_aam_file_with_wrong_columns(tree, format_error):
    write_frame(tree)
    tree.text(AAM, "1 2\n" * 3 + "1 2 3\n" + "1 2\n" * 62)
    format_error(lambda: unbc.read(tree.root), tree.root / AAM, 4,
                 "expected 2 numbers on a line, got 3")


@pytest.mark.parametrize("name", ["ll042t1aaaff.png", "frame001.png", "ll042t1aaaffx01.png"])
def test_image_name_must_be_sequence_plus_frame(tree, format_error, name):
    write_frame(tree)
    tree.image(f"Images/{FOLDER}/{name}")
    format_error(lambda: unbc.read(tree.root), tree.root / "Images" / FOLDER / name, None,
                 "image name should be 'll042t1aaaff<frame number>.png'")


def test_same_frame_twice(tree, format_error):
    write_frame(tree)
    write_frame(tree, stem=f"{SEQUENCE}01")
    format_error(lambda: unbc.read(tree.root),
                 tree.root / "Images" / FOLDER / f"{SEQUENCE}01.png", None,
                 f"frame 1 also given by {SEQUENCE}001.png")


def test_symlinked_image_escape(tree, outside, format_error):
    write_frame(tree)
    write_frame(tree, stem=f"{SEQUENCE}002")
    (tree.root / "Images" / FOLDER / f"{SEQUENCE}002.png").unlink()
    tree.link(f"Images/{FOLDER}/{SEQUENCE}002.png", outside / "secret.png")
    format_error(lambda: unbc.read(tree.root),
                 tree.root / "Images" / FOLDER / f"{SEQUENCE}002.png", None, "leads outside")


def test_symlinked_label_escape(tree, outside, format_error):
    write_frame(tree)
    (tree.root / PSPI).unlink()
    tree.link(PSPI, outside / "secret.txt")
    format_error(lambda: unbc.read(tree.root), tree.root / PSPI, None, "leads outside")


def test_symlinked_subject_folder_escape(tree, outside, format_error):
    (outside / "seq").mkdir()
    (outside / "secret.png").rename(outside / "seq" / "seq001.png")
    tree.link("Images/999-evil", outside)
    format_error(lambda: unbc.read(tree.root),
                 tree.root / "Images/999-evil/seq/seq001.png", None, "leads outside")


def test_symlink_inside_the_root_is_followed(tree, happy):
    real = tree.root / "Images" / FOLDER / f"{SEQUENCE}001.png"
    tree.link(f"Images/{SUBJECT}/ll042t1aiaff/ll042t1aiaff002.png", real)
    tree.text(f"Frame_Labels/PSPI/{SUBJECT}/ll042t1aiaff/ll042t1aiaff002_facs.txt", "2")
    tree.text(f"Frame_Labels/FACS/{SUBJECT}/ll042t1aiaff/ll042t1aiaff002_facs.txt", "")
    df = unbc.read(tree.root)
    assert df["path"].iloc[4] == str(real)
    assert df["pspi"].iloc[4] == 2.0
