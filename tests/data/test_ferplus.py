"""ferplus.read on hand-written fer2013.csv / fer2013new.csv pairs."""

from __future__ import annotations

import numpy as np
import pytest

from facetransfer.data import ferplus

PIXELS_HEADER = "emotion,pixels,Usage"
VOTES_HEADER = ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,"
                "contempt,unknown,NF")
# Three distinct 48x48 images, pixel k of each given by a formula.
PIX_A = " ".join(str(k % 256) for k in range(2304))
PIX_B = " ".join(str(255 - k % 200) for k in range(2304))
PIX_C = " ".join(str((7 * k) % 256) for k in range(2304))

# (fer2013 emotion, pixels, usage, image name, votes); the comment says what happens.
ROWS = [
    (0, PIX_A, "Training", "fer0000000.png", "4,0,0,0,4,0,0,0,0,2"),    # tie neutral/anger
    (6, PIX_A, "Training", "fer0000001.png", "6,0,0,1,3,0,0,0,0,0"),    # neutral (0)
    (2, PIX_B, "Training", "", "0,0,0,0,0,0,0,0,0,10"),                 # removed image
    (3, PIX_B, "PublicTest", "fer0000003.png", "0,0,0,0,0,0,0,0,0,10"),  # NF majority
    (4, PIX_C, "PublicTest", "fer0000004.png", "1,0,0,0,0,0,0,2,7,0"),   # unknown majority
    (5, PIX_C, "PrivateTest", "fer0000005.png", "0,0,0,0,0,0,0,0,0,0"),  # no votes
    (1, PIX_B, "PrivateTest", "fer0000006.png", "0,0,1,0,0,0,0,9,0,0"),  # contempt (7)
    (3, PIX_C, "Training", "fer0000007.png", "0,10,0,0,0,0,0,0,0,0"),    # happiness (1)
    (2, PIX_A, "PrivateTest", "fer0000008.png", "0,0,0,0,0,0,0,5,0,5"),  # tie contempt/NF
]


def write(tree, rows=ROWS, pixels_rows=None, votes_rows=None):
    """Both CSVs from `rows`, unless given as ready-made data lines."""
    if pixels_rows is None:
        pixels_rows = [f"{emotion},{pixels},{usage}" for emotion, pixels, usage, _, _ in rows]
    if votes_rows is None:
        votes_rows = [f"{usage},{name},{votes}" for _, _, usage, name, votes in rows]
    pixels = tree.text("fer2013.csv", "\n".join([PIXELS_HEADER, *pixels_rows]) + "\n")
    # The votes file uses CRLF line ends, as files edited on Windows do.
    votes = tree.text("fer2013new.csv", "\r\n".join([VOTES_HEADER, *votes_rows]) + "\r\n")
    return pixels, votes


def grid(pixels: str) -> np.ndarray:
    return np.array([int(v) for v in pixels.split()], dtype=np.uint8).reshape(48, 48)


def test_keeps_clear_majorities_of_emotions(tree):
    write(tree)
    df = ferplus.read(tree.root)
    assert list(df.columns) == ["usage", "pixels", "votes", "label", "image_name",
                                "fer2013_emotion", "row"]
    assert df["row"].tolist() == [1, 6, 7]
    assert df["label"].tolist() == [0, 7, 1]
    assert df["usage"].tolist() == ["Training", "PrivateTest", "Training"]
    assert df["image_name"].tolist() == ["fer0000001.png", "fer0000006.png", "fer0000007.png"]
    assert df["fer2013_emotion"].tolist() == [6, 1, 3]
    assert df["votes"].iloc[1].tolist() == [0, 0, 1, 0, 0, 0, 0, 9, 0, 0]
    assert df["votes"].iloc[1].dtype == np.int64


def test_counts_dropped_rows_by_reason(tree):
    write(tree)
    dropped = ferplus.read(tree.root).attrs["dropped"]
    assert dropped == {"no_image": 1, "no_votes": 1, "tie": 2, "unknown_or_nf": 2}


def test_pixels_are_48_by_48_uint8(tree):
    write(tree)
    pixels = ferplus.read(tree.root)["pixels"].tolist()
    assert pixels[0].shape == (48, 48) and pixels[0].dtype == np.uint8
    assert pixels[0][0, :3].tolist() == [0, 1, 2] and pixels[0][47, 47] == 2303 % 256
    assert pixels[1][0, 0] == 255 and pixels[2][0, 1] == 7
    np.testing.assert_array_equal(pixels[1], grid(PIX_B))
    np.testing.assert_array_equal(pixels[2], grid(PIX_C))


def test_header_only_files_give_empty_frame(tree):
    write(tree, rows=[])
    df = ferplus.read(tree.root)
    assert len(df) == 0 and df["label"].dtype == np.int64
    assert df.attrs["dropped"] == {"no_image": 0, "no_votes": 0, "tie": 0, "unknown_or_nf": 0}


def test_missing_root(tmp_path, format_error):
    format_error(lambda: ferplus.read(tmp_path / "x"), tmp_path / "x", None, "root not found")


