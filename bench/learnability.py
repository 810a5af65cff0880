"""Learnability benchmark for the synthetic data: is it "fit for purpose"?

Not a test. It answers one question about prepared/affectnet (EMOTIONS, 8
classes) and prepared/unbc (PAIN, 2 classes): is the label learnable from the
images, but not trivially so?

  (a) linear probe on raw pixels  -> how much a shallow model already gets
  (b) small CNN trained from scratch on CPU -> what a real (small) model gets
  (c) chance level (1 / classes)

Design aim (DESIGN.md section 4): the CNN should be clearly above the probe,
with emotion macro recall between 0.6 and 0.9 and no class near chance
(every per-class recall clearly above 1/8).

Run from the project root:
    .venv/bin/python bench/learnability.py [--epochs 15] [--prepared prepared] [--seed 0] [--size 48]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

EMOTIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
PAIN = ("no pain", "pain")

# Verdict thresholds (the design aim above).
TARGET_LOW, TARGET_HIGH = 0.6, 0.9
CHANCE_MARGIN = 0.125  # a class is "clearly above chance" if recall >= 1/C + 0.125 (= 2x chance for 8 classes)
PROBE_MARGIN = 0.1   # "clearly above the probe": CNN macro recall >= probe + 0.1


@dataclass
class Split:
    images: np.ndarray  # (N, 64, 64, 3) uint8, copied into memory
    labels: np.ndarray  # (N,) int64


@dataclass
class Result:
    macro: float
    per_class: np.ndarray   # (C,) recall of each class
    confusion: np.ndarray   # (C, C) rows = true, cols = predicted
    seconds: float
    note: str = ""
    predicted: np.ndarray | None = None  # (N_test,) predicted class, for follow-up analysis


# ----------------------------------------------------------------------------- data

def load_split(folder: Path, split: str) -> Split:
    """Rows of one split; images are read through a memmap so only those rows load."""
    table = pd.read_csv(folder / f"{split}.csv")
    images = np.load(folder / "images.npy", mmap_mode="r")
    rows = table["row"].to_numpy()
    return Split(np.ascontiguousarray(images[rows]), table["label"].to_numpy().astype(np.int64))


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Probe features: 32x32 greyscale pixels, flattened -> (N, 1024) float32.

    Greyscale (ITU-R 601 luma) and 2x2 box downsampling keep the probe small
    and fast; the expression cues are geometric (landmark shifts, lid aperture,
    mouth shape), so colour adds little for a linear model. Standardisation is
    done in train_probe (fit on train only).
    """
    x = images.astype(np.float32) / 255.0                                 # (N, 64, 64, 3)
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)          # (N, 64, 64)
    small = grey.reshape(len(x), 32, 2, 32, 2).mean(axis=(2, 4))          # (N, 32, 32)
    return small.reshape(len(x), -1)                                      # (N, 1024)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Macro recall, per-class recall and confusion matrix (rows = true class)."""
    from sklearn.metrics import confusion_matrix, recall_score

    labels = list(range(n_classes))
    macro = float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    per_class = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return macro, per_class, confusion_matrix(y_true, y_pred, labels=labels)


# ----------------------------------------------------------------------------- (a) probe

