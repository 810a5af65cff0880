"""A warm start for stage commands: fork each `facetransfer <stage>` from a process that has already
imported torch, torchvision, sklearn, mlflow and the project.

Why: every DVC stage is a new process, and on a 2-core machine these imports take ~11 s
(torch 3 s, torchvision 3 s, sklearn and mlflow 5 s), more than the smoke profile's whole
training. Measured with bench/pipeline_profile.py on the smoke `dvc repro`: 7.4 of its
8.0 minutes were spent before the stages' runs began, 0.1 in training epochs.

How: `facetransfer warm -- dvc repro` starts a server that imports everything once and
listens on a Unix socket named by $FACETRANSFER_WARM. The `facetransfer` entry point
(facetransfer.launcher) sees that variable and, instead of importing anything, sends its
argv, working directory, environment and its stdin/stdout/stderr file descriptors to the
server (SCM_RIGHTS). The server forks; the child takes those descriptors, directory and
environment, runs the command as `facetransfer` would, sends back the exit code and exits
through the interpreter's normal shutdown (atexit, worker pools); the client returns once
the child is gone (its end of the socket closes). DVC
sees the same command line, the same output streams and the same exit code, so nothing in
dvc.yaml or dvc.lock changes; without the variable, or with no server listening, the
command runs the usual way.

Forking is safe here because the server only imports: no torch op has run in it (OpenMP's
thread pool is not fork-safe once started), no MLflow store or file is open. What a
forked child cannot see: environment variables that a library reads once at import
(OMP_NUM_THREADS, for one) come from the server's environment, i.e. the one `warm` was
started in. No maintained library does this for a Typer app (nailgun and Ruby's spring
are the same idea for the JVM and Rails), hence this module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

ENV = "FACETRANSFER_WARM"  # path of the server's socket
MAX_REQUEST = 1 << 20  # one request: argv, cwd, environment (a few kB)

# Imported once by the server: what the stage commands import lazily, and the costly part of it.
PRELOAD = ("torch", "torchvision", "sklearn.metrics", "sklearn.svm", "sklearn.model_selection", "scipy.stats",
           "matplotlib.figure", "mlflow", "mlflow.pytorch", "mlflow.store.tracking.sqlalchemy_store", "pandas",
           "facetransfer.cli")


# ----------------------------------------------------------------------------- client (the entry point)

def run_through_server(address: str, argv: Sequence[str]) -> int | None:
    """Run `argv` in a child of the server at `address`: its exit code, or None if no server answers."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        client.connect(address)
    except OSError:
        client.close()
        return None
    with client:
        request = {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)}
        try:
            socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
        except OSError:  # a closed stdin, an environment larger than a socket message: run cold instead
            return None
        started = _receive(client)
        if started is None:
            print("facetransfer: the warm server closed the connection before the command started", file=sys.stderr)
            return 1
        child = started["pid"]
        forward = lambda signum, frame: _kill(child, signum)  # noqa: E731 (Ctrl-C and `kill` reach the command)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        finished = _receive(client)
        if finished is not None:
            _wait_until_closed(client)  # the child's whole exit (atexit, workers it started) is part of the command
    if finished is None:  # the child died without reporting: killed by a signal (OOM killer, kill -9)
        print(f"facetransfer: the command (pid {child}) died in the warm server without an exit code",
              file=sys.stderr)
        return 1
    return int(finished["exit"])


def _receive(conn: socket.socket) -> dict | None:
    message = conn.recv(MAX_REQUEST)
    return json.loads(message) if message else None


def _wait_until_closed(conn: socket.socket) -> None:
    """Until the child has exited: the kernel closes its end of the socket then."""
    while conn.recv(MAX_REQUEST):
        pass


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


# ----------------------------------------------------------------------------- server

def preload(modules: Sequence[str] = PRELOAD) -> None:
    """Import what the commands will need; nothing is run, opened or started."""
    import importlib

    for name in modules:
        importlib.import_module(name)


