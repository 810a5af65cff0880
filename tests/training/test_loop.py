"""The training loop: determinism, exact resume, and exact feature caching for head retraining."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from facetransfer.config import AugmentSpec, ConfigError, TrainingDiverged, TrainSettings
from facetransfer.models.vgg import build_vgg16, freeze_blocks
from facetransfer.training import loop
from facetransfer.training.cached import FlipFeatureDataset, flip_features
from facetransfer.training.data import ImageDataset, build_transform, load_split
from facetransfer.training.loop import check_finite, fit, plateaued, predict, training_dtype
from facetransfer.training.losses import FocalLoss

# float32 steps: the same numbers on every CPU (auto would pick bf16 on CPUs with AMX).
SETTINGS = TrainSettings(epochs=3, batch_size=8, device="cpu", precision="float32")
AUGMENT = AugmentSpec()  # frozen: one instance can serve as every call's default
PAPER = AugmentSpec(rotation=25.0, shift=0.1, shear=0.1, zoom=0.1, grayscale=0.2)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny prepared dataset: 48 random 32x32 images, 2 classes, train/val/test."""
    folder = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(48) % 2
    images[labels == 1, :, :16] //= 2  # a learnable difference: darker left half
    np.save(folder / "images.npy", images)
    for split, rows in (("train", range(0, 32)), ("val", range(32, 40)), ("test", range(40, 48))):
        pd.DataFrame({"row": list(rows), "label": labels[list(rows)]}).to_csv(folder / f"{split}.csv", index=False)
    return folder


def _model(dropout: float = 0.0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_vgg16(num_classes=2, width=0.0625, batch_norm=True, dropout=dropout)


def _fit(model, prepared, settings=SETTINGS, augment=AUGMENT, **kwargs):
    train, val = load_split(prepared, "train"), load_split(prepared, "val")
    return fit(model, ImageDataset(train, build_transform(augment), settings.seed),
               ImageDataset(val, build_transform(None)), val.labels, FocalLoss(2.0), settings, 2, **kwargs)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights(prepared):
    first, second = _fit(_model(), prepared), _fit(_model(), prepared)
    assert _same(first.best_state, second.best_state)
    assert first.history == [{**r, "seconds": h["seconds"]} for r, h in zip(second.history, first.history, strict=True)]


def test_loader_workers_do_not_change_the_weights(prepared):
    # Each sample's augmentation comes from (seed, epoch, index), and dropout from the main process.
    settings = SETTINGS.model_copy(update={"epochs": 2})
    runs = [_fit(_model(dropout=0.5), prepared, settings=settings.model_copy(update={"loader_workers": w}),
                 augment=PAPER) for w in (0, 2)]
    assert _same(runs[0].best_state, runs[1].best_state)


def test_fit_moves_the_augmentation_to_each_new_epoch(prepared):
    epochs = []

    class Recording(ImageDataset):
        def set_epoch(self, epoch):
            epochs.append(epoch)
            super().set_epoch(epoch)

    train, val = load_split(prepared, "train"), load_split(prepared, "val")
    fit(_model(), Recording(train, build_transform(PAPER), 0), ImageDataset(val, build_transform(None)), val.labels,
        FocalLoss(2.0), SETTINGS, 2)
    assert epochs == [0, 1, 2]


def test_bfloat16_steps_are_deterministic_and_not_float32(prepared):
    bf16 = SETTINGS.model_copy(update={"precision": "bfloat16", "epochs": 1})
    first, second = _fit(_model(), prepared, settings=bf16), _fit(_model(), prepared, settings=bf16)
    assert _same(first.best_state, second.best_state)
    assert all(v.dtype != torch.bfloat16 for v in first.best_state.values())  # autocast: weights stay float32
    fp32 = _fit(_model(), prepared, settings=SETTINGS.model_copy(update={"epochs": 1}))
    assert not _same(first.best_state, fp32.best_state)


def test_auto_precision_is_bf16_on_cuda_and_on_cpus_with_native_bf16(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training_dtype("auto", cuda) == torch.bfloat16
    assert training_dtype("float32", cuda) == torch.float32 and training_dtype("bfloat16", cpu) == torch.bfloat16
    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda native=native: native)
        assert training_dtype("auto", cpu) == expected


def test_the_resume_key_holds_the_resolved_precision_not_the_worker_count(monkeypatch):
    key = loop.fingerprint(SETTINGS.model_copy(update={"precision": "auto"}))
    assert loop.fingerprint(SETTINGS.model_copy(update={"precision": "auto", "loader_workers": 3})) == key
    native = loop.cpu_has_native_bf16()
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: not native)
    assert loop.fingerprint(SETTINGS.model_copy(update={"precision": "auto"})) != key