def train_probe(train: Split, val: Split, test: Split, n_classes: int, seed: int) -> Result:
    """Logistic regression on standardised 32x32 grey pixels; C picked on val.

    class_weight="balanced" because the training sets are imbalanced while the
    score is macro recall; the CNN gets the same treatment (weighted loss).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    scaler = StandardScaler().fit(pixel_features(train.images))
    x_train, x_val, x_test = (scaler.transform(pixel_features(s.images)) for s in (train, val, test))
    best = None
    for c in (1e-2, 1e-1, 1.0):  # strong to weak L2; 1024 features vs ~1k-8k samples (1e-3 underfits)
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000, random_state=seed)
        with warnings.catch_warnings():
            # Weak L2 may stop at max_iter; a bench should not wait minutes for the last digit,
            # and the stop is reported in the note instead of as a multi-line warning.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, train.labels)
        val_macro = evaluate(val.labels, model.predict(x_val), n_classes)[0]
        if best is None or val_macro > best[0]:
            best = (val_macro, c, model)
    val_macro, c, model = best
    predicted = model.predict(x_test)
    macro, per_class, confusion = evaluate(test.labels, predicted, n_classes)
    converged = "" if model.n_iter_.max() < model.max_iter else ", hit max_iter"
    note = f"C={c:g}, val {val_macro:.3f}{converged}"
    return Result(macro, per_class, confusion, time.perf_counter() - start, note, predicted)


# ----------------------------------------------------------------------------- (b) CNN

def build_cnn(n_classes: int, width: int = 32):
    """4 x (conv3x3-BN-ReLU-maxpool2), 32-32-64-64 channels, global avg pool, linear.

    With the default 48x48 input (S = 48):
    (B, 3, 48, 48) -> (B, 32, 24, 24) -> (B, 32, 12, 12) -> (B, 64, 6, 6)
    -> (B, 64, 3, 3) -> (B, 64) -> (B, n_classes).  ~66k parameters: small
    enough for CPU, big enough to read local shape cues (lids, brows, mouth).
    """
    from torch import nn

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))

    return nn.Sequential(
        block(3, width), block(width, width), block(width, 2 * width), block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * width, n_classes),
    )


def _to_tensor(images: np.ndarray, size: int, mean=None, std=None):
    """uint8 (N, 64, 64, 3) -> float (N, 3, size, size), channels_last, normalised.

    Done once per split (not per batch): resizing 64 -> 48 with antialiasing
    cuts the CNN cost ~2-3x on 2 cores while the face cues stay visible;
    channels_last is the fast conv layout for oneDNN on CPU.
    """
    import torch
    import torch.nn.functional as F

    out = []
    for i in range(0, len(images), 1024):  # chunks bound the float32 peak
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + 1024])).permute(0, 3, 1, 2).float().div_(255.0)
        if size != x.shape[-1]:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(x)
    x = torch.cat(out)                                              # (N, 3, size, size)
    if mean is None:  # statistics from the training split only, shape (1, 3, 1, 1)
        mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last), mean, std


def _predict(model, x, batch: int = 512) -> np.ndarray:
    """Predicted class per row of x (N, 3, S, S) -> (N,)."""
    import torch

    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]).numpy()


def train_cnn(train: Split, val: Split, test: Split, n_classes: int, epochs: int, seed: int,
              size: int = 48, batch: int = 64, lr: float = 2e-3) -> Result:
    """Adam + cosine LR, random horizontal flip, class-weighted CE; keep the best val epoch.

    Horizontal flip is a label-preserving augmentation for every class here
    (contempt is unilateral but either side is still contempt).
    """
    import copy

    import torch
    from torch import nn

    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(seed)  # batch order and flips

    x_train, mean, std = _to_tensor(train.images, size)            # (N, 3, S, S)
    x_val, x_test = (_to_tensor(s.images, size, mean, std)[0] for s in (val, test))

    counts = np.bincount(train.labels, minlength=n_classes)
    weights = torch.tensor(len(train.labels) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights)

    model = build_cnn(n_classes).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(train.labels) + batch - 1) // batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.15)
    labels = torch.from_numpy(train.labels)

    best_macro, best_epoch, best_state, history = -1.0, -1, None, []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = x_train[idx]                                        # (B, 3, S, S)
            flip = torch.rand(len(idx), generator=generator) < 0.5
            x[flip] = x[flip].flip(-1)                              # mirror along width
            loss = loss_fn(model(x), labels[idx])                   # logits (B, C)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
        val_macro = evaluate(val.labels, _predict(model, x_val), n_classes)[0]
        history.append(val_macro)
        if val_macro > best_macro:
            best_macro, best_epoch, best_state = val_macro, epoch, copy.deepcopy(model.state_dict())
        print(f"    epoch {epoch + 1:2d}/{epochs}  loss {loss.item():.3f}  val macro recall {val_macro:.3f}"
              f"  ({time.perf_counter() - start:.0f}s)", flush=True)

    model.load_state_dict(best_state)
    predicted = _predict(model, x_test)
    macro, per_class, confusion = evaluate(test.labels, predicted, n_classes)
    note = f"best epoch {best_epoch + 1}/{epochs}, val {best_macro:.3f}"
    return Result(macro, per_class, confusion, time.perf_counter() - start, note, predicted)


# ----------------------------------------------------------------------------- report

def verdict(task: str, probe: Result, cnn: Result, names) -> str:
    chance = 1.0 / len(names)
    problems = []
    if cnn.macro < probe.macro + PROBE_MARGIN:
        problems.append(f"CNN not clearly above probe ({cnn.macro:.3f} < {probe.macro:.3f} + {PROBE_MARGIN})")
    if task == "emotion" and not TARGET_LOW <= cnn.macro <= TARGET_HIGH:
        problems.append(f"CNN macro {cnn.macro:.3f} outside {TARGET_LOW}..{TARGET_HIGH}")
    weak = [names[i] for i, r in enumerate(cnn.per_class) if r < chance + CHANCE_MARGIN]
    if weak:
        problems.append(f"classes near chance (recall < {chance + CHANCE_MARGIN:.3f}): {', '.join(weak)}")
    return "FIT for purpose" if not problems else "NOT fit: " + "; ".join(problems)


def print_confusion(title: str, confusion: np.ndarray, names) -> None:
    short = [n[:5] for n in names]
    print(f"\n{title} (rows = true, cols = predicted)")
    print("          " + " ".join(f"{s:>6}" for s in short))
    for name, row in zip(short, confusion, strict=True):
        print(f"  {name:>7} " + " ".join(f"{v:6d}" for v in row))


def run_task(task: str, folder: Path, names, epochs: int, seed: int, size: int) -> dict:
    print(f"\n== {task}: {folder}", flush=True)
    start = time.perf_counter()
    train, val, test = (load_split(folder, s) for s in ("train", "val", "test"))
    load_s = time.perf_counter() - start
    print(f"  loaded train {len(train.labels)}, val {len(val.labels)}, test {len(test.labels)} "
          f"(test counts {np.bincount(test.labels, minlength=len(names)).tolist()}) in {load_s:.1f}s", flush=True)
    probe = train_probe(train, val, test, len(names), seed)
    print(f"  probe: test macro {probe.macro:.3f} ({probe.note}, {probe.seconds:.0f}s)", flush=True)
    cnn = train_cnn(train, val, test, len(names), epochs, seed, size=size)
    print(f"  cnn:   test macro {cnn.macro:.3f} ({cnn.note}, {cnn.seconds:.0f}s)", flush=True)
    return dict(task=task, names=names, probe=probe, cnn=cnn, load_s=load_s,
                verdict=verdict(task, probe, cnn, names))


def print_table(results: list[dict]) -> None:
    print("\n" + "=" * 78)
    print("LEARNABILITY  (test recall; probe = logistic regression on standardised 32x32 grey pixels)")
    for r in results:
        names, chance = r["names"], 1.0 / len(r["names"])
        print(f"\n[{r['task']}]  classes {len(names)}, chance {chance:.3f}, load {r['load_s']:.1f}s")
        print(f"  {'model':<7} {'macro':>6} {'time_s':>7}  " + " ".join(f"{n[:7]:>7}" for n in names))
        for label in ("probe", "cnn"):
            res: Result = r[label]
            print(f"  {label:<7} {res.macro:6.3f} {res.seconds:7.0f}  "
                  + " ".join(f"{v:7.3f}" for v in res.per_class) + f"   [{res.note}]")
        print(f"  {'chance':<7} {chance:6.3f} {'':>7}  " + " ".join(f"{chance:7.3f}" for _ in names))
        print(f"  CNN/probe = {r['cnn'].macro / max(r['probe'].macro, 1e-9):.2f}   -> {r['verdict']}")
        print_confusion(f"  {r['task']} CNN confusion", r["cnn"].confusion, names)
    print("=" * 78)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="CNN epochs (best val epoch is kept; ~converged at 30)")
    parser.add_argument("--prepared", default="prepared", help="folder with affectnet/ and unbc/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=48, help="CNN input side (images are 64x64)")
    parser.add_argument("--tasks", default="emotion,pain", help="comma list: emotion, pain")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)  # the reference machine has 2 cores
    root = Path(args.prepared)
    tasks = {"emotion": (root / "affectnet", EMOTIONS), "pain": (root / "unbc", PAIN)}
    start = time.perf_counter()
    results = [run_task(t, *tasks[t], args.epochs, args.seed, args.size) for t in args.tasks.split(",")]
    print_table(results)
    print(f"total wall time {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
