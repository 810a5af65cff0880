"""launch.run_passing_signals_on: the command that relaunches itself under torchrun waits for it as a child,
passes on the signals a user or DVC sends, and exits with its status."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

# The torchrun stand-in: reports each signal it gets by exiting with 10 + its number (SIGTERM's default
# action, death, in the second case).
CHILD = textwrap.dedent("""
    import signal, sys, time
    if sys.argv[1] == "handles":
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, lambda signum, frame: sys.exit(10 + signum))
    print("ready", flush=True)
    time.sleep(60)
""")
# The relaunching command: runs the stand-in through run_passing_signals_on and exits with what it returns.
PARENT = "import sys; from facetransfer import launch; " \
         "sys.exit(launch.run_passing_signals_on([sys.executable, '-c', sys.argv[1], sys.argv[2]]))"


def _send_when_ready(mode: str, signum: int) -> int:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, mode], stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline() == "ready\n"  # the child runs, and its handlers are in place
    time.sleep(0.2)  # the parent's handlers too (installed right after it started the child)
    parent.send_signal(signum)
    return parent.wait(timeout=30)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_command_reaches_torchrun_and_its_status_comes_back(signum):
    assert _send_when_ready("handles", signum) == 10 + signum


def test_a_child_killed_by_a_signal_is_status_128_plus_the_signal():
    assert _send_when_ready("dies", signal.SIGTERM) == 128 + signal.SIGTERM
