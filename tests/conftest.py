"""Fixtures shared by the whole suite: the repo root and one tiny synthetic benchmark."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import urllib.request
from pathlib import Path

import pytest
import torch

from facetransfer.config import SynthConfig
from facetransfer.data.synth.generate import generate

REPO = Path(__file__).resolve().parents[1]
SMOKE_PARAMS = REPO / "profiles" / "smoke.yaml"


def load_bench_script(name: str):
    """bench/<name>.py as a module (bench/ is scripts, not a package), for tests of its functions."""
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_prepared(folder: Path, seed: int, n_classes: int = 8) -> Path:
    """A tiny prepared dataset as `prepare` writes it: 48 random 32x32 images, labels 0..n_classes-1,
    train/val/test lists of 32/8/8 rows."""
    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    np.save(folder / "images.npy", rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8))
    labels = np.arange(48) % n_classes
    for split, rows in (("train", range(0, 32)), ("val", range(32, 40)), ("test", range(40, 48))):
        pd.DataFrame({"row": list(rows), "label": labels[list(rows)]}).to_csv(folder / f"{split}.csv", index=False)
    return folder


def pytest_configure(config):
    """Under pytest-xdist (`make test`: two workers on two cores), torch in each worker process uses one
    thread. The end-to-end repro trains in subprocesses on the smoke profile's `threads` (1, as `make smoke`):
    with two threads per worker, four busy threads on two cores slowed that repro about 2x (351 s alone,
    ~740 s beside the other worker), and a 2-thread repro beside a 1-thread worker still ran 9.4 min where the
    1-thread one ran 6.8 (2026-12-01). None of the in-process tests compares numbers across thread counts."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread_in_process(request, monkeypatch):
    """In-process training keeps the worker's thread count above instead of the params' `threads` (default 2),
    for the same reason. Tests marked `real_threads` (the thread switch's own) get the real `torch_threads`."""
    if os.environ.get("PYTEST_XDIST_WORKER") and not request.node.get_closest_marker("real_threads"):
        keep = contextlib.nullcontext
        monkeypatch.setattr("facetransfer.training.loop.torch_threads", lambda threads: keep())
        monkeypatch.setattr("facetransfer.analysis.attention.torch_threads", lambda threads: keep())


def pytest_collection_modifyitems(config, items):
    """The end-to-end `dvc repro` (tests/test_pipeline.py, the longest file by far) first and the sharing
    tests that reuse its repository (tests/test_sharing.py) last: under `make test` (pytest -n, whole
    files per worker, in this order) one worker starts the repro at once while the other takes every
    other file, then the sharing tests, by which time the repository is (nearly) built. The queued-
    experiment test sits at the end of tests/test_pipeline.py, so it runs on the builder's worker beside
    the sharing tests (xdist gave both sharing files to the same worker when it was a file of its own)."""
    order = {"test_pipeline.py": 0, "test_sharing.py": 2}
    items.sort(key=lambda item: order.get(item.path.name, 1))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory, worker_id) -> Path:
    """The end-to-end smoke repository after `dvc repro`, built once per session (tests/e2e.py)."""
    from tests.e2e import shared_smoke_repo

    return shared_smoke_repo(tmp_path_factory, worker_id)


@pytest.fixture(scope="session")
def smoke_benchmark(tmp_path_factory) -> Path:
    """`facetransfer synth --smoke` output, generated once per test session (read-only for tests)."""
    out = tmp_path_factory.mktemp("smoke_benchmark")
    generate(out, SynthConfig().smoke())
    return out


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch cache under tmp_path; returns its hub/checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub = tmp_path / "hub"
    if Path(torch.hub.get_dir()) != hub:  # torch.hub.set_dir() was called somewhere: it wins over TORCH_HOME
        monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    assert Path(torch.hub.get_dir()) == hub
    (hub / "checkpoints").mkdir(parents=True)
    return hub / "checkpoints"


@pytest.fixture
def no_network(monkeypatch):
    def fail(*args, **kwargs):
        pytest.fail(f"a download was attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    monkeypatch.setattr(urllib.request, "urlopen", fail)
