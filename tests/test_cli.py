"""The command line: help for every stage, one-line errors with exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import ConfigError

runner = CliRunner()


def test_top_level_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in ("synth", "prepare", "train-emotion", "train-pain", "retrain-emotion", "track-init", "forgetting",
                  "saliency", "concepts", "mask", "train-trainee", "trainee-report", "report", "attention-study",
                  "units"):
        assert stage in result.output


@pytest.mark.parametrize("stage, words", [("synth", "--smoke"), ("prepare", "--data"),
                                         ("train-emotion", "--checkpoint"),
                                         ("train-pain", "--freeze-blocks"), ("retrain-emotion", "--source"),
                                         ("saliency", "--ranking"), ("concepts", "--summary"), ("mask", "--trainer"),
                                         ("train-trainee", "--variant"), ("trainee-report", "--summaries"),
                                         ("report", "--saliency"), ("attention-study", "--ckplus"),
                                         ("units", "--pain")])
def test_stage_help(stage, words):
    result = runner.invoke(app, [stage, "--help"])
    assert result.exit_code == 0 and words in result.output


def test_bad_params_give_one_line_and_status_2(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("synth: {image_size: big}\n")
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "d"), "--params", str(params)])
    assert result.exit_code == 2
    assert "synth.image_size" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("content", "culprit"), [
    (b"synth:\n", "section 'synth' is empty"),
    (b"synth: {supersample: .inf}\n", "synth.supersample"),  # an int key: refused by strict types
    (b"prepare: {}\nsynth: {affectnet: {label_noise: .nan}}\n",
     "synth.affectnet.label_noise: Input should be a finite number"),
    (bytes(range(256)), "not UTF-8 text"),
    (None, "is a folder"),
])
def test_bad_params_files_give_one_line_naming_the_file(tmp_path, content, culprit):
    """Issue 18: an empty section, a non-finite number, a binary file or a folder as --params."""
    params = tmp_path / "params.yaml"
    if content is None:
        params.mkdir()
    else:
        params.write_bytes(content)
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "d"), "--params", str(params)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {params}: ") and culprit in lines[0], result.output
    assert not (tmp_path / "d").exists()  # nothing written


@pytest.mark.parametrize("option", ["--out", "--plots", "--metrics", "--run-id"])
def test_an_output_that_cannot_be_written_stops_training_before_it_starts(tmp_path, option):
    """Issue 18: an output folder that was a file was found only after training finished. Here the data does
    not even exist: the outputs are checked first, so the error is about them."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    outputs = {"--out": tmp_path / "m", "--plots": tmp_path / "p", "--metrics": tmp_path / "x.json",
               "--run-id": tmp_path / "r.json"} | {option: blocker / "inside"}
    result = runner.invoke(app, ["train-emotion", "--data", str(tmp_path / "no-data"),
                                 "--checkpoint", str(tmp_path / "c.pt"),
                                 *[str(v) for kv in outputs.items() for v in kv], "--params", "params.yaml"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {blocker}: is a file; expected a folder, to hold {blocker / 'inside'}"


def test_debug_shows_a_user_error_s_traceback_too(tmp_path, monkeypatch):
    """Issue 18: one line for user errors; the traceback only for a bug or with --debug."""
    monkeypatch.delenv("FACETRANSFER_DEBUG", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text("synth: {image_size: big}\n")
    args = ["synth", "--out", str(tmp_path / "d"), "--params", str(params)]
    quiet = runner.invoke(app, args)
    assert quiet.exit_code == 2 and quiet.exception.__class__ is SystemExit
    monkeypatch.setenv("FACETRANSFER_DEBUG", "")  # so that --debug's setting is undone after the test
    loud = runner.invoke(app, ["--debug", *args])
    assert "synth.image_size" in loud.output and isinstance(loud.exception, ConfigError) and loud.exit_code == 1


def test_a_stage_that_fails_inside_its_mlflow_run_still_says_one_line(tmp_path):
    """Issue 18: stderr is the error's one line, not six MLflow INFO lines before it (the entry point sets
    MLFLOW_LOGGING_LEVEL=WARNING unless the environment says otherwise). A real process, as a user runs it."""
    foreign = tmp_path / "foreign.pt"
    foreign.write_text("not a model\n")
    args = ["train-pain", "--source", str(foreign), "--data", str(tmp_path / "d"), "--freeze-blocks", "0",
            "--out", str(tmp_path / "o"), "--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "p"),
            "--run-id", str(tmp_path / "r.json"), "--checkpoint", str(tmp_path / "c.pt"), "--params", "params.yaml"]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_LOGGING_LEVEL", "FACETRANSFER_WARM")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-c", "from facetransfer.launcher import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {foreign}: not a readable torch file (UnpicklingError); "
                                                 "expected a model.pt written by a facetransfer training stage"]
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.json").exists()


def test_unknown_au_to_suppress_is_rejected(tmp_path):
    result = runner.invoke(app, ["synth", "--out", str(tmp_path), "--suppress-aus", "14,99"])
    assert result.exit_code == 2 and "[99]" in result.output


def test_synth_smoke_through_the_cli(tmp_path):
    result = runner.invoke(app, ["synth", "--out", str(tmp_path), "--smoke", "--datasets", "ckplus",
                                 "--suppress-aus", "14", "--workers", "1"])
    assert result.exit_code == 0, result.output
    groundtruth = pd.read_csv(tmp_path / "ckplus" / "groundtruth.csv")
    assert len(groundtruth) > 10 and (groundtruth["au_14"] == 0).all()
    assert not (tmp_path / "affectnet").exists()
