"""affectnet.read on hand-written Manually_Annotated_file_lists CSVs."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from facetransfer.data import affectnet
from facetransfer.data.errors import DatasetFormatError

HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
          "expression,valence,arousal")
CSV = "Manually_Annotated_file_lists/training.csv"
IMAGES = "Manually_Annotated_Images"
# 68 x,y pairs: point i is (10 + i, 20.5 + i).
LANDMARKS = ";".join(f"{v:.2f}" for i in range(68) for v in (10 + i, 20.5 + i))
LANDMARKS_B = ";".join(f"{v:.3f}" for i in range(68) for v in (200 - i, 0.125 * i))


def write(tree, rows: list[str], images=None, split="training", newline="\n"):
    """Write the split's CSV (header + rows) and images for every row unless given."""
    path = tree.text(f"Manually_Annotated_file_lists/{split}.csv",
                     newline.join([HEADER, *rows]) + newline)
    if images is None:
        images = [row.split(",", 1)[0] for row in rows if row]
    for rel in images:
        tree.image(f"{IMAGES}/{rel}")
    return path


def row(rel="101/a.jpg", box="10,12,100,110", landmarks=LANDMARKS, expression="1",
        valence="0.5", arousal="-0.25"):
    return f"{rel},{box},{landmarks},{expression},{valence},{arousal}"


HAPPY_ROWS = [
    row(),                                                                 # line 2
    row("101/b.jpg", "0,0,50,50", f'"{LANDMARKS}"', "0", "0", "0"),        # 3, quoted field
    row("102/c.jpg", "1,2,3,4", expression="8", valence="-2", arousal="-2"),   # 4 None
    row("102/d.jpg", "1,2,3,4", expression="9", valence="-2", arousal="-2"),   # 5 Uncertain
    row("102/e.jpg", "1,2,3,4", expression="10", valence="-2", arousal="-2"),  # 6 Non-Face
    row("103/f.jpg", "-1,-1,-1,-1", expression="3"),                       # 7 no face box
    "",                                                                    # 8 blank
    row(expression="7"),                                                   # 9 duplicate of 2
    row("104/g.jpg", "5,6,7,8", LANDMARKS_B, "4", "-0.75", "0.875"),       # 10
]
HAPPY_IMAGES = ["101/a.jpg", "101/b.jpg", "104/g.jpg"]  # dropped rows have no image


def test_reads_kept_rows_in_file_order(tree):
    write(tree, HAPPY_ROWS, images=HAPPY_IMAGES)
    df = affectnet.read(tree.root, "training")
    assert list(df.columns) == ["path", "rel_path", "label", "face_box", "landmarks",
                                "valence", "arousal", "line"]
    assert df["rel_path"].tolist() == ["101/a.jpg", "101/b.jpg", "101/a.jpg", "104/g.jpg"]
    assert df["path"].tolist() == [str(tree.root / IMAGES / r) for r in df["rel_path"]]
    assert df["label"].tolist() == [1, 0, 7, 4]
    assert df["label"].dtype == np.int64
    assert df["face_box"].tolist() == [(10, 12, 100, 110), (0, 0, 50, 50),
                                       (10, 12, 100, 110), (5, 6, 7, 8)]
    assert df["valence"].tolist() == [0.5, 0.0, 0.5, -0.75]
    assert df["arousal"].tolist() == [-0.25, 0.0, -0.25, 0.875]
    assert df["line"].tolist() == [2, 3, 9, 10]
    assert df.attrs["skipped_images"] == 0


def test_landmarks_are_68_by_2_float32_pairs(tree):
    write(tree, HAPPY_ROWS, images=HAPPY_IMAGES)
    landmarks = affectnet.read(tree.root, "training")["landmarks"]
    first, last = landmarks.iloc[0], landmarks.iloc[3]
    assert first.shape == (68, 2) and first.dtype == np.float32
    assert first[0].tolist() == [10.0, 20.5] and first[67].tolist() == [77.0, 87.5]
    assert last[0].tolist() == [200.0, 0.0] and last[67].tolist() == [133.0, 8.375]
    np.testing.assert_array_equal(landmarks.iloc[1], first)  # quoted field, same values


def test_validation_split_and_crlf_line_endings(tree):
    write(tree, [row("9/v.png", expression="5")], split="validation", newline="\r\n")
    df = affectnet.read(tree.root, "validation")
    assert df["rel_path"].tolist() == ["9/v.png"]
    assert df["label"].tolist() == [5]
    assert df["arousal"].tolist() == [-0.25]


