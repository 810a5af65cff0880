"""How each kind of VGG16 model of the study is trained, as pure functions: data in, model and numbers out.

  train_emotion     source VGG16 on AffectNet(-like), 8 emotions, focal loss + class-balanced weights
  train_pain        copy of the source, first k conv blocks frozen, fine-tuned to pain (UNBC-like)
  retrain_emotion   conv of a pain model (or a control) frozen, new 8-class head trained on emotions again
  fine_tune_emotion copy of the source fine-tuned, every block, on emotion data again (the controls)

The stage modules (facetransfer/stages/train_emotion.py, train_pain.py, retrain_emotion.py, train_control.py)
write the files and log to MLflow.
A saved model is a dict of tensors and plain values (loaded with
`torch.load(..., weights_only=True)`) that carries its architecture and config.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn

from facetransfer.config import (
    ControlFineTune,
    HeadSettings,
    ModelSpec,
    TrainEmotionConfig,
    TrainPainConfig,
    TrainSettings,
)
from facetransfer.data.errors import ModelFileError
from facetransfer.data.labels import EMOTIONS, PAIN_CLASSES
from facetransfer.models import build_model
from facetransfer.models.vgg import freeze_blocks, load_imagenet_features, new_head
from facetransfer.training.cached import FlipFeatureDataset, flip_features
from facetransfer.training.data import ImageDataset, Split, build_transform, class_counts, data_digest, load_split
from facetransfer.training.loop import (
    EpochCallback,
    FitResult,
    fingerprint,
    fit,
    predict,
    resolve_device,
    training_dtype,
)
from facetransfer.training.losses import FocalLoss, class_balanced_weights

MODEL_FORMAT = "facetransfer.model/1"
# The `stages` a reader of model.pt files accepts (load_model): the stage that wrote each kind of model.
EMOTION_SOURCE = ("train_emotion",)
PAIN_MODEL = ("train_pain",)
EMOTION_HEAD = ("retrain_emotion",)  # a pain model's or a control's conv features, a new emotion head
FINE_TUNED = ("fine_tune_emotion",)  # a control: the emotion model fine-tuned, every block, on emotion data again
EMOTION_CLASSIFIER = ("train_emotion", "retrain_emotion", "fine_tune_emotion")  # any 8-class emotion model


@dataclass
class Trained:
    """A trained model and what it scored: saved by the CLI as model.pt + metrics."""

    model: nn.Module
    saved: dict  # the model.pt payload
    fit: FitResult
    test_probs: np.ndarray  # (N, C)
    test_labels: np.ndarray  # (N,)
    test_rows: np.ndarray  # (N,) row ids in the prepared dataset


def build(arch: ModelSpec, num_classes: int) -> nn.Module:
    return build_model(arch.name, num_classes=num_classes, width=arch.width, batch_norm=arch.batch_norm,
                       dropout=arch.dropout)


def load_model(path: str | Path, stages: tuple[str, ...] | None = None) -> tuple[nn.Module, dict]:
    """A model.pt written by a training stage -> (model with its weights, payload).

    `stages`: the training stages whose models the caller can use (None: any). A file that is not
    a readable facetransfer model, or one of another stage, raises ModelFileError naming it.
    """
    if Path(path).is_dir():
        raise ModelFileError(path, "is a folder; expected a model.pt file")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch.load raises many types on a truncated or foreign file; all are the file's fault
        raise ModelFileError(path, f"not a readable torch file ({type(err).__name__}); expected a model.pt written by "
                                   "a facetransfer training stage") from None
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise ModelFileError(path, f"not a facetransfer model (format {found!r}, expected {MODEL_FORMAT})")
    if stages is not None and saved.get("stage") not in stages:
        raise ModelFileError(path, f"a {saved.get('stage')} model; expected one written by {' or '.join(stages)}")
    model = build(ModelSpec(**saved["arch"]), len(saved["classes"]))
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as err:
        raise ModelFileError(path, f"weights do not fit its architecture ({str(err).splitlines()[0][:120]})") from None
    return model, saved


def _payload(model: nn.Module, arch: ModelSpec, classes: tuple[str, ...], stage: str, cfg: TrainSettings,
             result: FitResult, **extra) -> dict:
    return {"format": MODEL_FORMAT, "stage": stage, "arch": arch.model_dump(), "classes": list(classes),
            "state_dict": model.state_dict(), "config": cfg.model_dump(mode="json"),
            "train_dtype": str(training_dtype(cfg.precision, resolve_device(cfg.device))).removeprefix("torch."),
            "best_epoch": result.best_epoch + 1, "epochs_run": result.epochs_run, "val_macro_recall": result.best_score,
            **extra}


def _loss(cfg: TrainSettings, train: Split, n_classes: int) -> FocalLoss:
    weight = None
    if cfg.loss.class_balance_beta > 0:
        weight = class_balanced_weights(class_counts(train, n_classes), cfg.loss.class_balance_beta)
    return FocalLoss(cfg.loss.gamma, weight=weight)


def _fit_images(model: nn.Module, prepared: Path, cfg: TrainSettings, n_classes: int, checkpoint: Path | None,
                run_key: str, on_epoch: EpochCallback | None, section: str) -> tuple[FitResult, Split]:
    train, val = load_split(prepared, "train", n_classes), load_split(prepared, "val", n_classes)
    result = fit(model, ImageDataset(train, build_transform(cfg.augment), cfg.seed),
                 ImageDataset(val, build_transform(None)), val.labels, _loss(cfg, train, n_classes), cfg, n_classes,
                 checkpoint, run_key, on_epoch, section)
    model.load_state_dict(result.best_state)
    return result, load_split(prepared, "test", n_classes)


def _test(model: nn.Module, test: Split, cfg: TrainSettings) -> np.ndarray:
    device = resolve_device(cfg.device)
    return predict(model.to(device), ImageDataset(test, build_transform(None)), cfg.batch_size, device)


def _digest(path: Path) -> str:
    """Identity of a source model file, part of a run's resume key."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def train_emotion(prepared: Path, cfg: TrainEmotionConfig, checkpoint: Path | None = None,
                  on_epoch: EpochCallback | None = None) -> Trained:
    """The source model: VGG16 (scratch or ImageNet conv weights) trained on 8 emotions."""
    torch.manual_seed(cfg.seed)  # the initial weights
    model = build(cfg.model, len(EMOTIONS))
    if cfg.init == "imagenet":
        load_imagenet_features(model)
    run_key = fingerprint(cfg, {"data": data_digest(prepared)})  # a checkpoint of other data starts over
    result, test = _fit_images(model, prepared, cfg, len(EMOTIONS), checkpoint, run_key, on_epoch, "train_emotion")
    saved = _payload(model, cfg.model, EMOTIONS, "train_emotion", cfg, result, init=cfg.init, freeze_blocks=0)
    return Trained(model, saved, result, _test(model, test, cfg), test.labels, test.rows)


