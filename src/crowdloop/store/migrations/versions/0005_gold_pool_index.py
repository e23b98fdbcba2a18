"""items: a partial index of the gold items in the order they are handed out (fewest answers first)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_items_gold_pool",
            ["project_id", "answer_count", "id"],
            unique=False,
            sqlite_where=sa.text("is_gold IS 1"),
            postgresql_where=sa.text("is_gold IS true"),
        )


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_gold_pool")
