"""bench/seed_tests.py: the simulation behind the choice of an across-seed test (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import load_bench_script


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("seed_tests")


def test_the_shift_gives_the_asked_recall_drop(bench):
    args = bench.parse_args(["--images", "20000"])
    rng = np.random.default_rng(0)
    mu, delta = bench.calibrate(args, 0.08, 0.1, rng)
    ref, cmp_ = bench.simulate(rng, args, 4, mu, delta, seed_sd=0.1)  # (4, 20000) each
    assert ref.mean() == pytest.approx(args.recall, abs=0.01)
    assert ref.mean() - cmp_.mean() == pytest.approx(0.08, abs=0.01)


def _null_rejections(bench, test, seed_sd: float, sims: int = 300) -> float:
    args = bench.parse_args([])
    rng = np.random.default_rng(1)
    mu, _ = bench.calibrate(args, 0.0, seed_sd, rng)
    return np.mean([test(bench.simulate(rng, args, 3, mu, 0.0, seed_sd)) < 0.05 for _ in range(sims)])


def test_the_test_over_seeds_keeps_alpha_where_pooled_images_do_not(bench):
    # Seed-dominated variation (b_sm SD 0.6): pooling the seeds' image pairs takes it for an effect; the
    # seed-level t-test does not. Without simulate()'s seed x model term the second assertion fails.
    assert 0.01 <= _null_rejections(bench, bench.paired_t_over_seeds, 0.6) <= 0.10
    assert _null_rejections(bench, bench.mcnemar_pooled, 0.6) > 0.2
