"""`facetransfer warm`: stages forked from a preloaded server behave exactly as cold processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from facetransfer.warm import ENV, run_through_server
from tests.conftest import SMOKE_PARAMS

BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return env | extra


def _sh(script: str, cwd: Path, warm: bool, **extra: str) -> subprocess.CompletedProcess:
    command = ["facetransfer", "warm", "--", "bash", "-c", script] if warm else ["bash", "-c", script]
    return subprocess.run(command, cwd=cwd, env=_env(**extra), capture_output=True, text=True)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_output_exit_code_cwd_and_environment_are_the_clients(tmp_path):
    # Every call goes through the same server: a usage error, then a command that reads the environment
    # (MLFLOW_TRACKING_URI, a path relative to the working directory) and creates that store there, run
    # from a folder made after `warm` started (the server's own working directory is the parent).
    # Last, an environment too large for one socket message: the client runs that command cold.
    script = ("mkdir here && cd here && facetransfer forgetting --bogus; echo \"exit $?\"; "
              "facetransfer track-init; echo \"exit $?\"; ls; "
              "X=$(python3 -c \"print('x' * 100000)\"); A=$X B=$X C=$X facetransfer track-init; "
              "echo \"big env exit $?\"; exit 3")
    runs = {}
    for warm in (False, True):
        cwd = tmp_path / ("warm" if warm else "cold")
        cwd.mkdir()
        runs[warm] = _sh(script, cwd, warm=warm, MLFLOW_TRACKING_URI="sqlite:///store.db")
    assert "big env exit 0" in runs[True].stdout and "Traceback" not in runs[True].stderr
    assert "exit 2" in runs[True].stdout and "MLflow store ready: sqlite:///store.db" in runs[True].stdout
    assert "store.db" in runs[True].stdout.splitlines()  # written in the client's working directory
    assert runs[True].stdout == runs[False].stdout
    assert runs[True].returncode == 3  # `warm` exits with its command's code
    usage = [line for line in runs[True].stderr.splitlines() if "Usage:" in line]
    assert usage == ["Usage: facetransfer forgetting [OPTIONS]"]
    assert usage == [line for line in runs[False].stderr.splitlines() if "Usage:" in line]
    assert "No such option: --bogus" in runs[True].stderr


def test_a_stage_writes_the_same_bytes_warm_and_cold(tmp_path):
    """synth renders with worker processes: subprocesses of a forked child work, and nothing differs."""
    script = f"facetransfer synth --smoke --datasets ckplus --params {SMOKE_PARAMS} --out \"$OUT\""
    assert _sh(script, tmp_path, warm=False, OUT=str(tmp_path / "cold")).returncode == 0
    done = _sh(script, tmp_path, warm=True, OUT=str(tmp_path / "warm"))
    assert done.returncode == 0, done.stderr
    cold, warm = _tree(tmp_path / "cold"), _tree(tmp_path / "warm")
    assert len(cold) > 10 and warm == cold


def test_no_server_listening_runs_the_usual_way(tmp_path):
    done = subprocess.run(["facetransfer", "track-init"], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(**{ENV: str(tmp_path / "nobody-here")}))
    assert done.returncode == 0 and "MLflow store ready" in done.stdout


def test_a_server_that_hangs_up_is_a_failure_with_a_reason(tmp_path, capsys):
    address = str(tmp_path / "socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(address)
    server.listen(1)

    def hang_up() -> None:
        conn, _ = server.accept()
        socket.recv_fds(conn, 1 << 20, 3)
        conn.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    assert run_through_server(address, ["facetransfer", "--help"]) == 1
    thread.join()
    server.close()
    assert "closed the connection before the command started" in capsys.readouterr().err


def test_warm_without_a_command_is_a_usage_error(tmp_path):
    done = subprocess.run(["facetransfer", "warm"], cwd=tmp_path, capture_output=True, text=True, env=_env())
    assert done.returncode == 2 and "give the command to run" in done.stderr


def test_a_killed_warm_leaves_no_server_behind(tmp_path):
    """SIGKILL skips warm's cleanup: the server notices its parent is gone and exits within seconds."""
    import signal
    import time

    warm = subprocess.Popen(["facetransfer", "warm", "--", "sleep", "60"], cwd=tmp_path, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (servers := _servers_of(warm.pid)):
        assert time.monotonic() < deadline and warm.poll() is None
        time.sleep(0.2)
    warm.send_signal(signal.SIGKILL)
    warm.wait()
    deadline = time.monotonic() + 60  # killed while preloading: it notices once it serves
    while any(_running(pid) for pid in servers):
        assert time.monotonic() < deadline, "the warm server outlived warm"
        time.sleep(0.2)
    subprocess.run(["pkill", "-f", "^sleep 60$"], check=False)


def _servers_of(parent: int) -> list[int]:
    """pids of `python -m facetransfer.warm` processes whose parent is `parent`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"facetransfer.warm" in cmdline:
            found.append(int(proc.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan stays in /proc until whoever adopted it reaps it)."""
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False



def test_an_uncaught_error_in_a_command_exits_1_with_its_traceback(monkeypatch, capsys):
    # As a cold `facetransfer` process would: traceback on stderr, exit status 1 (sent back to the client).
    import facetransfer.cli.app  # noqa: F401 (the module; `facetransfer.cli.app` the attribute is the Typer app)
    from facetransfer import warm

    app_module = sys.modules["facetransfer.cli.app"]

    def broken(*args, **kwargs):
        raise TypeError("a bug in a stage")

    monkeypatch.setattr(app_module, "app", broken)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    assert warm._run_cli(["facetransfer", "report"]) == 1
    assert "TypeError: a bug in a stage" in capsys.readouterr().err
