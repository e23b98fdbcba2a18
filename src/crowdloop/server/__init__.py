"""The REST API of the labeling service (FastAPI): thin routes over ``crowdloop.service``.

>>> from crowdloop.server import create_app  # doctest: +SKIP
>>> app = create_app(open_service("sqlite:///crowdloop.db"))  # doctest: +SKIP
"""

from crowdloop.server.app import DEFAULT_MAX_BODY_BYTES, create_app
from crowdloop.server.auth import ADMIN_PROJECT
from crowdloop.server.bootstrap import ensure_admin, new_admin_token

__all__ = ["ADMIN_PROJECT", "DEFAULT_MAX_BODY_BYTES", "create_app", "ensure_admin", "new_admin_token"]
