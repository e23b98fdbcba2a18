"""items and answers: covering indexes for a project's progress counts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index("ix_items_progress", ["project_id", "status", "answer_count", "confidence"], unique=False)
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.create_index("ix_answers_kinds", ["project_id", "is_gold", "is_review"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.drop_index("ix_answers_kinds")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_progress")
