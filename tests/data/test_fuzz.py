"""Property-based fuzzing of the four readers (issue 18): any bytes in any label file of a native layout give
a frame or a DatasetFormatError, never another exception (hypothesis, derandomized so CI sees the same cases)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facetransfer.data import affectnet, ckplus, ferplus, unbc
from facetransfer.data.errors import DatasetFormatError

READERS = {"affectnet": lambda root: affectnet.read(root, "training"), "unbc": unbc.read, "ckplus": ckplus.read,
           "ferplus": ferplus.read}
# One file of each kind every reader parses: (dataset, glob under its root; the first match is fuzzed).
TARGETS = [("affectnet", "Manually_Annotated_file_lists/training.csv"),
           ("unbc", "Frame_Labels/PSPI/*/*/*.txt"), ("unbc", "Frame_Labels/FACS/*/*/*.txt"),
           ("unbc", "AAM_landmarks/*/*/*.txt"),
           ("ckplus", "FACS/*/*/*.txt"), ("ckplus", "Emotion/*/*/*.txt"), ("ckplus", "Landmarks/*/*/*.txt"),
           ("ferplus", "fer2013.csv"), ("ferplus", "fer2013new.csv")]


@pytest.fixture(scope="module")
def trees(smoke_benchmark, tmp_path_factory):
    """A writable copy of the smoke benchmark's four datasets (each example restores what it changed)."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in READERS:
        shutil.copytree(smoke_benchmark / name, root / name)
    return root


def _mutations(original: bytes) -> st.SearchStrategy[bytes]:
    """The file with a slice replaced by other bytes (cut, garbled or extended): near-valid input, where
    parsers break, beside wholly random bytes and random text."""
    n = len(original)
    number = st.one_of(st.integers(-10**6, 10**6), st.floats()).map(lambda x: str(x).encode())  # nan, inf, -0.0 too
    garbled = st.tuples(st.integers(0, n), st.integers(0, min(n, 64)), st.binary(max_size=32))
    renumbered = st.tuples(st.integers(0, n), st.integers(0, 12), number)  # a value out of its range, say
    return st.one_of(garbled.map(lambda e: original[:e[0]] + e[2] + original[e[0] + e[1]:]),
                     renumbered.map(lambda e: original[:e[0]] + e[2] + original[e[0] + e[1]:]),
                     number, st.binary(max_size=256), st.text(max_size=200).map(str.encode))


@pytest.mark.parametrize(("dataset", "pattern"), TARGETS)
def test_any_bytes_give_a_frame_or_a_format_error(trees, dataset, pattern):
    target = sorted((trees / dataset).glob(pattern))[0]
    original = target.read_bytes()

    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(_mutations(original))
    def reads_or_refuses(data: bytes) -> None:
        target.write_bytes(data)
        try:
            frame = READERS[dataset](trees / dataset)
        except DatasetFormatError as err:
            assert "\n" not in str(err)  # one line
            return
        finally:
            target.write_bytes(original)
        assert isinstance(frame, pd.DataFrame)

    reads_or_refuses()
