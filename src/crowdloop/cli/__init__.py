"""The ``crowdloop`` command line: one command, a subcommand per job.

Each module below registers its subcommands on the shared ``app``; importing them here is what
makes them part of the command.
"""

from crowdloop.cli import active, demo, model, quality, service, truth  # noqa: F401  (register subcommands)
from crowdloop.cli.common import app

__all__ = ["app"]
