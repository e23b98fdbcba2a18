"""Label errors and planning: ``errors``, ``plan``."""

from __future__ import annotations

from crowdloop.cli.common import app  # noqa: F401
