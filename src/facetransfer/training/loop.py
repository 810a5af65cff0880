"""One training loop for every stage: fit with per-epoch checkpoints and exact resume, predict.

Determinism: every epoch reseeds torch from (seed, epoch) and shuffles with
its own generator, and each sample's augmentation draws from (seed, epoch,
index) (data.sample_seed), so epoch e draws the same random numbers whether the
run started at epoch 0 or resumed at e, and whatever the loader's worker count.
That makes a killed-and-resumed run end with the same weights as an
uninterrupted one. The torch thread count is a param too (`torch_threads`): on
the CPU it changes how reductions are split, hence the weights.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import recall_score
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, Dataset, Subset

from facetransfer import launch
from facetransfer.config import ConfigError, Precision, TrainingDiverged, TrainSettings
from facetransfer.launch import Process
from facetransfer.training import ddp
from facetransfer.training.data import normalize

EpochCallback = Callable[[dict], None]
ONE_PROCESS = Process()  # not started by torchrun


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int  # 0-based
    best_score: float  # validation macro recall of the best epoch
    history: list[dict] = field(default_factory=list)

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested, but torch sees no CUDA device on this machine; expected auto or cpu")
    return torch.device(name)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run on `threads` torch CPU threads, then restore the previous count.

    Part of what defines a CPU training run's numbers: the weight-gradient and batch-norm reductions are
    split over the threads, so 30 bf16 VGG16 steps end with other weights on 1 thread than on 2 (forward
    passes and input gradients come out the same bit for bit). A count fixed by the params gives the
    same metrics on any machine, where torch's default (one thread per core) would not. More threads
    than cores give the same numbers, slowly: a thread waiting for a core stalls the others at every
    step (a 2-thread VGG step beside one busy core: 0.31x its speed alone; 1 thread: unchanged;
    bench/cpu_kernels.py --part threads).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads > cores:
        warnings.warn(f"training on {threads} torch threads with {cores} CPU core(s) available: the numbers are "
                      f"the same as on a machine with {threads}, but training is slower (set `threads` to change "
                      f"both)", stacklevel=3)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_epoch(seed: int, epoch: int) -> torch.Generator:
    """Reseed torch's global RNG (augmentation, dropout) for this epoch; return the shuffle generator."""
    torch.manual_seed(seed * 100_003 + epoch)
    return torch.Generator().manual_seed(seed * 100_019 + epoch)


def macro_recall(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    return float(recall_score(labels, predicted, labels=list(range(n_classes)), average="macro", zero_division=0))


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 matrix instructions (AMX or AVX512-BF16), where oneDNN runs bf16 convs fast.

    torch exposes the checks only as private helpers of torch.cpu; without them, assume no.
    """
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def training_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    """The dtype of training steps: bfloat16 (autocast) or float32; see config.Precision for `auto`."""
    if precision == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        return torch.bfloat16 if native else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def _autocast(device: torch.device, dtype: torch.dtype | None = None):
    """Autocast to `dtype` (None: bf16 on CUDA, the paper profile's inference; float32 on the CPU)."""
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def loader_workers(setting: int | str, device: torch.device) -> int:
    """DataLoader workers for `TrainSettings.loader_workers`."""
    if setting != "auto":
        return int(setting)
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device) -> np.ndarray:
    """Class probabilities (N, C) of `dataset` in order, in eval mode."""
    model.eval()
    out = []
    for x, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        with _autocast(device):
            logits = model(_to_device(x, device))
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy()


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to the device; uint8 image batches are normalised there (see data.normalize)."""
    x = x.to(device, non_blocking=device.type == "cuda")
    if x.dtype == torch.uint8:
        x = normalize(x)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, dtype: torch.dtype | None = None) -> float:
    """One pass over `loader` with steps in `dtype` (bfloat16: autocast; None: the device's default, bf16 on
    CUDA and float32 on the CPU, as `_autocast`); returns the mean training loss.

    Nothing in the loop waits for the device: labels travel like images (non-blocking from
    pinned memory) and the loss is summed on the device, read once at the end. A `.item()`
    or a blocking copy per step would make the host wait for every step before queueing
    the next (bench/gpu_paper_profile.py measures the difference). The sum is float64, as
    Python's float was, so the returned number is the same as summing `loss.item()`s.
    """
    model.train()  # VGG16Net.train keeps frozen blocks (and their batch norm) in eval mode
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for x, y in loader:
        x, y = _to_device(x, device), _to_device(y, device)
        with _autocast(device, dtype):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * len(y)
        count += len(y)
    return total.item() / max(count, 1)


def run_epoch(model: nn.Module, train_set: Dataset, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, seed: int,
              epoch: int, batch_size: int, device: torch.device, dtype: torch.dtype | None, section: str,
              lr_key: str = "optimizer.lr", workers: int = 0, pin_memory: bool = False,
              process: Process | None = None) -> float:
    """Epoch `epoch` (0-based) of a seeded run: torch reseeded and the data shuffled from (seed, epoch), each
    sample augmented from (seed, epoch, index); one `train_one_epoch`; a non-finite loss stops the run (naming
    `section`.`lr_key`). Returns the mean training loss. `fit` and the attention study train through it.
    Under torchrun (`process` distributed, `model` wrapped in DDP) this process trains on its share of every
    batch of the same shuffle (training.ddp) and the loss is the mean over every process's images."""
    generator = seed_epoch(seed, epoch)
    if hasattr(train_set, "set_epoch"):
        train_set.set_epoch(epoch)  # before the loader forks its workers
    if process is not None and process.distributed:
        share = ddp.RankShare(ddp.epoch_batches(len(train_set), batch_size, generator), process.rank,
                              process.world_size)
        loader = DataLoader(train_set, batch_sampler=share, generator=generator, num_workers=workers,
                            pin_memory=pin_memory)
        train_loss = ddp.mean_over_processes(train_one_epoch(model, loader, loss_fn, optimizer, device, dtype),
                                             share.samples, device)
    else:
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator, num_workers=workers,
                            pin_memory=pin_memory)
        train_loss = train_one_epoch(model, loader, loss_fn, optimizer, device, dtype)
    check_finite(train_loss, epoch, section, lr_key)
    return train_loss


