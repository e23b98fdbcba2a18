"""The model's opinion on files: ``train``, ``suggest``, ``autolabel``."""

from __future__ import annotations

from crowdloop.cli.common import app  # noqa: F401
