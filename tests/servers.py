"""Real servers on 127.0.0.1 for integration tests: moto's S3 and an MLflow tracking server.

Each runs as a subprocess on a free port, is waited for until it answers HTTP, and is
stopped (and its log shown on failure) when the `with` block ends.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(cmd: list[str], url: str, log: Path, timeout_s: float = 90.0) -> Iterator[str]:
    """Start `cmd`, wait until GET `url` answers (any HTTP status), yield `url`; stop it afterwards."""
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[0]} did not answer at {url} in {timeout_s} s:\n"
                                       f"{log.read_text()[-3000:]}") from err
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def moto_s3(log: Path) -> Iterator[str]:
    """moto's S3 in server mode (what DVC's own S3 tests use); yields the endpoint URL."""
    port = free_port()
    with http_server([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                     f"http://127.0.0.1:{port}/", log) as url:
        yield url.rstrip("/")


@contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """`mlflow server` with a SQLite backend and `--artifacts-destination` under `workdir` (as `make server`)."""
    port = free_port()
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
           "--artifacts-destination", str(workdir / "artifacts")]
    with http_server(cmd, f"http://127.0.0.1:{port}/health", workdir / "server.log", timeout_s=120) as url:
        yield url.removesuffix("/health")
