"""The bad-input catalogue (issue 18): what a new user gets wrong, tried against the real commands.

Every case breaks one thing (a dataset file in one of the four native formats, a params file, a model file,
an output location, a checkpoint, a prepared array, the tracking server), runs the stage's command as a user
would, and checks three promises:

- exit status 2;
- stderr is one line, `error: <culprit>: <what was wrong, what was expected>`, naming the file, param or URI;
- nothing a later stage or DVC would take as finished was left behind.

`CASES` is the catalogue: one entry per case, grouped by kind. Cases that a command accepts on purpose
(a corrupt checkpoint is moved aside and training starts over) are tested at the end with their reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import ModelSpec, TrainEmotionConfig, TrainPainConfig
from facetransfer.training import recipes
from tests.conftest import SMOKE_PARAMS, write_prepared

runner = CliRunner()


# --- the world the cases break: the smoke benchmark, tiny prepared data and tiny models -------------


@dataclass(frozen=True)
class World:
    benchmark: Path  # `synth --smoke` output (read-only: cases copy what they break)
    emotion_data: Path  # a tiny prepared AffectNet-like folder (8 classes)
    pain_data: Path  # a tiny prepared UNBC-like folder (2 classes)
    emotion_model: Path  # model.pt written by train_emotion
    pain_model: Path  # model.pt written by train_pain (FreezeB5)


@pytest.fixture(scope="module")
def world(smoke_benchmark, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("catalogue")
    emotion_data, pain_data = write_prepared(root / "affectnet", 0, 8), write_prepared(root / "unbc", 1, 2)
    emotion = recipes.train_emotion(emotion_data, TrainEmotionConfig(epochs=1, batch_size=16, device="cpu",
                                                                     model=ModelSpec(width=0.0625)))
    (root / "emotion").mkdir()
    torch.save(emotion.saved, root / "emotion" / "model.pt")
    pain = recipes.train_pain(root / "emotion" / "model.pt", pain_data, 5,
                             TrainPainConfig(epochs=1, batch_size=16, device="cpu"))
    (root / "pain").mkdir()
    torch.save(pain.saved, root / "pain" / "model.pt")
    return World(smoke_benchmark, emotion_data, pain_data, root / "emotion" / "model.pt", root / "pain" / "model.pt")


@dataclass(frozen=True)
class Expect:
    argv: list[str]
    culprit: str  # what the line must name right after "error: " (a path, a param, a URI)
    says: str  # a fragment of what was wrong / expected
    leftovers: list[Path] = field(default_factory=list)  # must not exist afterwards
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    build: Callable[[World, Path], Expect]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


CASES: list[Case] = []


def case(kind: str) -> Callable:
    def register(build: Callable[[World, Path], Expect]) -> Callable:
        CASES.append(Case(kind, build.__name__, build))
        return build
    return register


# --- helpers the cases share ------------------------------------------------------------------------


def _copy(world: World, tmp: Path, dataset: str) -> Path:
    """A writable copy of one smoke dataset under tmp/data/; returns its root."""
    shutil.copytree(world.benchmark / dataset, tmp / "data" / dataset)
    return tmp / "data" / dataset


def _prepare(tmp: Path, dataset: str, params: Path = SMOKE_PARAMS) -> list[str]:
    return ["prepare", "--data", str(tmp / "data"), "--out", str(tmp / "out"), "--metrics", str(tmp / "counts.json"),
            "--datasets", dataset, "--workers", "1", "--params", str(params)]


def _prepared_outputs(tmp: Path, dataset: str) -> list[Path]:
    return [tmp / "out" / dataset, tmp / "counts.json"]


def _first(root: Path, pattern: str) -> Path:
    return sorted(root.glob(pattern))[0]


def _edit_line(path: Path, number: int, edit: Callable[[str], str]) -> str:
    """Replace line `number` (1-based) of a text file with edit(line); returns the new line."""
    lines = path.read_text().splitlines()
    lines[number - 1] = edit(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")
    return lines[number - 1]


def _csv_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


def _train_outputs(tmp: Path) -> dict[str, Path]:
    return {"--out": tmp / "model", "--metrics": tmp / "metrics.json", "--plots": tmp / "plots",
            "--run-id": tmp / "run.json", "--checkpoint": tmp / "checkpoint.pt"}


def _train(stage: str, tmp: Path, params: Path = SMOKE_PARAMS, **options: Path | str) -> list[str]:
    """`facetransfer <stage>` with every output under tmp; `options` (data=..., source=...) add or override."""
    given = _train_outputs(tmp) | {f"--{k.replace('_', '-')}": v for k, v in options.items()}
    return [stage, *[str(x) for pair in given.items() for x in pair], "--params", str(params)]


def _finished_training(tmp: Path) -> list[Path]:
    outputs = _train_outputs(tmp)
    return [outputs["--out"] / "model.pt", outputs["--metrics"], outputs["--plots"] / "history.csv",
            outputs["--run-id"]]


def _smoke_with(tmp: Path, key: str, value) -> Path:
    """The smoke params with the dotted `key` (e.g. train_emotion.optimizer.lr) set to `value`, as a file."""
    params = yaml.safe_load(SMOKE_PARAMS.read_text())
    *sections, last = key.split(".")
    node = params
    for name in sections:
        node = node[name]
    assert last in node, key  # a key the profile has: the case edits it, never adds a duplicate
    node[last] = value
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))  # inf and nan as YAML's .inf and .nan
    return path


def _train_emotion_params(w: World, tmp: Path, key: str, value, culprit: str | None, says: str) -> Expect:
    """train-emotion with one train_emotion param changed; the line names the params file (or `culprit`)."""
    params = _smoke_with(tmp, f"train_emotion.{key}", value)
    return Expect(_train("train-emotion", tmp, params, data=w.emotion_data), culprit or str(params), says,
                  _finished_training(tmp))


def _synth_params(tmp: Path, params: Path, says: str) -> Expect:
    """synth with a params file that cannot serve; the line names that file, synth writes nothing."""
    return Expect(["synth", "--out", str(tmp / "data"), "--params", str(params)], str(params), says, [tmp / "data"])


def _params(tmp: Path, section: str, text: str) -> Path:
    """The smoke params with one section replaced by `text` (YAML, indented under the section)."""
    lines = SMOKE_PARAMS.read_text().splitlines()
    start = lines.index(f"{section}:")
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()
                and not lines[i].startswith("#")), len(lines))
    path = tmp / "params.yaml"
    path.write_text("\n".join(lines[:start] + [f"{section}:", *text.splitlines()] + lines[end:]) + "\n")
    return path


# --- readers: AffectNet ------------------------------------------------------------------------------

AFFECTNET_LIST = "Manually_Annotated_file_lists/training.csv"


@case("reader:affectnet")
def affectnet_header_renamed(w, tmp):
    lists = _copy(w, tmp, "affectnet") / AFFECTNET_LIST
    _edit_line(lists, 1, lambda line: line.replace("expression", "emotion"))
    return Expect(_prepare(tmp, "affectnet"), f"{lists}:1", "expression", _prepared_outputs(tmp, "affectnet"))


@case("reader:affectnet")
def affectnet_expression_code_out_of_range(w, tmp):
    lists = _copy(w, tmp, "affectnet") / AFFECTNET_LIST
    _edit_line(lists, 2, lambda line: _csv_field(line, 6, "99"))
    return Expect(_prepare(tmp, "affectnet"), f"{lists}:2", "99", _prepared_outputs(tmp, "affectnet"))


@case("reader:affectnet")
def affectnet_face_box_without_area(w, tmp):
    lists = _copy(w, tmp, "affectnet") / AFFECTNET_LIST
    _edit_line(lists, 2, lambda line: _csv_field(line, 3, "0"))
    return Expect(_prepare(tmp, "affectnet"), "", "has no area", _prepared_outputs(tmp, "affectnet"))


@case("reader:affectnet")
def affectnet_face_box_outside_the_image(w, tmp):
    lists = _copy(w, tmp, "affectnet") / AFFECTNET_LIST
    _edit_line(lists, 2, lambda line: _csv_field(line, 1, "5000"))
    return Expect(_prepare(tmp, "affectnet"), "", "lies outside the", _prepared_outputs(tmp, "affectnet"))


@case("reader:affectnet")
def affectnet_image_path_leaves_the_dataset(w, tmp):
    root = _copy(w, tmp, "affectnet")
    (tmp / "data" / "secret.jpg").write_bytes(b"")
    _edit_line(root / AFFECTNET_LIST, 2, lambda line: _csv_field(line, 0, "../../secret.jpg"))
    return Expect(_prepare(tmp, "affectnet"), f"{root / AFFECTNET_LIST}:2", "outside",
                  _prepared_outputs(tmp, "affectnet"))


@case("reader:affectnet")
def affectnet_image_in_training_and_test_list(w, tmp):
    root = _copy(w, tmp, "affectnet")
    shared = (root / "Manually_Annotated_file_lists" / "validation.csv").read_text().splitlines()[1]
    with (root / AFFECTNET_LIST).open("a") as handle:
        handle.write(shared + "\n")
    return Expect(_prepare(tmp, "affectnet"), str(root / AFFECTNET_LIST), "also in the test (validation) list",
                  _prepared_outputs(tmp, "affectnet"))


@case("reader:affectnet")
def affectnet_lists_hold_only_their_headers(w, tmp):
    root = _copy(w, tmp, "affectnet")
    for name in ("training.csv", "validation.csv"):
        path = root / "Manually_Annotated_file_lists" / name
        path.write_text(path.read_text().splitlines()[0] + "\n")
    return Expect(_prepare(tmp, "affectnet"), str(root / AFFECTNET_LIST), "no rows to split",
                  _prepared_outputs(tmp, "affectnet"))


@case("reader:affectnet")
def affectnet_listed_image_missing(w, tmp):
    root = _copy(w, tmp, "affectnet")
    listed = (root / AFFECTNET_LIST).read_text().splitlines()[1].split(",")[0]
    (root / "Manually_Annotated_Images" / listed).unlink()
    return Expect(_prepare(tmp, "affectnet"), "", listed.split("/")[-1], _prepared_outputs(tmp, "affectnet"))


@case("reader:affectnet")
def affectnet_list_file_missing(w, tmp):
    root = _copy(w, tmp, "affectnet")
    (root / AFFECTNET_LIST).unlink()
    return Expect(_prepare(tmp, "affectnet"), str(root / AFFECTNET_LIST), "", _prepared_outputs(tmp, "affectnet"))


# --- readers: UNBC-McMaster ---------------------------------------------------------------------------


@case("reader:unbc")
def unbc_pspi_above_16(w, tmp):
    pspi = _first(_copy(w, tmp, "unbc"), "Frame_Labels/PSPI/*/*/*.txt")
    pspi.write_text("  9.9000000e+01\n")
    return Expect(_prepare(tmp, "unbc"), f"{pspi}:1", "16", _prepared_outputs(tmp, "unbc"))


@case("reader:unbc")
def unbc_facs_line_not_numbers(w, tmp):
    facs = _first(_copy(w, tmp, "unbc"), "Frame_Labels/FACS/*/*/*.txt")
    _edit_line(facs, 1, lambda line: "  four  two")
    return Expect(_prepare(tmp, "unbc"), f"{facs}:1", "", _prepared_outputs(tmp, "unbc"))


@case("reader:unbc")
def unbc_au_intensity_above_5(w, tmp):
    facs = _first(_copy(w, tmp, "unbc"), "Frame_Labels/FACS/*/*/*.txt")
    _edit_line(facs, 1, lambda line: "  4.0000000e+00  9.0000000e+00  0.0000000e+00  0.0000000e+00")
    return Expect(_prepare(tmp, "unbc"), f"{facs}:1", "5", _prepared_outputs(tmp, "unbc"))


@case("reader:unbc")
def unbc_landmarks_cut_short(w, tmp):
    points = _first(_copy(w, tmp, "unbc"), "AAM_landmarks/*/*/*.txt")
    points.write_text("".join(points.read_text().splitlines(keepends=True)[:10]))
    return Expect(_prepare(tmp, "unbc"), str(points), "66", _prepared_outputs(tmp, "unbc"))


@case("reader:unbc")
def unbc_image_not_decodable(w, tmp):
    image = _first(_copy(w, tmp, "unbc"), "Images/*/*/*.png")
    image.write_bytes(b"not a png")
    return Expect(_prepare(tmp, "unbc"), "", "cannot be decoded", _prepared_outputs(tmp, "unbc"))


@case("reader:unbc")
def unbc_image_is_a_symlink_out_of_the_dataset(w, tmp):
    image = _first(_copy(w, tmp, "unbc"), "Images/*/*/*.png")
    (tmp / "secret.png").write_bytes(image.read_bytes())
    image.unlink()
    image.symlink_to(tmp / "secret.png")
    return Expect(_prepare(tmp, "unbc"), "", "outside", _prepared_outputs(tmp, "unbc"))


@case("reader:unbc")
def unbc_test_subject_not_in_the_data(w, tmp):
    _copy(w, tmp, "unbc")
    params = tmp / "params.yaml"
    params.write_text(SMOKE_PARAMS.read_text().replace("101-sy101", "999-nobody"))
    return Expect(_prepare(tmp, "unbc", params), "", "999-nobody", _prepared_outputs(tmp, "unbc"))


# --- readers: CK+ -------------------------------------------------------------------------------------


@case("reader:ckplus")
def ckplus_emotion_code_out_of_range(w, tmp):
    emotion = _first(_copy(w, tmp, "ckplus"), "Emotion/*/*/*.txt")
    emotion.write_text("  9.0000000e+00\n")
    return Expect(_prepare(tmp, "ckplus"), f"{emotion}:1", "9", _prepared_outputs(tmp, "ckplus"))


@case("reader:ckplus")
def ckplus_facs_file_is_prose(w, tmp):
    facs = _first(_copy(w, tmp, "ckplus"), "FACS/*/*/*.txt")
    facs.write_text("AU 12 with intensity 3\n")
    return Expect(_prepare(tmp, "ckplus"), f"{facs}:1", "", _prepared_outputs(tmp, "ckplus"))


@case("reader:ckplus")
def ckplus_landmark_not_a_number(w, tmp):
    root = _copy(w, tmp, "ckplus")
    facs = _first(root, "FACS/*/*/*.txt")  # the coded (peak) frame: its landmarks are read
    points = root / "Landmarks" / facs.parent.relative_to(root / "FACS") / facs.name.replace("_facs", "_landmarks")
    _edit_line(points, 3, lambda line: "   x   y")
    return Expect(_prepare(tmp, "ckplus"), f"{points}:3", "", _prepared_outputs(tmp, "ckplus"))


@case("reader:ckplus")
def ckplus_no_sequence_has_facs(w, tmp):
    root = _copy(w, tmp, "ckplus")
    shutil.rmtree(root / "FACS")
    (root / "FACS").mkdir()
    return Expect(_prepare(tmp, "ckplus"), str(root), "", _prepared_outputs(tmp, "ckplus"))


# --- readers: FER+ ------------------------------------------------------------------------------------


@case("reader:ferplus")
def ferplus_pixel_count_wrong(w, tmp):
    fer = _copy(w, tmp, "ferplus") / "fer2013.csv"
    _edit_line(fer, 2, lambda line: line.replace(" ", "  ", 1).rsplit(" ", 3)[0] + "," + line.split(",")[-1])
    return Expect(_prepare(tmp, "ferplus"), f"{fer}:2", "", _prepared_outputs(tmp, "ferplus"))


@case("reader:ferplus")
def ferplus_votes_not_numbers(w, tmp):
    votes = _copy(w, tmp, "ferplus") / "fer2013new.csv"
    _edit_line(votes, 2, lambda line: _csv_field(line, 3, "many"))
    return Expect(_prepare(tmp, "ferplus"), f"{votes}:2", "", _prepared_outputs(tmp, "ferplus"))


@case("reader:ferplus")
def ferplus_usage_unknown(w, tmp):
    root = _copy(w, tmp, "ferplus")
    _edit_line(root / "fer2013.csv", 2, lambda line: _csv_field(line, 2, "Holdout"))
    # fer2013new.csv repeats the Usage column; its reader names both files and the allowed values
    return Expect(_prepare(tmp, "ferplus"), f"{root / 'fer2013new.csv'}:2", "fer2013.csv line 2 ('Holdout')",
                  _prepared_outputs(tmp, "ferplus"))


@case("reader:ferplus")
def ferplus_lists_hold_only_their_headers(w, tmp):
    root = _copy(w, tmp, "ferplus")
    for name in ("fer2013.csv", "fer2013new.csv"):
        path = root / name
        path.write_text(path.read_text().splitlines()[0] + "\n")
    return Expect(_prepare(tmp, "ferplus"), str(root), "no labelled images found", _prepared_outputs(tmp, "ferplus"))


@case("reader:ferplus")
def ferplus_vote_file_one_row_short(w, tmp):
    votes = _copy(w, tmp, "ferplus") / "fer2013new.csv"
    votes.write_text("".join(votes.read_text().splitlines(keepends=True)[:-1]))
    return Expect(_prepare(tmp, "ferplus"), str(votes), "", _prepared_outputs(tmp, "ferplus"))


@case("reader:ferplus")
def ferplus_dataset_folder_missing(w, tmp):
    (tmp / "data").mkdir()
    return Expect(_prepare(tmp, "ferplus"), str(tmp / "data" / "ferplus"), "", _prepared_outputs(tmp, "ferplus"))


# --- params -------------------------------------------------------------------------------------------


@case("params")
def params_value_of_the_wrong_type(w, tmp):
    params = _params(tmp, "prepare", "  image_size: big")
    _copy(w, tmp, "ckplus")
    return Expect(_prepare(tmp, "ckplus", params), f"{params}", "prepare.image_size",
                  _prepared_outputs(tmp, "ckplus"))


@case("params")
def params_unknown_key(w, tmp):
    params = _params(tmp, "prepare", "  image_sise: 64")
    _copy(w, tmp, "ckplus")
    return Expect(_prepare(tmp, "ckplus", params), f"{params}", "image_sise", _prepared_outputs(tmp, "ckplus"))


@case("params")
def params_empty_section(w, tmp):
    params = _params(tmp, "prepare", "")
    _copy(w, tmp, "ckplus")
    return Expect(_prepare(tmp, "ckplus", params), f"{params}", "section 'prepare' is empty",
                  _prepared_outputs(tmp, "ckplus"))


@case("params")
def params_learning_rate_infinite(w, tmp):
    return _train_emotion_params(w, tmp, "optimizer.lr", float("inf"), None, "finite")


@case("params")
def params_not_a_number(w, tmp):
    return _train_emotion_params(w, tmp, "epochs", float("nan"), None, "train_emotion.epochs")


@case("params")
def params_out_of_range(w, tmp):
    return _train_emotion_params(w, tmp, "batch_size", 0, None, "train_emotion.batch_size")


@case("params")
def params_file_is_binary(w, tmp):
    (tmp / "params.yaml").write_bytes(bytes(range(256)))
    return _synth_params(tmp, tmp / "params.yaml", "not UTF-8 text")


@case("params")
def params_file_is_a_folder(w, tmp):
    (tmp / "params.yaml").mkdir()
    return _synth_params(tmp, tmp / "params.yaml", "is a folder")


@case("params")
def params_file_missing(w, tmp):
    return _synth_params(tmp, tmp / "params.yaml", "params file not found")


@case("params")
def params_yaml_syntax(w, tmp):
    (tmp / "params.yaml").write_text("synth: {image_size: 64\nprepare: [\n")
    return _synth_params(tmp, tmp / "params.yaml", "not valid YAML")


@case("params")
def params_device_cuda_without_one(w, tmp):
    return _train_emotion_params(w, tmp, "device", "cuda", "device: cuda", "torch sees no CUDA device")


# --- model files --------------------------------------------------------------------------------------


def _pain_from(w: World, tmp: Path, source: Path) -> Expect:
    return Expect(_train("train-pain", tmp, data=w.pain_data, source=source, freeze_blocks="0"), str(source), "",
                  _finished_training(tmp))


@case("model")
def model_file_truncated(w, tmp):
    source = tmp / "model.pt"
    source.write_bytes(w.emotion_model.read_bytes()[:1000])
    return _pain_from(w, tmp, source)


@case("model")
def model_file_is_text(w, tmp):
    source = tmp / "model.pt"
    source.write_text("not a model\n")
    return _pain_from(w, tmp, source)


@case("model")
def model_file_is_a_foreign_torch_file(w, tmp):
    source = tmp / "model.pt"
    torch.save({"weights": torch.zeros(3)}, source)
    return _pain_from(w, tmp, source)


@case("model")
def model_file_is_a_folder(w, tmp):
    return _pain_from(w, tmp, w.emotion_model.parent)


@case("model")
def model_file_missing(w, tmp):
    return _pain_from(w, tmp, tmp / "nowhere" / "model.pt")


@case("model")
def model_of_the_wrong_stage_for_train_pain(w, tmp):
    expect = _pain_from(w, tmp, w.pain_model)
    return Expect(expect.argv, expect.culprit, "expected one written by train_emotion", expect.leftovers)


@case("model")
def model_of_the_wrong_stage_for_retrain_emotion(w, tmp):
    argv = _train("retrain-emotion", tmp, data=w.emotion_data, source=w.emotion_model)
    return Expect(argv, str(w.emotion_model), "expected one written by train_pain", _finished_training(tmp))


@case("model")
def model_head_does_not_fit_its_weights(w, tmp):
    saved = torch.load(w.emotion_model, weights_only=True)
    saved["classes"] = saved["classes"][:3]
    source = tmp / "model.pt"
    torch.save(saved, source)
    expect = _pain_from(w, tmp, source)
    return Expect(expect.argv, expect.culprit, "weights do not fit its architecture", expect.leftovers)


@case("model")
def model_of_the_wrong_stage_for_the_mask_trainer(w, tmp):
    out = tmp / "masked"
    return Expect(["mask", "--trainer", str(w.pain_model), "--data", str(w.emotion_data), "--out", str(out),
                   "--metrics", str(tmp / "masking.json"), "--run-id", str(tmp / "run.json"),
                   "--params", str(SMOKE_PARAMS)], str(w.pain_model), "expected", [out, tmp / "masking.json"])


# --- output locations ---------------------------------------------------------------------------------


def _blocked(tmp: Path) -> Path:
    blocker = tmp / "blocker"
    blocker.write_text("a file where a folder should be")
    return blocker


@case("output")
def output_folder_is_a_file(w, tmp):
    blocker = _blocked(tmp)
    return Expect(_train("train-emotion", tmp, data=w.emotion_data, out=blocker), str(blocker), "expected a folder",
                  [tmp / "metrics.json", tmp / "run.json"])


@case("output")
def output_metrics_file_is_a_folder(w, tmp):
    (tmp / "metrics.json").mkdir()
    return Expect(_train("train-emotion", tmp, data=w.emotion_data), str(tmp / "metrics.json"),
                  "expected a file path", [tmp / "model" / "model.pt", tmp / "run.json"])


@case("output")
def output_inside_a_file(w, tmp):
    blocker = _blocked(tmp)
    return Expect(_train("train-emotion", tmp, data=w.emotion_data, plots=blocker / "plots"), str(blocker),
                  "expected a folder", [tmp / "model" / "model.pt", tmp / "metrics.json"])


@case("output")
def output_folder_read_only(w, tmp):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere: a read-only folder cannot be made here")
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return Expect(_train("train-emotion", tmp, data=w.emotion_data, out=locked / "model"), str(locked),
                  "is not writable", [tmp / "metrics.json"])


@case("output")
def output_of_an_analysis_stage_is_a_file(w, tmp):
    blocker = _blocked(tmp)
    return Expect(["forgetting", "--retrain", str(tmp / "retrain"), "--pain-metrics", str(tmp / "pm"),
                   "--pain-summary", str(tmp / "ps"), "--out", str(blocker), "--metrics", str(tmp / "f.json"),
                   "--run-id", str(tmp / "run.json"), "--params", str(SMOKE_PARAMS)], str(blocker),
                  "expected a folder", [tmp / "f.json", tmp / "ps"])


@case("output")
def output_ranking_is_a_folder(w, tmp):
    (tmp / "ranking.json").mkdir()
    return Expect(["saliency", "--retrain", str(tmp / "retrain"), "--source", str(w.emotion_model.parent),
                   "--data", str(w.emotion_data), "--out", str(tmp / "saliency"),
                   "--ranking", str(tmp / "ranking.json"), "--metrics", str(tmp / "loc.json"),
                   "--run-id", str(tmp / "run.json"),
                   "--params", str(SMOKE_PARAMS)], str(tmp / "ranking.json"), "expected a file path",
                  [tmp / "loc.json", tmp / "saliency"])


@case("output")
def output_of_synth_is_a_file(w, tmp):
    blocker = _blocked(tmp)
    return Expect(["synth", "--out", str(blocker), "--smoke", "--params", str(SMOKE_PARAMS)], str(blocker),
                  "expected a folder", [])


@case("output")
def output_report_inside_a_file(w, tmp):
    blocker = _blocked(tmp)
    return Expect(["report", "--out", str(blocker / "index.html"), "--run-id", str(tmp / "run.json"),
                   "--params", str(SMOKE_PARAMS)], str(blocker), "expected a folder", [tmp / "run.json"])


# --- checkpoints --------------------------------------------------------------------------------------


@case("checkpoint")
def checkpoint_path_is_a_folder(w, tmp):
    (tmp / "checkpoint.pt").mkdir()
    return Expect(_train("train-emotion", tmp, data=w.emotion_data), str(tmp / "checkpoint.pt"),
                  "expected a file path", _finished_training(tmp))


@case("checkpoint")
def checkpoint_inside_a_file(w, tmp):
    blocker = _blocked(tmp)
    return Expect(_train("train-emotion", tmp, data=w.emotion_data, checkpoint=blocker / "checkpoint.pt"),
                  str(blocker), "expected a folder", _finished_training(tmp))


# --- prepared arrays (what the training stages read) -------------------------------------------------


def _copy_prepared(source: Path, tmp: Path) -> Path:
    shutil.copytree(source, tmp / "prepared")
    return tmp / "prepared"


@case("prepared")
def prepared_images_truncated(w, tmp):
    data = _copy_prepared(w.emotion_data, tmp)
    images = data / "images.npy"
    images.write_bytes(images.read_bytes()[:5000])
    return Expect(_train("train-emotion", tmp, data=data), str(images), "", _finished_training(tmp))


@case("prepared")
def prepared_split_list_missing(w, tmp):
    data = _copy_prepared(w.emotion_data, tmp)
    (data / "val.csv").unlink()
    return Expect(_train("train-emotion", tmp, data=data), str(data / "val.csv"), "", _finished_training(tmp))


@case("prepared")
def prepared_label_out_of_range(w, tmp):
    data = _copy_prepared(w.emotion_data, tmp)
    _edit_line(data / "train.csv", 2, lambda line: _csv_field(line, 1, "99"))
    return Expect(_train("train-emotion", tmp, data=data), f"{data / 'train.csv'}:2",
                  "label 99 out of range; expected 0..7, 8 classes", _finished_training(tmp))


@case("prepared")
def prepared_row_beyond_the_images(w, tmp):
    data = _copy_prepared(w.emotion_data, tmp)
    _edit_line(data / "train.csv", 2, lambda line: _csv_field(line, 0, "4800"))
    return Expect(_train("train-emotion", tmp, data=data), f"{data / 'train.csv'}:2",
                  "row 4800 out of range; expected 0..47, 48 images in images.npy", _finished_training(tmp))


# --- tracking -----------------------------------------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@case("tracking")
def tracking_server_not_there(w, tmp):
    uri = f"http://127.0.0.1:{_closed_port()}"
    return Expect(_train("train-emotion", tmp, data=w.emotion_data), f"MLFLOW_TRACKING_URI={uri}",
                  "no MLflow server answers", _finished_training(tmp), env={"MLFLOW_TRACKING_URI": uri})


@case("tracking")
def tracking_uri_of_an_unknown_scheme(w, tmp):
    uri = "htp://127.0.0.1:5000"
    return Expect(_train("train-emotion", tmp, data=w.emotion_data), f"MLFLOW_TRACKING_URI={uri}",
                  "no tracking store for this URI", _finished_training(tmp), env={"MLFLOW_TRACKING_URI": uri})


# --- the test -----------------------------------------------------------------------------------------


@pytest.fixture
def launcher_logging(monkeypatch):
    """What `facetransfer` (the launcher) sets before MLflow is imported, for the in-process runs here: MLflow
    logs warnings only (tests/test_cli.py checks it as a real process)."""
    import importlib
    import logging

    importlib.import_module("mlflow")  # its import sets the level from MLFLOW_LOGGING_LEVEL: import, then lower it
    monkeypatch.setattr(logging.getLogger("mlflow"), "level", logging.WARNING)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_bad_input_is_one_line_exit_2_and_leaves_nothing_finished(world, tmp_path, case, launcher_logging):
    tmp = tmp_path.resolve()
    expect = case.build(world, tmp)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "FACETRANSFER_DEBUG": ""} | expect.env
    result = runner.invoke(app, expect.argv, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {expect.culprit}"), lines[0]
    assert expect.says in lines[0], lines[0]
    assert "Traceback" not in result.output
    left = [str(p) for p in expect.leftovers if p.exists()]
    assert not left, f"left behind: {left}"


def test_the_catalogue_covers_every_kind_with_at_least_40_cases():
    kinds = {c.kind.split(":")[0] for c in CASES}
    assert kinds == {"reader", "params", "model", "output", "checkpoint", "prepared", "tracking"}
    assert {c.kind for c in CASES if c.kind.startswith("reader:")} == {f"reader:{d}" for d in
                                                                      ("affectnet", "unbc", "ckplus", "ferplus")}
    assert len(CASES) >= 40


# --- accepted on purpose ------------------------------------------------------------------------------


def test_accepted_a_corrupt_checkpoint_is_moved_aside_and_training_starts_over(world, tmp_path, launcher_logging):
    """Accepted (exit 0), by design: a checkpoint cut short (a disk full mid-write) costs the epochs it held,
    not the run. It is named on stderr and kept as <name>.corrupt for a look."""
    tmp = tmp_path.resolve()
    params = _smoke_with(tmp, "train_emotion.epochs", 2)
    checkpoint = tmp / "checkpoint.pt"
    checkpoint.write_bytes(b"PK\x03\x04 cut short")
    result = runner.invoke(app, _train("train-emotion", tmp, params, data=world.emotion_data),
                           env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"})
    assert result.exit_code == 0, result.output
    aside = tmp / "checkpoint.pt.corrupt"
    assert f"warning: {checkpoint}: unreadable checkpoint (" in result.stderr
    assert f"moved to {aside}, training starts over" in result.stderr
    assert aside.read_bytes() == b"PK\x03\x04 cut short"
    assert all(path.exists() for path in _finished_training(tmp))