@pytest.mark.parametrize("name", ["fer2013.csv", "fer2013new.csv"])
def test_missing_file(tree, format_error, name):
    write(tree)
    (tree.root / name).unlink()
    format_error(lambda: ferplus.read(tree.root), tree.root / name, None, "not found")


@pytest.mark.parametrize("name, header, problem", [
    ("fer2013.csv", "emotion,pixels", "missing ['Usage']"),
    ("fer2013new.csv", VOTES_HEADER.replace(",NF", ""), "missing ['NF']"),
    ("fer2013new.csv", VOTES_HEADER.replace("Image name", "Image"),
     "missing ['Image name']; unexpected ['Image']"),
])
def test_wrong_header(tree, format_error, name, header, problem):
    write(tree)
    path = tree.root / name
    path.write_text(header + "\n" + path.read_text().split("\n", 1)[1])
    format_error(lambda: ferplus.read(tree.root), path, 1, "expected header", problem)


@pytest.mark.parametrize("pixel_rows, vote_rows", [(9, 8), (8, 9)])
def test_row_counts_differ(tree, format_error, pixel_rows, vote_rows):
    _, votes = write(tree, pixels_rows=[f"{r[0]},{r[1]},{r[2]}" for r in ROWS[:pixel_rows]],
                     votes_rows=[f"{r[2]},{r[3]},{r[4]}" for r in ROWS[:vote_rows]])
    format_error(lambda: ferplus.read(tree.root), votes, None,
                 f"has {vote_rows} data rows but fer2013.csv has {pixel_rows}")


def test_usage_differs(tree, format_error):
    rows = [*ROWS[:3], (3, PIX_B, "PrivateTest", "fer0000003.png", "0,0,0,0,0,0,0,0,0,10")]
    _, votes = write(tree, rows, votes_rows=[f"{r[2]},{r[3]},{r[4]}" for r in ROWS[:4]])
    format_error(lambda: ferplus.read(tree.root), votes, 5,
                 "Usage 'PublicTest' does not match fer2013.csv line 5 ('PrivateTest')")


def test_unknown_usage(tree, format_error):
    _, votes = write(tree, [(0, PIX_A, "Validation", "fer0.png", "1,0,0,0,0,0,0,0,0,0")])
    format_error(lambda: ferplus.read(tree.root), votes, 2,
                 "expected one of Training, PublicTest, PrivateTest")


@pytest.mark.parametrize("votes_text, fragment", [
    ("1,0,0,0,-1,0,0,0,0,0", "votes must be counts 0..2147483647"),
    ("1,0,0,0,99999999999999999999999,0,0,0,0,0", "votes must be counts"),
    ("1,0,0,0,0,0,0,0.5,0,0", "contempt: expected an integer, got '0.5'"),
    ("1,0,0,0,0,0,0,0,0,", "NF: expected an integer, got ''"),
    ("1,0,0,0,0,0,0,0,0", "expected 12 fields, got 11"),
])
def test_bad_votes(tree, format_error, votes_text, fragment):
    rows = [ROWS[1], (0, PIX_A, "Training", "fer1.png", votes_text)]
    _, votes = write(tree, rows)
    format_error(lambda: ferplus.read(tree.root), votes, 3, fragment)


@pytest.mark.parametrize("pixels_text, fragment", [
    (PIX_A.rsplit(" ", 1)[0], "pixels: expected 2304 values (48x48), got 2303"),
    (PIX_A + " 0", "got 2305"),
    ("", "got 0"),
    ("   ", "got 0"),
    (PIX_A.replace(" 17 ", " x ", 1), "pixels: expected an integer, got 'x'"),
    (PIX_A.replace(" 17 ", " 1.5 ", 1), "pixels: expected an integer, got '1.5'"),
    (PIX_A.replace(" 17 ", " 256 ", 1), "pixels: value 256 outside 0..255"),
    (PIX_A.replace(" 17 ", " -1 ", 1), "pixels: value -1 outside 0..255"),
    (PIX_A.replace(" 17 ", " -99999999999999999999 ", 1), "outside 0..255"),
    (PIX_A.replace(" 17 ", " 99999999999999999999 ", 1), "outside 0..255"),
])
def test_bad_pixels(tree, format_error, pixels_text, fragment):
    pixels, _ = write(tree, [ROWS[1], (0, pixels_text, "Training", "fer1.png", "1" + ",0" * 9)])
    format_error(lambda: ferplus.read(tree.root), pixels, 3, fragment)


@pytest.mark.parametrize("emotion, fragment", [
    ("7", "emotion: expected 0..6, got 7"),
    ("angry", "emotion: expected an integer, got 'angry'"),
])
def test_bad_fer2013_emotion(tree, format_error, emotion, fragment):
    pixels, _ = write(tree, [ROWS[1], (emotion, PIX_A, "Training", "fer1.png", "1" + ",0" * 9)])
    format_error(lambda: ferplus.read(tree.root), pixels, 3, fragment)


def test_symlinked_file_escape(tree, outside, format_error):
    write(tree)
    (tree.root / "fer2013.csv").unlink()
    tree.link("fer2013.csv", outside / "secret.txt")
    format_error(lambda: ferplus.read(tree.root), tree.root / "fer2013.csv", None,
                 "leads outside")
