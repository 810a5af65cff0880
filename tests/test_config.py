"""Params: the committed files validate; bad values fail with one line naming file and key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from facetransfer.config import (
    SECTIONS,
    ConfigError,
    PrepareConfig,
    SynthConfig,
    load_section,
)
from tests.conftest import REPO, SMOKE_PARAMS


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_committed_params_match_the_code_defaults(section):
    """params.yaml spells out every default, so a reader sees the real values; every section (issue 19: the
    training and attention defaults had drifted: train_emotion epochs 20 vs 60, grayscale 0.0 vs 0.2, ...)."""
    assert load_section(REPO / "params.yaml", section) == SECTIONS[section]()


def test_the_smoke_profile_is_smaller():
    assert load_section(SMOKE_PARAMS, "prepare").unbc.train_frames < PrepareConfig().unbc.train_frames


@pytest.mark.parametrize("params", [REPO / "params.yaml", SMOKE_PARAMS, REPO / "profiles" / "paper.yaml"])
def test_every_section_of_every_committed_params_file_validates(params):
    for section in SECTIONS:
        load_section(params, section)


def test_training_seeds_come_from_study_not_from_a_training_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train_pain: {seed: 7}\nretrain_emotion: {}\nstudy: {seeds: [1, 2], detail_seed: 3}\n")
    with pytest.raises(ConfigError, match="train_pain: .*seed is not a key of this section.*study.seeds"):
        load_section(path, "train_pain")
    assert load_section(path, "retrain_emotion").with_seed(9).seed == 9
    with pytest.raises(ConfigError, match="detail_seed 3 must be one of seeds"):
        load_section(path, "study")
    path.write_text("trainee: {seed: 7}\n")  # the masking trainees too: one run per seed, the seed as --seed
    with pytest.raises(ConfigError, match="trainee: .*seed is not a key of this section"):
        load_section(path, "trainee")


def test_configs_are_frozen():
    with pytest.raises(ValidationError, match="Instance is frozen"):
        SynthConfig().seed = 3


@pytest.mark.parametrize("yaml_text, message", [
    ("synth: {seed: '3'}", "synth.seed: Input should be a valid integer"),
    ("synth: {sed: 3}", "synth.sed: Extra inputs are not permitted"),
    ("synth: {image_size: 8}", "synth.image_size: Input should be greater than or equal to 32"),
    ("synth: {unbc: {frames_per_sequence: {low: 9, high: 3}}}", "low (9) must be <= high (3)"),
    ("synth: {suppress_aus: [3]}", "unknown AUs [3]"),
    ("synth: {affectnet: {train_per_class: {happy: 3}}}", "train_per_class must have exactly the keys"),
    ("prepare: {missing_images: sometimes}", "prepare.missing_images: Input should be 'error' or 'skip'"),
    ("prepare: {mask_splits: [tset]}", "prepare.mask_splits.0"),
    ("prepare: {unbc: {train_frames: 9, val_frames: 2}}", "must be even"),
    # issue 18: an empty section was silently replaced by defaults, `lr: .inf` trained a NaN model
    ("prepare:\n", "section 'prepare' is empty; expected its keys, or `prepare: {}` for every default"),
    ("prepare: [1, 2]\n", "section 'prepare' is a list; expected a mapping of keys"),
    ("trainee: {lr: .inf}\n", "trainee.lr: Input should be a finite number (got inf)"),
    ("trainee: {lr: .nan}\n", "trainee.lr: Input should be a finite number"),
    ("forgetting: {confidence: -.inf}\n", "forgetting.confidence: Input should be a finite number"),
])
def test_bad_values_name_file_and_key(tmp_path, yaml_text, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml_text)
    section = yaml_text.split(":")[0]
    with pytest.raises(ConfigError) as err:
        load_section(path, section)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_section_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_section(tmp_path / "nope.yaml", "synth")
    (tmp_path / "p.yaml").write_text("prepare: {}\n")
    with pytest.raises(ConfigError, match="missing section 'synth'"):
        load_section(tmp_path / "p.yaml", "synth")
    (tmp_path / "q.yaml").write_text("synth: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_section(tmp_path / "q.yaml", "synth")


def test_a_params_path_that_is_a_folder_or_binary_is_named(tmp_path):
    with pytest.raises(ConfigError, match=f"{tmp_path}: is a folder; expected a params YAML file"):
        load_section(tmp_path, "synth")
    binary = tmp_path / "params.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="params.yaml: not UTF-8 text; expected a params YAML file"):
        load_section(binary, "synth")