def train_pain(source: Path, prepared: Path, freeze: int, cfg: TrainPainConfig, checkpoint: Path | None = None,
               on_epoch: EpochCallback | None = None) -> Trained:
    """FreezeB<freeze>: all conv weights copied from the source, the first `freeze` blocks frozen."""
    model, src = load_model(source, EMOTION_SOURCE)
    arch = ModelSpec(**src["arch"])
    torch.manual_seed(cfg.seed)  # the new binary head
    new_head(model, len(PAIN_CLASSES))
    freeze_blocks(model, freeze)
    run_key = fingerprint(cfg, {"freeze": freeze, "source": _digest(source), "data": data_digest(prepared)})
    result, test = _fit_images(model, prepared, cfg, len(PAIN_CLASSES), checkpoint, run_key, on_epoch, "train_pain")
    saved = _payload(model, arch, PAIN_CLASSES, "train_pain", cfg, result, freeze_blocks=freeze)
    return Trained(model, saved, result, _test(model, test, cfg), test.labels, test.rows)


def fine_tune_emotion(source: Path, prepared: Path, cfg: ControlFineTune, checkpoint: Path | None = None,
                      on_epoch: EpochCallback | None = None) -> Trained:
    """A copy of an emotion model, no block frozen, trained on (possibly re-rendered) emotion data again."""
    model, src = load_model(source, EMOTION_SOURCE)
    arch = ModelSpec(**src["arch"])
    torch.manual_seed(cfg.seed)
    if cfg.fresh_head:
        new_head(model, len(EMOTIONS))
    run_key = fingerprint(cfg, {"source": _digest(source), "data": data_digest(prepared)})
    result, test = _fit_images(model, prepared, cfg, len(EMOTIONS), checkpoint, run_key, on_epoch, "controls.fine_tune")
    saved = _payload(model, arch, EMOTIONS, "fine_tune_emotion", cfg, result, freeze_blocks=0)
    return Trained(model, saved, result, _test(model, test, cfg), test.labels, test.rows)


