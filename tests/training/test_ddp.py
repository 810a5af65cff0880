"""Data-parallel training (issue 20): each process's share of an epoch, the torchrun command, one writer, and
2-process runs through `torchrun --standalone` on the CPU (gloo) against the one-process run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError
from torch.utils.data import DataLoader, Dataset

from facetransfer import launch
from facetransfer.config import ConfigError, DistributedConfig
from facetransfer.training import ddp
from facetransfer.training.loop import seed_epoch
from facetransfer.warm import ENV as WARM_ENV
from tests.conftest import SMOKE_PARAMS, write_prepared


class Numbered(Dataset):
    """What a loader over images yields, reduced to each sample's index (and a label)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return i, i % 3


def test_epoch_batches_are_the_batches_a_one_process_run_loads():
    n, batch = 37, 8
    one_process = [x.tolist() for x, _ in DataLoader(Numbered(n), batch_size=batch, shuffle=True,
                                                     generator=seed_epoch(2022, 3))]
    assert ddp.epoch_batches(n, batch, seed_epoch(2022, 3)) == one_process
    assert ddp.epoch_batches(n, batch, seed_epoch(2022, 4)) != one_process  # another epoch, another order


def test_the_ranks_shares_put_together_are_every_batch_in_order():
    batches = [[5, 1, 9, 3, 0, 7, 2, 8], [6, 4, 10], [11]]  # a last batch smaller than the 2 processes
    shares = [ddp.RankShare(batches, rank, 2) for rank in (0, 1)]
    assert [a + b for a, b in zip(*(list(s) for s in shares), strict=True)] == batches[:2]
    assert [len(s) for s in shares] == [2, 2] and shares[0].samples + shares[1].samples == 11


def test_a_batch_size_the_processes_cannot_share_evenly_is_refused():
    ddp.check_batch_size(32, launch.Process(0, 2, 0), "train_emotion")
    with pytest.raises(ConfigError, match=r"train_emotion.batch_size: 30 images .* multiple of 4"):
        ddp.check_batch_size(30, launch.Process(0, 4, 0), "train_emotion")


def test_the_torchrun_command(monkeypatch):
    monkeypatch.delenv(launch.WORKER_ENV, raising=False)
    assert launch.torchrun_command(DistributedConfig(), ["train-emotion"]) is None
    command = launch.torchrun_command(DistributedConfig(nproc_per_node=2), ["train-emotion", "--out", "m"])
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in command and "--nproc-per-node=2" in command
    assert command[-5:] == ["-m", "facetransfer.cli", "train-emotion", "--out", "m"]
    two = launch.torchrun_command(DistributedConfig(nproc_per_node=4, nnodes=2, rdzv_endpoint="node1:29400"), [])
    assert "--nnodes=2" in two and "--rdzv-endpoint=node1:29400" in two and "--standalone" not in two
    assert not any(arg.startswith("--node-rank") for arg in two)  # each machine's PET_NODE_RANK says it
    monkeypatch.setenv(launch.WORKER_ENV, "1")  # already a torchrun worker: run here
    assert launch.torchrun_command(DistributedConfig(nproc_per_node=2), []) is None
    with pytest.raises(ValidationError, match="rdzv_endpoint must be host:port"):
        DistributedConfig(nnodes=2)


def test_only_rank_0_logs(monkeypatch, tmp_path):
    from facetransfer import tracking

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with tracking.start_run("facetransfer", "x", params={"a": 1}) as run:
        run.log_metrics({"loss": 1.0})
        run.log_dict({"b": 2}, "b.json")
    assert run.run_id == "" and not (tmp_path / "mlflow.db").exists()


# --- 2 processes through torchrun, on the CPU -----------------------------------------------------------------

# No batch norm, no dropout, float32, an unweighted loss: then a DDP step is the one-process step up to float
# summation order, so the two runs must end with the same weights to float tolerance. (With batch norm each
# process normalises its half batch on its own statistics, dropout draws per process, a class-weighted loss
# normalises by each half's weights, and bf16 rounds coarser: close, not equal; docs/scaling.md.)
EXACT = {"width": 0.0625, "batch_norm": False, "dropout": 0.0}


def _params(tmp: Path, nproc: int = 1, epochs: int = 2) -> Path:
    """Smoke params made exact (EXACT, float32, unweighted losses, 1 thread) for the three training stages."""
    params = yaml.safe_load(SMOKE_PARAMS.read_text())
    exact = {"epochs": epochs, "batch_size": 16, "threads": 1, "device": "cpu", "loader_workers": 0,
             "precision": "float32", "loss": {"gamma": 2.0, "class_balance_beta": 0.0}}
    params["train_emotion"] |= exact | {"model": EXACT, "patience": 0}
    params["train_pain"] |= exact  # the model (no batch norm, no dropout) comes from the source
    params["retrain_emotion"] |= exact  # flip-only augmentation: the cached-feature head
    params["distributed"]["nproc_per_node"] = nproc
    path = tmp / f"params_{nproc}_{epochs}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _train(tmp: Path, data: Path, params: Path, name: str, torchrun: int | None = None, wait: bool = True,
           stage: str = "train-emotion", extra: tuple[str, ...] = (), warm: bool = False,
           env_extra: dict[str, str] | None = None):
    """`facetransfer <stage>` in a subprocess (under torchrun with `torchrun` processes if given; through the
    warm server of `facetransfer warm`, as `make repro` runs it, if `warm`)."""
    args = [stage, "--data", str(data), *extra, "--out", str(tmp / name / "model"), "--metrics",
            str(tmp / name / "metrics.json"), "--plots", str(tmp / name / "plots"), "--run-id",
            str(tmp / name / "run.json"), "--checkpoint", str(tmp / name / "checkpoint.pt"), "--params", str(params)]
    command = [sys.executable, "-m", "facetransfer.cli", *(["warm", "--", "facetransfer"] if warm else []), *args]
    if torchrun:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", launch.WORKER_ENV, WARM_ENV)}
    env |= {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "OMP_NUM_THREADS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", **(env_extra or {})}
    process = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    if not wait:
        return process
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return out


