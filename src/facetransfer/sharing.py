"""Push everything a teammate needs to skip a training: the workspace's outputs, DVC's run cache, and the
outputs of runs that only the run cache knows (queued experiments' seeds and variants).

Why not `dvc push --run-cache` alone: in DVC 3.67 it sends the run-cache *records* (which command, deps and
params gave which output hashes) but only the outputs that this workspace's dvc.lock names. A stage that
ran in a queued experiment (`dvc exp run --queue`, docs/scaling.md) left its outputs in the local cache
and its record in the run cache, but not in dvc.lock: a teammate's `dvc repro --pull` then finds the
record, cannot fetch its outputs and trains the model again. `push` below also sends the outputs of every
record, through DVC's own API (StageCache.get_used_objs, DataCloud.push): no maintained command does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shared:
    outputs: int  # files of this workspace's outputs sent (0 when the remote had them all)
    records: int  # run-cache records in this repository (all sent: DVC overwrites them)
    run_outputs: int  # files of run-cache outputs sent that the workspace's outputs did not include


def push(root: Path, remote: str | None = None, jobs: int | None = None) -> Shared:
    """Push the workspace's outputs, every run-cache record and every record's outputs to `remote` (None: the
    default remote). Raises DvcException (no remote configured, an unreachable one, a missing cache file)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        outputs = repo.push(remote=remote, jobs=jobs)
        records = repo.stage_cache.push(remote)  # [(stage key, record hash)]: all of them (DVC forces)
        used = repo.stage_cache.get_used_objs(records, remote=remote, jobs=jobs)
        objects = set().union(*used.values()) if used else set()
        sent = repo.cloud.push(objects, jobs=jobs, remote=remote) if objects else None
    return Shared(outputs=outputs, records=len(records), run_outputs=len(sent.transferred) if sent else 0)
