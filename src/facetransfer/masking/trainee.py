"""The RBDM trainee (Schiller et al. 2020, section 5.5): a model of another architecture than the trainer,
from scratch on masked or plain images (`trainee.model`: ResNet-10 by default, models/trainees.py says why).

Variants: `plain`; `<method>` (masked images every epoch); `<method>-then-plain` (masked
for `switch_epoch` epochs, then the plain images). Validation always uses plain images.
Each epoch's steps are the training loop's (`training.loop.train_one_epoch`, as every stage's);
the epochs around them are not `training.fit`'s because a trainee switches its training images
mid-run, records loss and macro F1 against optimiser steps, and continues a shared prefix.

Speed (issue 16): `<method>` and `<method>-then-plain` are the same run for their
first `switch_epoch` epochs (same seed, images, order, flips and dropout draws), so
that prefix is trained once and both continue from its exact state (model, Adam,
torch's RNG): 55 epochs instead of 70 for the seven variants at the default 10 epochs.
`train_variants` can also train `workers` variants side by side in worker processes,
each on `threads` torch threads. The thread count is fixed by the params because it
changes the numbers (float reductions split differently). On 2 cores two 1-thread
ResNet-10 runs train 1.24x the images/s of one 2-thread run (20.4 s against 12.6 s an
epoch), so the default is 1 thread and 2 workers. (The MobileNetV2 trainee had stayed at
the class prior on 1 thread, so its default had been 2 threads and 1 worker.) Results do
not depend on `workers`; same seed and threads -> the same curve (tested, also prefix +
continuation against one straight run).
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from torch import nn

from facetransfer.config import TraineeConfig, TraineeModel
from facetransfer.fsutil import load_array
from facetransfer.masking.dataset import METHODS
from facetransfer.models import trainees
from facetransfer.training.data import normalize
from facetransfer.training.loop import check_finite, torch_threads, train_one_epoch

CPU = torch.device("cpu")  # the trainees train on the CPU (float32, channels_last)


@dataclass(frozen=True)
class Variant:
    name: str
    masked: str | None  # masking method of the first epochs; None = plain throughout
    switch_epoch: int | None  # epochs on masked images before plain ones; None = masked throughout

    def images_for(self, epoch: int) -> str:
        """"plain" or the masking method used in `epoch` (0-based)."""
        if self.masked is None or (self.switch_epoch is not None and epoch >= self.switch_epoch):
            return "plain"
        return self.masked


def variants(switch_epoch: int) -> dict[str, Variant]:
    """The seven variants of the paper's Fig. 10, by name."""
    out = {"plain": Variant("plain", None, None)}
    out.update({m: Variant(m, m, None) for m in METHODS})
    out.update({f"{m}-then-plain": Variant(f"{m}-then-plain", m, switch_epoch) for m in METHODS})
    return out


def build_trainee(num_classes: int, spec: TraineeModel) -> nn.Module:
    """The trainee of `spec`, randomly initialised (the paper trained it from scratch)."""
    return trainees.build_trainee(spec.name, num_classes, spec.width)


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _epoch_batches(images: np.ndarray, labels: torch.Tensor, batch_size: int, generator: torch.Generator,
                   hflip: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch's (x, y) batches: the order, then each batch's flips, drawn from `generator` as they are needed."""
    for idx in _batches(len(labels), batch_size, generator):
        flips = torch.rand(len(idx), generator=generator) < 0.5 if hflip else None
        yield _to_input(images, idx, flips), labels[idx]


def _to_input(images: np.ndarray, idx: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
    """(B, 3, H, W) normalised float32 in channels_last memory, as the model's weights (see train_trainee)."""
    x = normalize(torch.from_numpy(np.ascontiguousarray(images[idx.numpy()])).permute(0, 3, 1, 2))
    if flips is not None:  # horizontal flip of the chosen samples
        x = torch.where(flips[:, None, None, None], torch.flip(x, dims=[3]), x)
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray,
             batch_size: int) -> tuple[float, float, np.ndarray]:
    """(mean cross-entropy, macro F1, predictions) on plain images, eval mode."""
    model.eval()
    losses, preds = [], []
    for start in range(0, len(images), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(images)))
        logits = model(_to_input(images, idx, None))
        y = torch.from_numpy(labels[idx.numpy()])
        losses.append(nn.functional.cross_entropy(logits, y, reduction="sum").item())
        preds.append(logits.argmax(1).numpy())
    predicted = np.concatenate(preds)
    f1 = f1_score(labels, predicted, labels=list(range(int(labels.max()) + 1)), average="macro", zero_division=0)
    return sum(losses) / len(images), float(f1), predicted