def serve(address: str, parent: int) -> int:
    """Accept requests on `address`; each runs in a forked child. Returns in a child, with the exit code
    of the command it ran: the caller exits with it through the interpreter's normal shutdown (atexit
    handlers, worker pools that the command started), as a cold process would; and in the server,
    with 0, once the process `parent` (`warm`) is gone."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(address + ".binding")
    server.listen(16)
    os.rename(address + ".binding", address)  # the path appears only once connections are accepted
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel: no zombies, no waitpid
    server.settimeout(1.0)  # wake up each second to check that `warm` is still there (accepted sockets block)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if os.getppid() != parent:  # `warm` was killed (SIGTERM/SIGKILL skip its cleanup): do not linger
                with contextlib.suppress(OSError):
                    os.unlink(address)
                    os.rmdir(os.path.dirname(address))
                return 0
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            server.close()
            return _run_request(conn)
        conn.close()


def _run_request(conn: socket.socket) -> int:
    """In the forked child: become the client's command, run it, report its exit code.

    `conn` stays open until the child exits, which tells the client that everything is done.
    """
    try:
        message, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
        if not message:  # the client gave up before sending (it runs the command cold)
            return 0
        request = json.loads(message)
        _adopt(request, fds)
        conn.send(json.dumps({"pid": os.getpid()}).encode())
        code = _run_cli(request["argv"])
        sys.stdout.flush()
        sys.stderr.flush()
        conn.send(json.dumps({"exit": code}).encode())
        return code
    except BaseException:  # noqa: BLE001 (a child must never go back to the accept loop)
        traceback.print_exc()
        return 1


def _adopt(request: dict, fds: list[int]) -> None:
    """Take the client's stdin/stdout/stderr, working directory and environment."""
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    # New text streams on fds 0-2: buffering follows the client's terminal, not the server's.
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command's own subprocesses must be waitable
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)


def _run_cli(argv: Sequence[str]) -> int:
    import facetransfer.cli  # noqa: F401 (registers every command)
    from facetransfer.cli.app import app

    sys.argv = list(argv)
    try:
        # prog_name as a cold start derives it: Click would read `python -m facetransfer.warm` off __main__.
        app(args=list(argv[1:]), prog_name=os.path.basename(argv[0]))
    except SystemExit as exit_:
        return _exit_code(exit_.code)
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 (uncaught in the command: print it as Python would, exit 1 as it would)
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


def _exit_code(code: object) -> int:
    """SystemExit's code as the process would report it (None -> 0, a message -> 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def warm_server() -> Iterator[str]:
    """A preloaded server process for the duration of the block; yields its socket path."""
    folder = Path(tempfile.mkdtemp(prefix="facetransfer-warm-"))  # mode 0700: only this user can connect
    address = str(folder / "socket")
    server = subprocess.Popen([sys.executable, "-m", "facetransfer.warm", address, str(os.getpid())],
                              stdin=subprocess.DEVNULL)
    try:
        _wait_for(address, server)
        yield address
    finally:
        server.terminate()  # commands still running are children of their own: they finish
        server.wait()
        with contextlib.suppress(OSError):
            os.unlink(address)
            folder.rmdir()


def _wait_for(address: str, server: subprocess.Popen, timeout: float = 300.0) -> None:
    """Until the server listens (it binds after preloading); fail if it died."""
    import time

    deadline = time.monotonic() + timeout
    while not os.path.exists(address):
        if server.poll() is not None:
            raise RuntimeError(f"the warm server exited while preloading (exit code {server.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm server did not listen on {address} within {timeout:.0f} s")
        time.sleep(0.05)


def main() -> None:
    """`python -m facetransfer.warm SOCKET PARENT_PID`: preload, then serve until PARENT_PID is gone;
    forked children exit with their command's code."""
    address, parent = sys.argv[1], int(sys.argv[2])  # `warm`'s pid, given: it may be gone before we ask
    preload()
    sys.exit(serve(address, parent))


if __name__ == "__main__":
    main()