def retrain_emotion(source: Path, prepared: Path, cfg: HeadSettings, checkpoint: Path | None = None,
                    on_epoch: EpochCallback | None = None, section: str = "retrain_emotion",
                    source_stages: tuple[str, ...] = PAIN_MODEL) -> Trained:
    """All conv blocks of a pain model frozen, a new 8-class head trained on emotions (`cfg` is the params
    `section`: retrain_emotion, or controls.head for the controls, whose sources are emotion models of
    `source_stages`)."""
    model, src = load_model(source, source_stages)
    arch = ModelSpec(**src["arch"])
    torch.manual_seed(cfg.seed)
    new_head(model, len(EMOTIONS))
    freeze_blocks(model, 5)
    run_key = fingerprint(cfg, {"source": _digest(source), "data": data_digest(prepared)})
    if cfg.cached_features and cfg.augment.flip_only:
        result, test = _fit_cached_head(model, prepared, cfg, checkpoint, run_key, on_epoch, section)
    else:
        result, test = _fit_images(model, prepared, cfg, len(EMOTIONS), checkpoint, run_key, on_epoch, section)
    saved = _payload(model, arch, EMOTIONS, "retrain_emotion", cfg, result, freeze_blocks=src.get("freeze_blocks"),
                     cached_features=cfg.cached_features and cfg.augment.flip_only)
    return Trained(model, saved, result, _test(model, test, cfg), test.labels, test.rows)


def _fit_cached_head(model: nn.Module, prepared: Path, cfg: HeadSettings, checkpoint: Path | None,
                     run_key: str, on_epoch: EpochCallback | None, section: str) -> tuple[FitResult, Split]:
    device = resolve_device(cfg.device)
    train, val = load_split(prepared, "train", len(EMOTIONS)), load_split(prepared, "val", len(EMOTIONS))
    train_f = flip_features(model, train, cfg.batch_size, device)  # (N, 2, C)
    val_f = flip_features(model, val, cfg.batch_size, device, mirrors=False)  # validation is never flipped
    head = model.classifier
    result = fit(head, FlipFeatureDataset(train_f, train.labels, train=cfg.augment.hflip, seed=cfg.seed),
                 FlipFeatureDataset(val_f, val.labels, train=False), val.labels,
                 _loss(cfg, train, len(EMOTIONS)), cfg, len(EMOTIONS), checkpoint, run_key, on_epoch, section)
    head.load_state_dict(result.best_state)
    model.to("cpu")
    return FitResult(model.state_dict(), result.best_epoch, result.best_score, result.history), \
        load_split(prepared, "test", len(EMOTIONS))


def classification_metrics(labels: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    """accuracy, and per-class + macro precision / recall / F1 (the paper's Table 1 layout)."""
    predicted = probs.argmax(1)
    ids = list(range(len(classes)))
    p, r, f, _ = precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    out: dict = {"accuracy": float((predicted == labels).mean())}
    for name, values in (("precision", p), ("recall", r), ("f1", f)):
        out[name] = {c: float(v) for c, v in zip(classes, values, strict=True)} | {"macro": float(np.mean(values))}
    out["confusion"] = confusion_matrix(labels, predicted, labels=ids).tolist()
    return out
