"""RBDM trainee: the variants' schedules, identical curves for the same seed, the curve summary numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facetransfer.config import TraineeConfig
from facetransfer.masking.trainee import Job, curve_summary, plan, run_epochs, train_trainee, variants


def test_the_seven_variants_and_their_schedules():
    v = variants(switch_epoch=2)
    assert list(v) == ["plain", "negative", "mean", "perceptive", "negative-then-plain", "mean-then-plain",
                       "perceptive-then-plain"]
    assert [v["mean-then-plain"].images_for(e) for e in range(4)] == ["mean", "mean", "plain", "plain"]
    assert {v["perceptive"].images_for(e) for e in range(5)} == {"perceptive"}
    assert {v["plain"].images_for(e) for e in range(5)} == {"plain"}


def _data(seed=0, n=32, size=32):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 8, n)
    plain = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    masked = plain * (rng.random((n, size, size, 1)) < 0.5).astype(np.uint8)
    return {"plain": plain, "mean": masked}, labels, plain[:16], labels[:16]


def test_same_seed_gives_identical_curves_and_the_switch_is_recorded():
    train, labels, val, val_labels = _data()
    cfg = TraineeConfig(epochs=3, switch_epoch=1, batch_size=16)  # the default ResNet-10; 2 steps per epoch
    variant = variants(cfg.switch_epoch)["mean-then-plain"]
    first = train_trainee(variant, train, labels, val, val_labels, 8, cfg)[1]
    second = train_trainee(variant, train, labels, val, val_labels, 8, cfg)[1]
    assert first == second
    assert [r["images"] for r in first] == ["mean", "plain", "plain"]
    assert [r["step"] for r in first] == [2, 4, 6]
    other = train_trainee(variants(1)["plain"], train, labels, val, val_labels, 8, cfg)[1]
    assert other[0]["val_loss"] != first[0]["val_loss"]  # masked first epoch -> a different curve


def test_a_prefix_continued_gives_the_weights_of_one_straight_run():
    """What lets `mean` and `mean-then-plain` share their first epochs: stop after 2, continue to 4 (here
    with another variant, as the pair does) = 4 in one go. Model, optimizer and dropout RNG all resume."""
    train, labels, val, val_labels = _data()
    # MobileNetV2: its classifier's dropout draws from torch's RNG, which the continuation must restore
    cfg = TraineeConfig(model={"name": "mobilenet_v2", "width": 0.35}, epochs=4, switch_epoch=2, batch_size=16)
    pair = variants(cfg.switch_epoch)
    straight_model, straight = run_epochs(pair["mean-then-plain"], train, labels, val, val_labels, 8, cfg)
    _, prefix = run_epochs(pair["mean"], train, labels, val, val_labels, 8, cfg, stop=2)
    resumed_model, resumed = run_epochs(pair["mean-then-plain"], train, labels, val, val_labels, 8, cfg, start=prefix)
    assert resumed.history == straight.history
    assert [r["images"] for r in resumed.history] == ["mean"] * 2 + ["plain"] * 2
    assert all(torch.equal(resumed.model[k], straight.model[k]) for k in straight.model)
    assert torch.equal(resumed.rng, straight.rng)
    # the prefix's state is a copy: training on from it did not change it
    _, again = run_epochs(pair["mean-then-plain"], train, labels, val, val_labels, 8, cfg, start=prefix)
    assert again.history == straight.history


def test_the_plan_shares_a_prefix_only_within_a_pair():
    jobs = plan(["plain", "mean", "perceptive", "mean-then-plain", "negative-then-plain"], switch_epoch=5, epochs=20)
    assert jobs == [Job("plain", "plain", 20), Job("mean@5", "mean", 5), Job("mean", "mean", 20, after="mean@5"),
                    Job("perceptive", "perceptive", 20), Job("mean-then-plain", "mean-then-plain", 20, after="mean@5"),
                    Job("negative-then-plain", "negative-then-plain", 20)]
    assert plan(["mean", "mean-then-plain"], switch_epoch=20, epochs=20) == [
        Job("mean", "mean", 20), Job("mean-then-plain", "mean-then-plain", 20)]


def test_curve_summary_hand_worked():
    history = [{"step": 10, "val_macro_f1": 0.2}, {"step": 20, "val_macro_f1": 0.6}, {"step": 30, "val_macro_f1": 0.4}]
    s = curve_summary(history, target_f1=0.5)
    assert s["final_f1"] == 0.4 and s["best_f1"] == 0.6 and s["steps_to_target"] == 20
    # trapezoid from (0, 0): (0 + 0.2) / 2 * 10 + (0.2 + 0.6) / 2 * 10 + (0.6 + 0.4) / 2 * 10 = 10, over 30 steps
    assert s["auc"] == pytest.approx(10 / 30)
    assert curve_summary(history, target_f1=0.9)["steps_to_target"] is None


def test_unknown_variant_names_are_rejected():
    with pytest.raises(ValueError, match="variants must be among"):
        TraineeConfig(variants=("plain", "blurred"))


def test_only_mobilenet_takes_a_width_and_the_old_width_key_is_refused():
    assert TraineeConfig(model={"name": "mobilenet_v2", "width": 0.35}).model.width == 0.35
    assert TraineeConfig().model.title == "ResNet-10"  # what the curves and the report call it
    with pytest.raises(ValueError, match="only mobilenet_v2 takes a width multiplier, got width 0.5 for resnet10"):
        TraineeConfig(model={"name": "resnet10", "width": 0.5})
    with pytest.raises(ValueError, match="width"):
        TraineeConfig(width=0.5)  # the pre-registry key: an unknown field now
    with pytest.raises(ValueError, match="model.name"):
        TraineeConfig(model={"name": "vgg16"})  # the trainer's architecture is not a trainee
