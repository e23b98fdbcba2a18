"""The labeling service: ``serve``, ``refit`` and the database jobs."""

from __future__ import annotations

from crowdloop.cli.common import app  # noqa: F401
