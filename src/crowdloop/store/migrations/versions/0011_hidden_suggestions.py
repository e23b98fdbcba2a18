"""projects: a hide rate; leases and answers: whether the suggestions were shown (anchoring)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hide_rate", sa.Float(), server_default="0.1", nullable=False))
    for table in ("leases", "answers"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("suggestions_shown", sa.Boolean(), nullable=True))


def downgrade() -> None:
    for table in ("answers", "leases"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("suggestions_shown")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("hide_rate")
