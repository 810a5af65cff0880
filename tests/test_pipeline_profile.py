"""bench/pipeline_profile.py: the per-stage, per-phase split of one repro's runs."""

from __future__ import annotations

import pytest

from tests.conftest import load_bench_script


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("pipeline_profile")


def _run(name, start_s, end_s, epochs_s=0.0, parent=None):
    return {"run_id": name, "name": name, "start_ms": int(start_s * 1000), "end_ms": int(end_s * 1000),
            "epoch_seconds": epochs_s, "parent": parent}


def test_stage_names_drop_the_variant(bench):
    assert bench.stage_of("train-pain/FreezeB0") == "train-pain"
    assert bench.stage_of("facetransfer train-trainee/plain") == "train-trainee"
    assert bench.stage_of("forgetting") == "forgetting"


def test_phases_add_up_to_the_wall_time_between_runs(bench):
    # train-pain@0: 0-60 s, 48 s of epochs; train-pain@1: 70-130 s, 50 s of epochs; forgetting computes
    # from 130 s and opens its run only at 200 s to log; the repro ends at 210 s.
    runs = [_run("train-pain/FreezeB1", 70, 130, 50), _run("train-pain/FreezeB0", 0, 60, 48),
            _run("forgetting", 200, 201), _run("old/run", -500, -400)]
    table = bench.profile(runs, since_ms=0, end_ms=210_000)
    assert list(table.index) == ["train-pain", "forgetting"] and list(table["runs"]) == [2, 1]
    pain, forgetting = table.loc["train-pain"] * 60, table.loc["forgetting"] * 60  # minutes -> seconds
    assert pain["epochs"] == pytest.approx(98) and pain["in run"] == pytest.approx(22)
    assert pain["before"] == pytest.approx(10)  # the gap 60-70 s between its two runs
    assert forgetting["before"] == pytest.approx(70) and forgetting["in run"] == pytest.approx(1 + 9)
    assert table["total"].sum() * 60 == pytest.approx(210)
    assert table["share %"].sum() == pytest.approx(100)


def test_time_before_the_first_run_gets_its_own_row(bench):
    table = bench.profile([_run("train-emotion", 30, 90, 60)], since_ms=0, end_ms=None)
    assert list(table.index) == ["before the first run (prepare)", "train-emotion"]
    assert table.iloc[0]["before"] * 60 == pytest.approx(30) and table["total"].sum() * 60 == pytest.approx(90)


def test_nested_runs_count_in_their_parent(bench):
    """train-trainee: one run over the whole stage, one nested run per variant logged as it finishes."""
    runs = [_run("train-trainee", 0, 100), _run("train-trainee/plain", 40, 41, parent="train-trainee"),
            _run("train-trainee/mean", 90, 91, parent="train-trainee"), _run("trainee-report", 110, 120)]
    table = bench.profile(runs, since_ms=0, end_ms=None) * 60
    assert table.loc["train-trainee", "in run"] == pytest.approx(100) and table.loc["train-trainee", "before"] == 0
    assert table["total"].sum() == pytest.approx(120)