def test_one_epoch_reads_the_loss_once_and_returns_the_per_step_mean(prepared, monkeypatch):
    # The loss is summed on the device (no host sync per step); the mean must equal the
    # reference that reads every step's loss with .item(), bit for bit, and the weights too.
    batches = list(torch.utils.data.DataLoader(ImageDataset(load_split(prepared, "train"), build_transform(None)),
                                               batch_size=8))
    model, reference = _model(dropout=0.5), _model(dropout=0.5)
    optimizer, ref_optimizer = (torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in (model, reference))
    torch.manual_seed(1)
    reference.train()
    expected, count = 0.0, 0
    for x, y in batches:
        loss = FocalLoss(2.0)(reference(loop.normalize(x)), y)
        ref_optimizer.zero_grad()
        loss.backward()
        ref_optimizer.step()
        expected, count = expected + loss.item() * len(y), count + len(y)
    reads = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.append(1) or item(self))
    torch.manual_seed(1)
    mean = loop.train_one_epoch(model, batches, FocalLoss(2.0), optimizer, torch.device("cpu"))
    assert len(reads) == 1
    assert mean == expected / count
    assert _same(model.state_dict(), reference.state_dict())


def test_one_epoch_without_a_dtype_steps_in_the_devices_default(monkeypatch):
    # A CUDA caller that passes no dtype must get bf16 autocast (the paper profile), as every stage does by
    # passing it: the loop hands None to _autocast, which picks by device, instead of forcing float32.
    seen = []
    real = loop._autocast
    monkeypatch.setattr(loop, "_autocast", lambda device, dtype=None: seen.append(dtype) or real(device, dtype))
    model = _model()
    batch = [(torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 0, 1]))]
    loop.train_one_epoch(model, batch, FocalLoss(2.0), torch.optim.SGD(model.parameters(), lr=0.01),
                         torch.device("cpu"))
    assert seen == [None]
    with real(torch.device("cpu"), None):
        assert not torch.is_autocast_enabled("cpu")  # None on the CPU: float32 steps


def test_another_seed_other_weights(prepared):
    first = _fit(_model(), prepared)
    other = _fit(_model(), prepared, settings=SETTINGS.model_copy(update={"seed": 7}))
    assert not _same(first.best_state, other.best_state)


def test_killed_run_resumes_to_the_same_weights(prepared, tmp_path):
    checkpoint = tmp_path / "last.pt"
    uninterrupted = _fit(_model(), prepared)

    def crash_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt  # the process dies after epoch 2 was checkpointed

    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), prepared, checkpoint=checkpoint, run_key="k", on_epoch=crash_after_two)
    epochs_run = []
    resumed = _fit(_model(seed=99), prepared, checkpoint=checkpoint, run_key="k",
                   on_epoch=lambda r: epochs_run.append(r["epoch"]))
    assert epochs_run == [3]  # only the missing epoch ran
    assert _same(resumed.best_state, uninterrupted.best_state)
    assert resumed.best_epoch == uninterrupted.best_epoch and len(resumed.history) == 3


