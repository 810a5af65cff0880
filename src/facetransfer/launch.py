"""Which process this is when torchrun starts several, and how a training command reruns itself under torchrun.

torchrun starts `nproc_per_node` copies of a command per machine and tells each, in its environment, its
RANK (0..WORLD_SIZE-1 over all machines), LOCAL_RANK (its GPU on this machine) and WORLD_SIZE. Everything
here reads only that environment (no torch): tracking and the stage commands ask `is_main()` before they
write a file or log to MLflow, so that one process, rank 0, writes everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from facetransfer.config import ConfigError, DistributedConfig

# Set in every process torchrun starts; its absence means this command was started by hand (or by DVC).
WORKER_ENV = "LOCAL_RANK"
# What a user or DVC sends to stop a command (Ctrl-C, `kill`, a closed terminal): passed on to torchrun.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Process:
    rank: int = 0  # over all machines
    world_size: int = 1
    local_rank: int = 0  # on this machine: the GPU it uses

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current() -> Process:
    """This process, from torchrun's environment (one process, rank 0, without it)."""
    try:
        return Process(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get(WORKER_ENV, 0)))
    except ValueError:
        found = ", ".join(f"{key}={os.environ.get(key)!r}" for key in ("RANK", "WORLD_SIZE", WORKER_ENV))
        raise ConfigError(f"{found}: expected integers (torchrun sets them)") from None


def is_main() -> bool:
    """True in the one process that writes files and logs (rank 0, or the only process)."""
    return current().is_main


def torchrun_command(cfg: DistributedConfig, argv: list[str]) -> list[str] | None:
    """The torchrun command line that runs `facetransfer <argv>` in cfg.nproc_per_node processes per machine on
    cfg.nnodes machines; None when one process is asked for or this already is a torchrun worker."""
    if WORKER_ENV in os.environ or (cfg.nproc_per_node == 1 and cfg.nnodes == 1):
        return None
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={cfg.nproc_per_node}"]
    if cfg.nnodes == 1:
        command.append("--standalone")  # a local rendezvous on a free port
    else:  # torchrun's static rendezvous: machine PET_NODE_RANK=0 (its environment) holds rank 0, the writer
        command += [f"--nnodes={cfg.nnodes}", f"--rdzv-endpoint={cfg.rdzv_endpoint}"]
    return command + ["-m", "facetransfer.cli", *argv]


def relaunch_under_torchrun(cfg: DistributedConfig) -> None:
    """Run this same command (sys.argv) under torchrun when the params ask for several processes, and exit
    with torchrun's status; return (and run in this process) otherwise."""
    command = torchrun_command(cfg, sys.argv[1:])
    if command is None:
        return
    print(f"facetransfer: {cfg.nproc_per_node} processes per machine on {cfg.nnodes} machine(s): "
          + " ".join(command[2:]), file=sys.stderr, flush=True)
    sys.stdout.flush()
    raise SystemExit(run_passing_signals_on(command))


def run_passing_signals_on(command: list[str]) -> int:
    """Run `command` as a child until it exits and return its exit status (128 + N if signal N killed it, as a
    shell reports it); SIGINT, SIGTERM and SIGHUP sent to this process are passed on to it.

    A child, not os.execv: under `facetransfer warm` this process is a fork of the warm server whose socket
    (close-on-exec) reports the exit code to DVC's client. An exec closed it, the client reported "died in
    the warm server without an exit code" and DVC failed the stage while torchrun went on training.
    """
    child = subprocess.Popen(command)

    def pass_on(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in FORWARDED_SIGNALS}
    try:
        status = child.wait()  # a handled signal does not end the wait (PEP 475): torchrun decides
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - status if status < 0 else status