def test_line_is_where_a_multiline_record_starts(tree):
    split_landmarks = '"' + LANDMARKS.replace(";12.00;", ";12.00\n;", 1) + '"'
    write(tree, [row(landmarks=split_landmarks), row("9/v.png", expression="2")],
          images=["101/a.jpg", "9/v.png"])
    df = affectnet.read(tree.root, "training")
    assert df["line"].tolist() == [2, 4]
    assert df["landmarks"].iloc[0][2].tolist() == [12.0, 22.5]


def test_header_only_gives_empty_frame_with_columns(tree):
    write(tree, [])
    df = affectnet.read(tree.root, "training")
    assert len(df) == 0
    assert list(df.columns) == ["path", "rel_path", "label", "face_box", "landmarks",
                                "valence", "arousal", "line"]
    assert df["label"].dtype == np.int64


def test_unknown_split_is_a_plain_value_error(tree):
    with pytest.raises(ValueError, match="'training', 'validation'") as info:
        affectnet.read(tree.root, "test")
    assert type(info.value) is ValueError


def test_unknown_missing_images_policy_is_a_plain_value_error(tree):
    write(tree, [row()])
    with pytest.raises(ValueError, match="'error' or 'skip'") as info:
        affectnet.read(tree.root, "training", missing_images="ignore")
    assert type(info.value) is ValueError


def test_missing_root(tmp_path, format_error):
    root = tmp_path / "nope"
    format_error(lambda: affectnet.read(root, "training"), root, None, "dataset root not found")


def test_missing_csv(tree, format_error):
    format_error(lambda: affectnet.read(tree.root, "validation"),
                 tree.root / "Manually_Annotated_file_lists/validation.csv", None, "not found")


def test_empty_csv(tree, format_error):
    path = tree.text(CSV, "")
    format_error(lambda: affectnet.read(tree.root, "training"), path, 1, "empty file", HEADER)


@pytest.mark.parametrize("header, problem", [
    (HEADER.replace(",arousal", ""), "missing ['arousal']"),
    (HEADER + ",extra", "unexpected ['extra']"),
    (HEADER.replace("expression", "label"), "missing ['expression']; unexpected ['label']"),
    (HEADER.replace("face_x,face_y", "face_y,face_x"), "got 'subDirectory_filePath,face_y"),
])
def test_wrong_header(tree, format_error, header, problem):
    path = tree.text(CSV, header + "\n" + row() + "\n")
    format_error(lambda: affectnet.read(tree.root, "training"), path, 1,
                 f"expected header '{HEADER}'", problem)


@pytest.mark.parametrize("bad_row, fragment", [
    (row() + ",1", "expected 9 fields, got 10"),
    (row().rsplit(",", 1)[0], "expected 9 fields, got 8"),
    (row(landmarks=LANDMARKS.rsplit(";", 2)[0]), "expected 136 numbers (68 x,y pairs)"),
    (row(landmarks=LANDMARKS + ";1"), "got 137"),
    (row(landmarks=LANDMARKS.replace("12.00", "x", 1)),
     "facial_landmarks: expected a number, got 'x'"),
    (row(landmarks=LANDMARKS.replace("12.00", "nan", 1)), "facial_landmarks: expected a finite"),
    (row(box="10,12,wide,110"), "face_width: expected an integer, got 'wide'"),
    (row(box="10.5,12,100,110"), "face_x: expected an integer, got '10.5'"),
    (row(expression="happy"), "expression: expected an integer, got 'happy'"),
    (row(expression="12"), "unknown expression id 12, expected 0..10"),
    (row(expression="-1"), "unknown expression id -1, expected 0..10"),
    (row(valence=""), "valence: expected a number, got ''"),
    (row(arousal="high"), "arousal: expected a number, got 'high'"),
    (row(rel=""), "subDirectory_filePath: expected an image path"),
    ('"101/a.jpg"x' + row()[len("101/a.jpg"):], "malformed CSV: ',' expected after '\"'"),
])
def test_bad_row_names_file_and_line(tree, format_error, bad_row, fragment):
    path = write(tree, [row("1/ok.jpg"), bad_row], images=["1/ok.jpg", "101/a.jpg"])
    format_error(lambda: affectnet.read(tree.root, "training"), path, 3, fragment)


