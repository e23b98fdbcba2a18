"""The ``crowdloop`` command line: one command, a subcommand per job.

Each module below registers its subcommands on the shared ``app``; importing them here is what
makes them part of the command.
"""

from crowdloop.cli import truth  # noqa: F401  (registers aggregate, decide, methods)
from crowdloop.cli.common import app

__all__ = ["app"]