class NaNAfter(torch.nn.Module):
    """FocalLoss for the first `steps` steps, then NaN: a run that diverges in a known epoch."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps, self.calls, self.loss = steps, 0, FocalLoss(2.0)

    def forward(self, logits, target):
        self.calls += 1
        loss = self.loss(logits, target)
        return loss if self.calls <= self.steps else loss * float("nan")


def test_a_diverged_epoch_stops_training_naming_epoch_and_section_and_is_not_checkpointed(prepared, tmp_path):
    """Issue 18: `lr: .inf` trained a NaN model whose metrics looked finished. 32 images / batch 8 = 4 steps an
    epoch: NaN from step 5 on is epoch 2."""
    train, val = load_split(prepared, "train"), load_split(prepared, "val")
    checkpoint = tmp_path / "last.pt"
    with pytest.raises(TrainingDiverged) as err:
        fit(_model(), ImageDataset(train, build_transform(AugmentSpec()), 0), ImageDataset(val, build_transform(None)),
            val.labels, NaNAfter(4), SETTINGS, 2, checkpoint, "k", section="train_pain")
    assert str(err.value) == ("train_pain: training diverged in epoch 2 (mean training loss nan); expected a finite "
                              "loss: lower train_pain.optimizer.lr")
    assert isinstance(err.value, ConfigError)  # the CLI's user_errors: one line, exit 2
    epochs_run = []  # epoch 1 was kept, the diverged epoch 2 was not
    _fit(_model(), prepared, checkpoint=checkpoint, run_key="k", on_epoch=lambda r: epochs_run.append(r["epoch"]))
    assert epochs_run == [2, 3]


def test_check_finite_names_the_learning_rate_to_lower():
    check_finite(0.5, 0, "trainee", "lr")
    with pytest.raises(TrainingDiverged, match=r"^trainee: training diverged in epoch 3 \(mean training loss inf\); "
                                               r"expected a finite loss: lower trainee.lr$"):
        check_finite(float("inf"), 2, "trainee", "lr")
    with pytest.raises(TrainingDiverged, match=r"^controls.head: .* lower controls.head.optimizer.lr$"):
        check_finite(float("nan"), 0, "controls.head")


def test_a_corrupt_checkpoint_is_moved_aside_and_training_starts_over(prepared, tmp_path, capsys):
    """Issue 18: a truncated checkpoint ended the stage in torch's traceback."""
    checkpoint = tmp_path / "last.pt"
    _fit(_model(), prepared, settings=SETTINGS.model_copy(update={"epochs": 1}), checkpoint=checkpoint, run_key="k")
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    epochs_run = []
    result = _fit(_model(), prepared, checkpoint=checkpoint, run_key="k",
                  on_epoch=lambda r: epochs_run.append(r["epoch"]))
    assert epochs_run == [1, 2, 3] and _same(result.best_state, _fit(_model(), prepared).best_state)
    aside = tmp_path / "last.pt.corrupt"
    assert aside.is_file() and len(aside.read_bytes()) == 500
    assert capsys.readouterr().err.strip() == (f"warning: {checkpoint}: unreadable checkpoint (RuntimeError); moved to "
                                               f"{aside}, training starts over")


def test_checkpoint_of_another_config_is_not_resumed(prepared, tmp_path):
    checkpoint = tmp_path / "last.pt"
    _fit(_model(), prepared, checkpoint=checkpoint, run_key="old")
    epochs_run = []
    _fit(_model(), prepared, checkpoint=checkpoint, run_key="new", on_epoch=lambda r: epochs_run.append(r["epoch"]))
    assert epochs_run == [1, 2, 3]


def test_cached_features_train_the_same_head(prepared):
    # Head retraining with every conv block frozen: through the network vs on cached image/mirror features.
    settings = SETTINGS.model_copy(update={"epochs": 2})
    full = _model(dropout=0.5)
    freeze_blocks(full, 5)
    through = _fit(full, prepared, settings=settings)
    cached_model = _model(dropout=0.5)
    freeze_blocks(cached_model, 5)
    train, val = load_split(prepared, "train"), load_split(prepared, "val")
    result = fit(cached_model.classifier, FlipFeatureDataset(flip_features(cached_model, train, 8, torch.device("cpu")),
                                                             train.labels, train=True, seed=settings.seed),
                 FlipFeatureDataset(flip_features(cached_model, val, 8, torch.device("cpu")), val.labels, train=False),
                 val.labels, FocalLoss(2.0), settings, 2)
    head = {k.removeprefix("classifier."): v for k, v in through.best_state.items() if k.startswith("classifier.")}
    for key, value in result.best_state.items():
        torch.testing.assert_close(value, head[key], rtol=1e-4, atol=1e-5)
    cached_model.classifier.load_state_dict(result.best_state)
    full.load_state_dict(through.best_state)
    test = ImageDataset(load_split(prepared, "test"), build_transform(None))
    cpu = torch.device("cpu")
    np.testing.assert_array_equal(predict(full, test, 8, cpu).argmax(1), predict(cached_model, test, 8, cpu).argmax(1))