def check_finite(train_loss: float, epoch: int, section: str, lr_key: str = "optimizer.lr") -> None:
    """Stop on a non-finite mean training loss of `epoch` (0-based): NaN weights would give a model whose
    metrics look finished. The error names the params `section` and its learning-rate key to lower."""
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"{section}: training diverged in epoch {epoch + 1} (mean training loss {train_loss}); "
                               f"expected a finite loss: lower {section}.{lr_key}")


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.SGD:
    """SGD over the trainable parameters only (frozen blocks get no momentum or decay)."""
    params = [p for p in model.parameters() if p.requires_grad]
    o = settings.optimizer
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings) -> ReduceLROnPlateau | None:
    """Cut the learning rate by optimizer.lr_decay after lr_patience epochs without a better validation score.

    threshold 0 in absolute mode: "better" is strictly greater, the rule that picks the best epoch.
    None with lr_decay 1.0 (a constant learning rate; torch refuses a factor of 1).
    """
    o = settings.optimizer
    if o.lr_decay == 1.0:
        return None
    return ReduceLROnPlateau(optimizer, mode="max", factor=o.lr_decay, patience=o.lr_patience, threshold=0.0,
                             threshold_mode="abs")


def fingerprint(settings: TrainSettings, extra: dict | None = None) -> str:
    """Hash of everything that defines a run, so a checkpoint of another config is never resumed.

    It holds the resolved training dtype (`precision: auto` differs between machines) and leaves out
    the loader's worker count, which does not change results.
    """
    dtype = training_dtype(settings.precision, resolve_device(settings.device))
    text = json.dumps({"settings": settings.model_dump(mode="json", exclude={"loader_workers"}),
                       "dtype": str(dtype), "extra": extra or {}}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit(model: nn.Module, train_set: Dataset, val_set: Dataset, val_labels: np.ndarray, loss_fn: nn.Module,
        settings: TrainSettings, n_classes: int, checkpoint: Path | None = None, run_key: str = "",
        on_epoch: EpochCallback | None = None, section: str = "training") -> FitResult:
    """Train for settings.epochs, or until `settings.patience` epochs pass without a better validation
    macro recall; keep the epoch with the best one.

    With `checkpoint`, state is saved after every epoch (temp file, then
    rename) and a run with the same `run_key` resumes from it (and stops where it would have).
    Trains on `settings.threads` torch threads (see `torch_threads`). A non-finite mean training loss
    raises `TrainingDiverged` naming the epoch and the params `section` the settings came from.
    """
    with torch_threads(settings.threads):
        return _fit(model, train_set, val_set, val_labels, loss_fn, settings, n_classes, checkpoint, run_key, on_epoch,
                    section)


def _fit(model: nn.Module, train_set: Dataset, val_set: Dataset, val_labels: np.ndarray, loss_fn: nn.Module,
         settings: TrainSettings, n_classes: int, checkpoint: Path | None, run_key: str,
         on_epoch: EpochCallback | None, section: str) -> FitResult:
    process = launch.current()
    device = resolve_device(settings.device)
    if process.distributed:
        ddp.check_batch_size(settings.batch_size, process, section)
        device = ddp.ensure_process_group(process, device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings)
    dtype, workers = training_dtype(settings.precision, device), loader_workers(settings.loader_workers, device)
    state = _resume(checkpoint, run_key, model, optimizer, scheduler, process)
    stepped = ddp.wrap(model, device) if process.distributed else model  # the model the steps go through
    for epoch in range(state["epoch"], settings.epochs):
        if plateaued(state["epoch"], state["best_epoch"], settings.patience):
            break
        start = time.perf_counter()
        train_loss = run_epoch(stepped, train_set, loss_fn, optimizer, settings.seed, epoch, settings.batch_size,
                               device, dtype, section, workers=workers, pin_memory=device.type == "cuda",
                               process=process)
        val_pred = _validate(model, val_set, settings.batch_size, device, process).argmax(1)
        score = macro_recall(val_labels, val_pred, n_classes)
        if scheduler is not None:
            scheduler.step(score)
        if state["best_epoch"] < 0 or score > state["best_score"]:
            state.update(best_state=_cpu_copy(model.state_dict()), best_epoch=epoch, best_score=score)
        record = {"epoch": epoch + 1, "train_loss": train_loss, "val_macro_recall": score,
                  "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start}
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if checkpoint is not None and process.is_main:  # one writer
            _save(checkpoint, run_key, model, optimizer, scheduler, state)
        if process.distributed:
            ddp.barrier()  # no process runs ahead of the checkpoint a resumed run would start from
        if on_epoch and process.is_main:
            on_epoch(record)
    return FitResult(state["best_state"], state["best_epoch"], state["best_score"], state["history"])


def _validate(model: nn.Module, val_set: Dataset, batch_size: int, device: torch.device,
              process: Process) -> np.ndarray:
    """Class probabilities (N, C) of the validation set; under torchrun each process predicts every w-th image
    with rank 0's batch-norm statistics and all get every prediction (so they agree on the best epoch)."""
    if not process.distributed:
        return predict(model, val_set, batch_size, device)
    ddp.sync_buffers(model)
    rows = np.arange(process.rank, len(val_set), process.world_size)
    return ddp.gather_rows(predict(model, Subset(val_set, rows.tolist()), batch_size, device), rows, len(val_set))


def plateaued(epochs_done: int, best_epoch: int, patience: int) -> bool:
    """True when `patience` (> 0) epochs have passed since the best one (0-based) without a better score."""
    return patience > 0 and best_epoch >= 0 and epochs_done - 1 - best_epoch >= patience


def _cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}


def _fresh_state() -> dict:
    return {"epoch": 0, "best_state": {}, "best_epoch": -1, "best_score": -1.0, "history": []}


def _resume(checkpoint: Path | None, run_key: str, model: nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: ReduceLROnPlateau | None, process: Process = ONE_PROCESS) -> dict:
    """The state to go on from: the checkpoint's (this run_key's), or a fresh one. Under torchrun rank 0 reads
    the file and every process gets its contents (the machines need not share a disk)."""
    saved = _read_checkpoint(checkpoint, run_key) if process.is_main else None
    if process.distributed:
        saved = ddp.from_main(saved)
    if saved is None:
        return _fresh_state()
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(saved["scheduler"])
    state = {k: saved[k] for k in _fresh_state()}
    state["history"] = [dict(r) for r in state["history"]]
    return state


def _read_checkpoint(checkpoint: Path | None, run_key: str) -> dict | None:
    """The checkpoint of this run_key; None when there is none, it is unreadable (moved aside) or it is another
    configuration's."""
    if checkpoint is None or not checkpoint.is_file():
        return None
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types on a truncated file: all mean "cannot resume"
        _move_aside(checkpoint, err)
        return None
    if not isinstance(saved, dict) or saved.get("run_key") != run_key:
        return None  # a checkpoint of another configuration: start over
    return saved


def _move_aside(checkpoint: Path, err: Exception) -> None:
    """An unreadable checkpoint (a disk full mid-write, a copy cut short) is kept as <name>.corrupt for a look,
    said on stderr, and training starts over: losing a few epochs beats failing or resuming garbage."""
    aside = checkpoint.with_name(checkpoint.name + ".corrupt")
    checkpoint.replace(aside)
    print(f"warning: {checkpoint}: unreadable checkpoint ({type(err).__name__}); moved to {aside}, training starts "
          "over", file=sys.stderr, flush=True)


def _save(checkpoint: Path, run_key: str, model: nn.Module, optimizer: torch.optim.Optimizer,
          scheduler: ReduceLROnPlateau | None, state: dict) -> None:
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint.with_name(checkpoint.name + ".partial")
    payload = {"run_key": run_key, "model": _cpu_copy(model.state_dict()), "optimizer": optimizer.state_dict(),
               "scheduler": None if scheduler is None else scheduler.state_dict(),
               "rng_cpu": torch.get_rng_state(), **copy.copy(state)}
    torch.save(payload, tmp)
    tmp.replace(checkpoint)