def _weights(folder: Path) -> dict:
    return torch.load(folder / "model" / "model.pt", weights_only=True)["state_dict"]


def _assert_same_weights(folder: Path, other: Path) -> None:
    """Equal to float summation order: each step's gradient is the sum of the processes' slices."""
    one, two = _weights(folder), _weights(other)
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], rtol=1e-4, atol=1e-6), key


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same training in one process and in two (torchrun), the data tiny and random."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = write_prepared(tmp / "data", seed=0)
    _train(tmp, data, _params(tmp), "one")
    _train(tmp, data, _params(tmp), "two", torchrun=2)
    return tmp


def test_two_processes_end_with_the_one_process_weights(runs):
    _assert_same_weights(runs / "one", runs / "two")  # the gradients of 8 + 8 images summed in two processes
    metrics = [json.loads((runs / n / "metrics.json").read_text()) for n in ("one", "two")]
    assert metrics[0]["val_macro_recall"] == pytest.approx(metrics[1]["val_macro_recall"], abs=1e-9)


def test_two_processes_leave_one_set_of_outputs_and_one_mlflow_run(runs):
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    names = [r.info.run_name for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert sorted(names) == ["train-emotion", "train-emotion"]  # one per training: "one" and "two"
    run_id = json.loads((runs / "two" / "run.json").read_text())["run_id"]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert not (runs / "two" / "checkpoint.pt").exists()  # finished: nothing left to resume


def test_the_params_relaunch_the_command_under_torchrun(runs):
    out = _train(runs, runs / "data", _params(runs, nproc=2), "relaunched")
    assert "2 processes per machine" in out
    _assert_same_weights(runs / "one", runs / "relaunched")


def test_the_relaunch_reports_to_dvc_through_the_warm_server(runs):
    """Under `facetransfer warm` (how `make repro` runs the stages) the relaunching command is a fork of the
    warm server: its exit status must reach the client only once torchrun has finished."""
    out = _train(runs, runs / "data", _params(runs, nproc=2), "warm", warm=True)
    assert "2 processes per machine" in out and "without an exit code" not in out
    _assert_same_weights(runs / "one", runs / "warm")
    assert (runs / "warm" / "metrics.json").exists()  # written before `warm` returned


def test_two_machines_train_as_one_and_only_machine_0_writes(runs):
    """Two torchrun launchers of one process each, as two machines would run them (nnodes 2, a static
    rendezvous, PET_NODE_RANK 0 and 1), here on one host: the 2-process weights, written by machine 0 alone."""
    import socket

    with socket.socket() as probe:  # a free port for machine 0's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = yaml.safe_load(_params(runs).read_text())
    params["distributed"] |= {"nproc_per_node": 1, "nnodes": 2, "rdzv_endpoint": f"127.0.0.1:{port}"}
    path = runs / "params_two_machines.yaml"
    path.write_text(yaml.safe_dump(params))
    machines = [_train(runs, runs / "data", path, f"machine{node}", wait=False,
                       env_extra={"PET_NODE_RANK": str(node)})  # what each machine's environment says
                for node in (0, 1)]
    outs = [m.communicate(timeout=600)[0] for m in machines]
    assert [m.returncode for m in machines] == [0, 0], outs
    _assert_same_weights(runs / "two", runs / "machine0")
    assert not (runs / "machine1").exists()  # machine 1 trains and writes nothing


@pytest.fixture(scope="module")
def pain_runs(runs):
    """FreezeB2 fine-tuned from the one-process source model, in one process and in two; then the emotion
    head retrained on each (cached features: the frozen conv runs once per image and mirror)."""
    pain = write_prepared(runs / "pain_data", seed=1, n_classes=2)
    source = ("--source", str(runs / "one" / "model" / "model.pt"), "--freeze-blocks", "2")
    for name, torchrun in (("pain_one", None), ("pain_two", 2)):
        _train(runs, pain, _params(runs), name, torchrun, stage="train-pain", extra=source)
        head_source = ("--source", str(runs / name / "model" / "model.pt"))
        _train(runs, runs / "data", _params(runs), f"head_{name}", torchrun, stage="retrain-emotion",
               extra=head_source)
    return runs


def test_train_pain_in_two_processes_ends_with_the_one_process_weights(pain_runs):
    _assert_same_weights(pain_runs / "pain_one", pain_runs / "pain_two")
    frozen = [k for k in _weights(pain_runs / "pain_two") if k.startswith("features.0.")]
    assert frozen  # block 1's conv: frozen, so equal to the source's in both
    source = _weights(pain_runs / "one")
    assert all(torch.equal(source[k], _weights(pain_runs / "pain_two")[k]) for k in frozen)


def test_retrain_emotion_in_two_processes_ends_with_the_one_process_head(pain_runs):
    _assert_same_weights(pain_runs / "head_pain_one", pain_runs / "head_pain_two")


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_weights(runs):
    params = _params(runs, epochs=4)
    _train(runs, runs / "data", params, "straight", torchrun=2)
    process = _train(runs, runs / "data", params, "killed", torchrun=2, wait=False)
    checkpoint = runs / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # torchrun and both workers, mid-run
    process.wait()
    assert torch.load(checkpoint, weights_only=True)["epoch"] < 4
    _train(runs, runs / "data", params, "killed", torchrun=2)
    straight, resumed = _weights(runs / "straight"), _weights(runs / "killed")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)  # gloo's 2-process sums are deterministic