def test_frozen_blocks_do_not_change_during_fit(prepared):
    model = _model()
    freeze_blocks(model, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _fit(model, prepared, settings=SETTINGS.model_copy(update={"epochs": 1}))
    frozen = [k for k, p in model.named_parameters() if not p.requires_grad]
    trained = [k for k, p in model.named_parameters() if p.requires_grad]
    assert frozen and all(torch.equal(model.state_dict()[k], before[k]) for k in frozen)
    assert any(not torch.equal(model.state_dict()[k], before[k]) for k in trained)


def test_plateau_rule():
    assert not plateaued(3, 0, 0)  # patience 0: never stop early
    assert not plateaued(3, 0, 3)  # epochs 2 and 3 did not improve on epoch 1: two, not three
    assert plateaued(4, 0, 3)
    assert not plateaued(4, 3, 1)  # the last epoch was the best
    assert not plateaued(0, -1, 1)  # nothing run yet


def test_patience_stops_where_the_full_run_plateaued(prepared, tmp_path):
    # The stopped run is the first epochs of the full run, cut where `patience` epochs brought no better score.
    full = _fit(_model(), prepared, settings=SETTINGS.model_copy(update={"epochs": 12}))
    scores = [r["val_macro_recall"] for r in full.history]
    best, stop = 0, len(scores)
    for epoch, score in enumerate(scores):
        if plateaued(epoch, best, 2):
            stop = epoch
            break
        best = epoch if score > scores[best] else best
    assert stop < len(scores), f"the full run never plateaued for 2 epochs: {scores}"
    stopped = _fit(_model(), prepared, settings=SETTINGS.model_copy(update={"epochs": 12, "patience": 2}))
    assert stopped.epochs_run == stop and stopped.best_epoch == best
    assert [r["val_macro_recall"] for r in stopped.history] == scores[:stop]
    # A killed run resumed from its checkpoint stops at the same epoch.
    checkpoint = tmp_path / "last.pt"

    def crash(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    settings = SETTINGS.model_copy(update={"epochs": 12, "patience": 2})
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), prepared, settings=settings, checkpoint=checkpoint, run_key="k", on_epoch=crash)
    resumed = _fit(_model(), prepared, settings=settings, checkpoint=checkpoint, run_key="k")
    assert resumed.epochs_run == stop and _same(resumed.best_state, stopped.best_state)


def test_learning_rate_is_cut_on_a_plateau_and_resumes_exactly(prepared, tmp_path):
    optimizer = SETTINGS.optimizer.model_copy(update={"lr_decay": 0.5, "lr_patience": 1})
    settings = SETTINGS.model_copy(update={"epochs": 8, "optimizer": optimizer})
    full = _fit(_model(), prepared, settings=settings)
    # The rule by hand (torch's ReduceLROnPlateau, mode max, threshold 0): cut after more than
    # lr_patience epochs in a row without a strictly better score, then count again from zero.
    lr, best, bad, expected = 0.01, -1.0, 0, []
    for record in full.history:
        if record["val_macro_recall"] > best:
            best, bad = record["val_macro_recall"], 0
        else:
            bad += 1
        if bad > 1:
            lr, bad = lr * 0.5, 0
        expected.append(lr)
    assert [r["lr"] for r in full.history] == pytest.approx(expected)
    assert min(expected) < 0.01, "no plateau in 8 epochs: the test would not test the cut"
    checkpoint = tmp_path / "last.pt"

    def crash(record):
        if record["epoch"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), prepared, settings=settings, checkpoint=checkpoint, run_key="k", on_epoch=crash)
    resumed = _fit(_model(seed=3), prepared, settings=settings, checkpoint=checkpoint, run_key="k")
    assert _same(resumed.best_state, full.best_state) and [r["lr"] for r in resumed.history] == expected


@pytest.mark.real_threads
def test_fit_trains_on_the_params_thread_count_and_restores_the_previous_one(prepared):
    seen = []
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        _fit(_model(), prepared, settings=SETTINGS.model_copy(update={"epochs": 2, "threads": 1}),
             on_epoch=lambda record: seen.append(torch.get_num_threads()))
        assert seen == [1, 1] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.real_threads
def test_more_threads_than_cores_is_a_warning_not_an_error(monkeypatch):
    monkeypatch.setattr(loop.os, "sched_getaffinity", lambda pid: {0})
    before = torch.get_num_threads()
    with pytest.warns(UserWarning, match="2 torch threads with 1 CPU core"):
        with loop.torch_threads(2):
            assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_the_thread_count_is_part_of_the_resume_key():
    assert loop.fingerprint(SETTINGS) != loop.fingerprint(SETTINGS.model_copy(update={"threads": 1}))