@dataclass(frozen=True)
class TraineeState:
    """A trainee run after `epoch` epochs: everything needed to continue it bit for bit."""

    epoch: int
    step: int
    model: dict[str, torch.Tensor]  # state_dict (weights and batch-norm statistics), copied
    optimizer: dict  # Adam's state_dict, copied
    rng: torch.Tensor  # torch's global RNG state: the classifier's dropout draws from it
    history: tuple[dict, ...]  # one record per epoch so far


EpochCallback = Callable[[dict], None]


def run_epochs(variant: Variant, train: dict[str, np.ndarray], train_labels: np.ndarray, val_images: np.ndarray,
               val_labels: np.ndarray, num_classes: int, cfg: TraineeConfig, start: TraineeState | None = None,
               stop: int | None = None, on_epoch: EpochCallback | None = None) -> tuple[nn.Module, TraineeState]:
    """Train `variant` from `start` (None: a fresh model) up to epoch `stop` (None: cfg.epochs).

    `train` maps "plain" and each method to (N, H, W, 3) uint8 images of the same rows. Returns the
    model and its state after `stop` epochs; continuing that state gives the same weights as one
    uninterrupted run. One record per epoch: epoch, step, the training images used, train loss,
    val loss, val macro F1.
    """
    torch.manual_seed(cfg.seed)
    # channels_last: MobileNetV2's depthwise convs run 1.4x faster so on the CPU (bench/cpu_kernels.py);
    # bf16 made them slower, so the trainee stays float32. (ResNet-10 in channels_last: 12.6 s an epoch, 2 threads.)
    model = build_trainee(num_classes, cfg.model).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    first, step, history = 0, 0, []
    if start is not None:
        model.load_state_dict(start.model)
        optimizer.load_state_dict(copy.deepcopy(start.optimizer))  # Adam would train `start`'s tensors in place
        torch.set_rng_state(start.rng)
        first, step, history = start.epoch, start.step, list(start.history)
    y_all = torch.from_numpy(train_labels.astype(np.int64))
    for epoch in range(first, cfg.epochs if stop is None else stop):
        source = variant.images_for(epoch)
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # the same order for every variant
        # The steps are the training loop's (training.loop.train_one_epoch: float32 on the CPU, the loss summed
        # in float64 as loss.item()s would be); the batches, their order and flips are the trainee's own.
        batches = _epoch_batches(train[source], y_all, cfg.batch_size, generator, cfg.hflip)
        train_loss = train_one_epoch(model, batches, nn.CrossEntropyLoss(), optimizer, CPU, torch.float32)
        step += math.ceil(len(y_all) / cfg.batch_size)
        check_finite(train_loss, epoch, "trainee", "lr")
        val_loss, val_f1, _ = evaluate(model, val_images, val_labels, cfg.batch_size)
        history.append({"epoch": epoch + 1, "step": step, "images": source, "train_loss": train_loss,
                        "val_loss": val_loss, "val_macro_f1": val_f1})
        if on_epoch:
            on_epoch(history[-1])
    state = TraineeState(len(history), step, copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()),
                         torch.get_rng_state(), tuple(history))
    return model, state


def train_trainee(variant: Variant, train: dict[str, np.ndarray], train_labels: np.ndarray, val_images: np.ndarray,
                  val_labels: np.ndarray, num_classes: int, cfg: TraineeConfig) -> tuple[nn.Module, list[dict]]:
    """One whole run of `variant` (see `run_epochs`): the model after the last epoch and its history."""
    model, state = run_epochs(variant, train, train_labels, val_images, val_labels, num_classes, cfg)
    return model, list(state.history)


# --- several variants side by side --------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The trainee's data: train images per kind ("plain" and masking methods), labels, validation images."""

    train: dict[str, np.ndarray]  # kind -> (N, H, W, 3) uint8, the same rows
    train_labels: np.ndarray  # (N,) int
    val_images: np.ndarray  # (M, H, W, 3) uint8, plain
    val_labels: np.ndarray  # (M,) int


def load_inputs(data: Path, masked: Path, methods: list[str]) -> Inputs:
    """prepared FER+(-like) train/val images and the mask stage's `methods` datasets of the same train rows."""
    tables = {}
    for split in ("train", "val"):
        path = data / f"{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run `facetransfer prepare` first)")
        tables[split] = pd.read_csv(path, usecols=["row", "label"])
    images = load_array(data / "images.npy")
    train = {"plain": images[tables["train"]["row"].to_numpy(np.int64)]}
    for method in methods:
        folder = masked / method
        if not (folder / "images.npy").is_file():
            raise FileNotFoundError(f"{folder / 'images.npy'}: not found (run the mask stage first)")
        rows = pd.read_csv(folder / "train.csv", usecols=["source_row"])["source_row"].to_numpy()
        if not np.array_equal(rows, tables["train"]["row"].to_numpy()):
            raise FileNotFoundError(f"{folder}: masked rows do not match {data / 'train.csv'} (rerun the mask stage)")
        train[method] = load_array(folder / "images.npy")
    val = tables["val"]
    return Inputs(train, tables["train"]["label"].to_numpy(), images[val["row"].to_numpy(np.int64)],
                  val["label"].to_numpy())


