"""`python -m facetransfer.cli <command>`: what torchrun starts in each worker (launch.torchrun_command)."""

from facetransfer.cli import main

if __name__ == "__main__":
    main()
