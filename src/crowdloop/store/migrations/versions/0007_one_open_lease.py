"""leases: one open lease per annotator (a partial unique index); extra open leases expired first

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# open leases of an annotator who holds a newer one: the ones concurrent ``next`` calls handed out
_EXTRA = """l.state = 'open' AND EXISTS (SELECT 1 FROM leases k WHERE k.annotator_id = l.annotator_id
    AND k.state = 'open' AND (k.created_at > l.created_at OR (k.created_at = l.created_at AND k.id > l.id)))"""


def upgrade() -> None:
    op.execute(
        f"UPDATE items SET open_leases = open_leases - (SELECT count(*) FROM leases l WHERE l.item_id = items.id "
        f"AND {_EXTRA}) WHERE id IN (SELECT l.item_id FROM leases l WHERE {_EXTRA})"
    )
    op.execute(f"UPDATE leases SET state = 'expired' WHERE id IN (SELECT l.id FROM leases l WHERE {_EXTRA})")
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.create_index(
            "ux_leases_one_open",
            ["annotator_id"],
            unique=True,
            sqlite_where=sa.text("state = 'open'"),
            postgresql_where=sa.text("state = 'open'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index("ux_leases_one_open")
