"""projects: the calibrator stored as data (JSON), never a pickle; the annotators' prior skill

A stored calibrator was a pickle, loaded on every cache miss: whoever could write the database
ran code in the server. The blobs are dropped unread (loading them here would be the same risk)
and ``refit_at`` cleared, so that the project decides on its raw posterior until the next refit
(``crowdloop refit``) fits and stores the calibrator again, as JSON.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("calibrator")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calibrator", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("skill_prior", sa.Float(), nullable=True))
    op.execute(sa.text("UPDATE projects SET refit_at = NULL"))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("skill_prior")
        batch_op.drop_column("calibrator")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calibrator", sa.LargeBinary(), nullable=True))
