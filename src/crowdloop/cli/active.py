"""The next batch to label: ``select``."""

from __future__ import annotations

from crowdloop.cli.common import app  # noqa: F401
