"""The product-categorization demo: ``demo``."""

from __future__ import annotations

from crowdloop.cli.common import app  # noqa: F401
