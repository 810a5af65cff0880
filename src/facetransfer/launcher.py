"""The `facetransfer` entry point: through the warm server when $FACETRANSFER_WARM names one, else directly.

Kept import-free (standard library only) so that the warm path costs milliseconds; see facetransfer.warm.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    # MLflow logs INFO lines on stderr at every run (tables created, system metrics started and stopped), so a
    # user error's one line came after six others. WARNING keeps its warnings; the environment still wins.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    address = os.environ.get("FACETRANSFER_WARM")  # facetransfer.warm.ENV, not imported here to stay light
    if address:
        from facetransfer.warm import run_through_server

        code = run_through_server(address, sys.argv)
        if code is not None:
            sys.exit(code)
        # No server listens there (it was stopped, or the variable leaked): run the usual way.
    from facetransfer.cli import main as cli_main

    cli_main()