@dataclass(frozen=True)
class Job:
    """Train `variant` from the state of job `after` (None: from scratch) up to epoch `stop`."""

    name: str  # the variant's name, or "<method>@<switch_epoch>" for a shared prefix
    variant: str
    stop: int
    after: str | None = None


def plan(names: list[str], switch_epoch: int, epochs: int) -> list[Job]:
    """Jobs for `names`: a `<method>` and `<method>-then-plain` pair shares one prefix job of `switch_epoch`
    epochs (both train on the same masked images until then), each other variant is one job."""
    jobs = []
    for name in names:
        method = name.removesuffix("-then-plain")
        if method != "plain" and {method, f"{method}-then-plain"} <= set(names) and switch_epoch < epochs:
            prefix = f"{method}@{switch_epoch}"
            if all(job.name != prefix for job in jobs):
                jobs.append(Job(prefix, method, switch_epoch))
            jobs.append(Job(name, name, epochs, after=prefix))
        else:
            jobs.append(Job(name, name, epochs))
    return jobs


@dataclass(frozen=True)
class TraineeResult:
    name: str
    state: TraineeState
    predicted: np.ndarray  # (M,) validation predictions of the final model


def _progress(name: str, epochs: int) -> EpochCallback:
    def report(record: dict) -> None:  # from worker processes too: stderr is the stage's
        print(f"train-trainee {name}: epoch {record['epoch']}/{epochs} ({record['images']})  "
              f"val macro F1 {record['val_macro_f1']:.3f}  val loss {record['val_loss']:.3f}", file=sys.stderr,
              flush=True)
    return report


def run_job(job: Job, data: Path, masked: Path, num_classes: int, cfg: TraineeConfig,
            start: TraineeState | None) -> TraineeResult:
    """One job, on `cfg.threads` torch threads (in a worker process, or in this one)."""
    variant = variants(cfg.switch_epoch)[job.variant]
    with torch_threads(cfg.threads):
        inputs = load_inputs(data, masked, [variant.masked] if variant.masked else [])
        model, state = run_epochs(variant, inputs.train, inputs.train_labels, inputs.val_images, inputs.val_labels,
                                  num_classes, cfg, start, job.stop, _progress(job.name, job.stop))
        predicted = evaluate(model, inputs.val_images, inputs.val_labels, cfg.batch_size)[2]
    return TraineeResult(job.name, state, predicted)


def train_variants(names: list[str], data: Path, masked: Path, num_classes: int, cfg: TraineeConfig, workers: int,
                   on_done: Callable[[TraineeResult], None] | None = None) -> dict[str, TraineeResult]:
    """Train the variants `names`, up to `workers` side by side (fresh worker processes; 1: in this process).

    Returns variant name -> result (prefix jobs are not returned). `on_done` is called in this
    process as each variant finishes, in the order they finish.
    """
    jobs = plan(names, cfg.switch_epoch, cfg.epochs)
    results: dict[str, TraineeResult] = {}

    def finished(result: TraineeResult) -> None:
        results[result.name] = result
        if on_done and result.name in names:
            on_done(result)

    if workers == 1:
        for job in jobs:
            finished(run_job(job, data, masked, num_classes, cfg, results[job.after].state if job.after else None))
    else:
        # spawn, not fork: the parent's torch (and its OpenMP pool) is not fork-safe once used.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            pending: dict[Future, Job] = {}
            waiting = list(jobs)
            while waiting or pending:
                for job in [j for j in waiting if j.after is None or j.after in results]:
                    waiting.remove(job)
                    start = results[job.after].state if job.after else None
                    pending[pool.submit(run_job, job, data, masked, num_classes, cfg, start)] = job
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    del pending[future]
                    finished(future.result())
    return {name: results[name] for name in names}


def curve_summary(history: list[dict], target_f1: float) -> dict:
    """Final and best val macro F1, steps to reach `target_f1` (None if never), area under the F1-steps curve
    divided by the steps (the mean F1 over training; the trapezoid from step 0 at F1 0)."""
    steps = np.array([0] + [r["step"] for r in history], dtype=np.float64)
    f1 = np.array([0.0] + [r["val_macro_f1"] for r in history])
    reached = [r["step"] for r in history if r["val_macro_f1"] >= target_f1]
    return {"final_f1": float(f1[-1]), "best_f1": float(f1.max()), "steps_to_target": reached[0] if reached else None,
            "target_f1": target_f1, "auc": float(np.trapezoid(f1, steps) / steps[-1]) if steps[-1] > 0 else 0.0}
