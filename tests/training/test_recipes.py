"""Training stages: a leftover checkpoint is resumed only on the data it was written on."""

from __future__ import annotations

import pytest
import torch

from facetransfer.config import ModelSpec, RetrainEmotionConfig, TrainEmotionConfig, TrainPainConfig
from facetransfer.training import recipes
from facetransfer.training.data import data_digest
from tests.conftest import write_prepared

EMOTION = TrainEmotionConfig(epochs=2, batch_size=16, device="cpu", model=ModelSpec(width=0.0625))


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    """Same layout and labels, other images: what a regenerated benchmark looks like to a checkpoint."""
    root = tmp_path_factory.mktemp("data")
    return write_prepared(root / "a", seed=0), write_prepared(root / "b", seed=1)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_digest_changes_with_images_and_with_split_lists(two_datasets, tmp_path):
    a, b = two_datasets
    assert data_digest(a) == data_digest(a) and data_digest(a) != data_digest(b)
    relabelled = write_prepared(tmp_path / "c", seed=0, n_classes=4)  # same images, other train/val labels
    assert data_digest(relabelled) != data_digest(a)


def test_emotion_checkpoint_of_other_data_starts_over(two_datasets, tmp_path):
    a, b = two_datasets
    checkpoint = tmp_path / "emotion.pt"
    recipes.train_emotion(a, EMOTION, checkpoint)  # finished on A: its checkpoint says "2 of 2 epochs done"
    assert checkpoint.is_file()
    epochs = []
    on_b = recipes.train_emotion(b, EMOTION, checkpoint, on_epoch=lambda r: epochs.append(r["epoch"]))
    fresh_b = recipes.train_emotion(b, EMOTION)
    assert epochs == [1, 2]  # trained on B from the start, not "resumed" with nothing left to do
    assert _same(on_b.model.state_dict(), fresh_b.model.state_dict())


def test_head_retraining_checkpoint_of_other_data_starts_over(two_datasets, tmp_path):
    a, b = two_datasets
    source = tmp_path / "model.pt"
    pain_data = write_prepared(tmp_path / "pain", seed=2, n_classes=2)
    pain = recipes.train_pain(_saved_emotion_model(a, tmp_path), pain_data, 5,
                             TrainPainConfig(epochs=1, batch_size=16, device="cpu"))
    torch.save(pain.saved, source)
    cfg = RetrainEmotionConfig(epochs=2, batch_size=16, device="cpu")
    checkpoint = tmp_path / "head.pt"
    recipes.retrain_emotion(source, a, cfg, checkpoint)
    epochs = []
    recipes.retrain_emotion(source, b, cfg, checkpoint, on_epoch=lambda r: epochs.append(r["epoch"]))
    assert epochs == [1, 2]


def _saved_emotion_model(prepared, folder):
    path = folder / "emotion.pt"
    torch.save(recipes.train_emotion(prepared, EMOTION.model_copy(update={"epochs": 1})).saved, path)
    return path


def test_a_saved_model_says_which_precision_trained_it(two_datasets):
    a, _ = two_datasets
    for precision in ("float32", "bfloat16"):
        trained = recipes.train_emotion(a, EMOTION.model_copy(update={"epochs": 1, "precision": precision}))
        assert trained.saved["train_dtype"] == precision


def test_model_files_that_cannot_serve_are_named_in_one_line(two_datasets, tmp_path):
    """Issue 18: a truncated or foreign model.pt ended in a traceback; an emotion model passed to
    retrain-emotion was labelled FreezeB0 and used."""
    from facetransfer.data.errors import ModelFileError

    a, _ = two_datasets
    good = _saved_emotion_model(a, tmp_path)
    assert recipes.load_model(good, ("train_emotion",))[1]["stage"] == "train_emotion"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    text = tmp_path / "text.pt"
    text.write_text("not a model\n")
    cases = [(truncated, "not a readable torch file"), (text, "not a readable torch file"),
             (foreign, "not a facetransfer model (format None, expected facetransfer.model/1)"),
             (tmp_path, "is a folder; expected a model.pt file")]
    for path, message in cases:
        with pytest.raises(ModelFileError) as err:
            recipes.load_model(path)
        assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelFileError, match="a train_emotion model; expected one written by train_pain"):
        recipes.retrain_emotion(good, a, RetrainEmotionConfig(epochs=1, device="cpu"))
    saved = torch.load(good, weights_only=True)
    saved["classes"] = saved["classes"][:3]  # a head of 3 classes in the payload, 8 in the weights
    torch.save(saved, foreign)
    with pytest.raises(ModelFileError, match="weights do not fit its architecture"):
        recipes.load_model(foreign)
    with pytest.raises(FileNotFoundError):
        recipes.load_model(tmp_path / "missing.pt")


def test_cuda_on_a_machine_without_it_is_a_params_error(monkeypatch):
    from facetransfer.config import ConfigError
    from facetransfer.training.loop import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device: cuda requested, but torch sees no CUDA device on this machine; "
                                          "expected auto or cpu"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
