"""model_versions.metrics: the automation proof's evidence keys renamed (it counts settled labels, not gold alone)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RENAMED = {"threshold_gold_n": "threshold_evidence_n", "threshold_gold_right": "threshold_evidence_right"}
_versions = sa.table("model_versions", sa.column("id", sa.Integer), sa.column("metrics", sa.JSON))


def _rename(names: dict[str, str]) -> None:
    connection = op.get_bind()
    for row in connection.execute(sa.select(_versions.c.id, _versions.c.metrics)).all():
        metrics = row.metrics or {}
        if any(old in metrics for old in names):
            renamed = {names.get(key, key): value for key, value in metrics.items()}
            connection.execute(_versions.update().where(_versions.c.id == row.id).values(metrics=renamed))


def upgrade() -> None:
    _rename(_RENAMED)


def downgrade() -> None:
    _rename({new: old for old, new in _RENAMED.items()})
