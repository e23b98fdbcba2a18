"""items: the accepted label the model disputed and the model's label (label errors to review)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disputed_from", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("disputed_label", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_items_disputed",
            ["project_id", "status"],
            unique=False,
            sqlite_where=sa.text("disputed_from IS NOT NULL"),
            postgresql_where=sa.text("disputed_from IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_disputed")
        batch_op.drop_column("disputed_label")
        batch_op.drop_column("disputed_from")