def test_not_utf8_names_the_line(tree, format_error):
    path = tree.raw(CSV, (HEADER + "\n" + row() + "\n").encode() + b"\xff\xfe,1\n")
    tree.image(f"{IMAGES}/101/a.jpg")
    format_error(lambda: affectnet.read(tree.root, "training"), path, 3, "not UTF-8")


def test_missing_image_is_an_error_by_default(tree, format_error):
    path = write(tree, [row(), row("7/gone.jpg")], images=["101/a.jpg"])
    format_error(lambda: affectnet.read(tree.root, "training"), path, 3,
                 f"image not found: {tree.root / IMAGES / '7/gone.jpg'}")


def test_missing_image_skipped_and_counted(tree):
    write(tree, [row("7/gone.jpg"), row(), row("7/gone2.jpg", expression="2")],
          images=["101/a.jpg"])
    df = affectnet.read(tree.root, "training", missing_images="skip")
    assert df["rel_path"].tolist() == ["101/a.jpg"]
    assert df["line"].tolist() == [3]
    assert df.attrs["skipped_images"] == 2


def test_a_folder_is_not_an_image(tree, format_error):
    path = write(tree, [row("101")], images=["101/a.jpg"])
    format_error(lambda: affectnet.read(tree.root, "training"), path, 2, "image not found")


@pytest.mark.parametrize("rel", ["../../outside/secret.png", "101/../../../outside/secret.png"])
def test_dotdot_escape_is_refused(tree, outside, format_error, rel):
    path = write(tree, [row(rel)], images=[])
    err = format_error(lambda: affectnet.read(tree.root, "training", missing_images="skip"),
                       path, 2, "leads outside the dataset root")
    assert "secret.png" in str(err)


def test_absolute_path_is_refused(tree, outside, format_error):
    path = write(tree, [row(str(outside / "secret.png"))], images=[])
    format_error(lambda: affectnet.read(tree.root, "training"), path, 2, "leads outside")


def test_symlinked_image_escape_is_refused(tree, outside, format_error):
    path = write(tree, [row("101/a.jpg"), row("101/evil.jpg")], images=["101/a.jpg"])
    tree.link(f"{IMAGES}/101/evil.jpg", outside / "secret.png")
    format_error(lambda: affectnet.read(tree.root, "training"), path, 3, "leads outside")


def test_symlinked_folder_escape_is_refused(tree, outside, format_error):
    path = write(tree, [row("evil/secret.png")], images=[])
    tree.link(f"{IMAGES}/evil", outside)
    format_error(lambda: affectnet.read(tree.root, "training"), path, 2, "leads outside")


def test_symlink_inside_the_root_is_followed(tree):
    write(tree, [row("101/alias.jpg")], images=["101/a.jpg"])
    tree.link(f"{IMAGES}/101/alias.jpg", tree.root / IMAGES / "101/a.jpg")
    df = affectnet.read(tree.root, "training")
    assert df["path"].tolist() == [str(tree.root / IMAGES / "101/a.jpg")]
    assert df["rel_path"].tolist() == ["101/alias.jpg"]


def test_error_pickles_and_is_a_value_error(tree):
    path = write(tree, [row(expression="12")])
    with pytest.raises(ValueError) as info:
        affectnet.read(tree.root, "training")
    err = info.value
    assert isinstance(err, DatasetFormatError)
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.path, copy.line) == (str(err), path, 2)


def test_skip_count_covers_only_kept_rows_of_a_large_file(tree):
    rows = [row(f"{i % 50}/{i}.jpg", expression=str(i % 11)) for i in range(10_000)]
    write(tree, rows, images=[])
    df = affectnet.read(tree.root, "training", missing_images="skip")
    kept = sum(1 for i in range(10_000) if i % 11 < 8)
    assert (len(df), df.attrs["skipped_images"]) == (0, kept)
    assert isinstance(df, pd.DataFrame)


def test_headerless_file_is_read_from_line_one(tree):
    # Some copies of the real validation.csv have no header row.
    path = tree.text(f"{CSV.replace('training', 'validation')}",
                     "\n".join([row(), row("104/g.jpg", expression="4")]) + "\n")
    for rel in ("101/a.jpg", "104/g.jpg"):
        tree.image(f"{IMAGES}/{rel}")
    df = affectnet.read(tree.root, "validation")
    assert df["label"].tolist() == [1, 4] and df["line"].tolist() == [1, 2]
    assert path.name == "validation.csv"
