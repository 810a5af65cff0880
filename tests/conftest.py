"""Fixtures shared by the whole suite: the repo root and one tiny synthetic benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetransfer.config import SynthConfig
from facetransfer.data.synth.generate import generate

REPO = Path(__file__).resolve().parents[1]
SMOKE_PARAMS = REPO / "profiles" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_benchmark(tmp_path_factory) -> Path:
    """`facetransfer synth --smoke` output, generated once per test session (read-only for tests)."""
    out = tmp_path_factory.mktemp("smoke_benchmark")
    generate(out, SynthConfig().smoke())
    return out
