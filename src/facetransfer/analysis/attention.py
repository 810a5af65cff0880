"""Pretrained vs scratch, with and without SE / CBAM attention (Arabian et al. 2022, Table 2, Fig. 1-2).

Each (init, attention) VGG16 is trained on the posed CK+(-like) peak frames of the six basic
emotions in k subject-disjoint folds, then tested in-domain (the held-out fold) and across
datasets (FER+ and AffectNet test images of the same six classes). Grad-CAM maps of the
held-out fold are scored with DICE and IoU against the union of the regions of the class's
prototype AUs present in each image (the benchmark knows where they are).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from facetransfer.analysis.saliency import TestImages
from facetransfer.config import AttentionStudyConfig, ModelSpec
from facetransfer.data.labels import ACTION_UNITS, EMOTIONS
from facetransfer.data.synth.sampling import PROTOTYPES
from facetransfer.explain import dice_iou, gradcam_maps
from facetransfer.models.attention import add_attention, glorot_init
from facetransfer.models.vgg import load_checkpoint_weights, load_imagenet_features, new_head
from facetransfer.training.data import ImageDataset, Split, build_transform
from facetransfer.training.loop import predict, run_epoch, torch_threads, training_dtype
from facetransfer.training.recipes import build

BASIC = ("happy", "sad", "surprise", "fear", "disgust", "anger")  # the six classes, in AffectNet order
_TO_BASIC = {EMOTIONS.index(name): i for i, name in enumerate(BASIC)}


def basic_subset(images: TestImages, groups: np.ndarray | None = None) -> tuple[TestImages, np.ndarray | None]:
    """The images of the six basic emotions, labels renumbered 0..5 in BASIC order."""
    keep = np.isin(images.labels, list(_TO_BASIC))
    labels = np.array([_TO_BASIC[int(v)] for v in images.labels[keep]], dtype=np.int64)
    subset = images.subset(np.flatnonzero(keep), labels)
    return subset, None if groups is None else groups[keep]


def class_truth(images: TestImages, idx: np.ndarray) -> np.ndarray:
    """(n, H, W): union of the regions of the prototype AUs of each image's class that it shows."""
    prototype = np.zeros((len(BASIC), len(ACTION_UNITS)), dtype=bool)
    for c, name in enumerate(BASIC):
        prototype[c, [ACTION_UNITS.index(au) for au in PROTOTYPES[name]]] = True
    shown = images.present[idx] & prototype[images.labels[idx]]  # (n, A)
    return (images.regions(idx) & shown[:, :, None, None]).any(axis=1)


def folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k subject-disjoint, class-stratified (train, held-out) index pairs."""
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


def build_variant(init: str, attention: str, arch: ModelSpec, source_state: dict | None,
                  cfg: AttentionStudyConfig) -> nn.Module:
    """VGG16 with a 6-class head: Glorot init ("scratch"), the emotion model's weights ("pretrained") or
    torchvision's ImageNet conv weights from the local torch cache ("imagenet", width 1.0); then the
    attention modules (always freshly initialised)."""
    model = build(arch, len(EMOTIONS))
    if init == "pretrained":
        if source_state is None:
            raise ValueError("init 'pretrained' needs the emotion source model's weights")
        load_checkpoint_weights(model, source_state, skip_head=False)
    elif init == "imagenet":  # the paper's start: torchvision's ImageNet VGG16 from the local cache (width 1.0)
        load_imagenet_features(model)
    new_head(model, len(BASIC))
    model = add_attention(model, attention, cfg.after_blocks, cfg.reduction)
    if init == "scratch":
        glorot_init(model)
    return model


def train(model: nn.Module, images: np.ndarray, labels: np.ndarray, cfg: AttentionStudyConfig, seed: int,
          device: torch.device) -> list[float]:
    """SGD with momentum for cfg.epochs on (images, labels), cross-entropy, on cfg.threads torch threads; returns
    the training loss per epoch."""
    dataset = ImageDataset(Split(images, np.arange(len(images)), labels), build_transform(cfg.augment), seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    model.to(device)
    dtype = training_dtype(cfg.precision, device)
    with torch_threads(cfg.threads):  # the training loop's epochs, without its validation and checkpoints
        return [run_epoch(model, dataset, nn.CrossEntropyLoss(), optimizer, seed, epoch, cfg.batch_size, device,
                          dtype, "attention_study", "lr") for epoch in range(cfg.epochs)]


def accuracy(model: nn.Module, images: TestImages, batch_size: int, device: torch.device) -> float:
    dataset = ImageDataset(Split(images.images, np.arange(len(images.labels)), images.labels), build_transform(None))
    predicted = predict(model, dataset, batch_size, device).argmax(1)
    return float(np.mean(predicted == images.labels))


def localisation(model: nn.Module, images: TestImages, cfg: AttentionStudyConfig, device: torch.device) -> pd.DataFrame:
    """Per held-out image: class, DICE and IoU of its Grad-CAM map (true class) against its class's AU regions."""
    idx = np.arange(len(images.labels))
    cams = gradcam_maps(model, images.images, images.labels, cfg.batch_size, device)
    dice, iou = dice_iou(cams, class_truth(images, idx), cfg.gradcam_threshold)
    return pd.DataFrame({"class": [BASIC[c] for c in images.labels], "dice": dice, "iou": iou})


@dataclass(frozen=True)
class FoldResult:
    init: str
    attention: str
    fold: int
    accuracy: dict[str, float]  # dataset -> accuracy ("ckplus" = the held-out fold)
    localisation: pd.DataFrame  # per held-out image: class, dice, iou
    train_loss: list[float]


def run_fold(init: str, attention: str, fold: int, split: tuple[np.ndarray, np.ndarray], train_set: TestImages,
             tests: dict[str, TestImages], arch: ModelSpec, source_state: dict | None, cfg: AttentionStudyConfig,
             device: torch.device) -> FoldResult:
    """Train one (init, attention) model on the fold's training subjects and test it everywhere."""
    train_idx, held_idx = split
    seed = cfg.seed + fold
    torch.manual_seed(seed)  # the same head and attention init for a given fold, whatever ran before
    model = build_variant(init, attention, arch, source_state, cfg)
    losses = train(model, train_set.images[train_idx], train_set.labels[train_idx], cfg, seed, device)
    held = train_set.subset(held_idx)
    scores = {"ckplus": accuracy(model, held, cfg.batch_size, device)}
    scores |= {name: accuracy(model, data, cfg.batch_size, device) for name, data in tests.items()}
    return FoldResult(init, attention, fold, scores, localisation(model, held, cfg, device), losses)


def accuracy_table(results: list[FoldResult]) -> pd.DataFrame:
    """Table 2 analogue: mean and SD of accuracy over folds per (init, attention, dataset)."""
    rows = [{"init": r.init, "attention": r.attention, "fold": r.fold, "dataset": d, "accuracy": a}
            for r in results for d, a in r.accuracy.items()]
    frame = pd.DataFrame(rows)
    return (frame.groupby(["init", "attention", "dataset"], sort=False)["accuracy"]
            .agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, folds="count")
            .reset_index())


def localisation_table(results: list[FoldResult]) -> pd.DataFrame:
    """Mean DICE and IoU per (init, attention, class) over all held-out images (NaN pairs ignored)."""
    frames = [r.localisation.assign(init=r.init, attention=r.attention) for r in results]
    return (pd.concat(frames).groupby(["init", "attention", "class"], sort=False)[["dice", "iou"]].mean().reset_index())
