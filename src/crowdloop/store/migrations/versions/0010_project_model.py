"""the project's own model: text fields and audit rate of a project, model version states and
metrics, model artifacts as data, audits of model labels

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_fields", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("audit_rate", sa.Float(), server_default="0.05", nullable=False))
        batch_op.add_column(sa.Column("automation_stopped", sa.Integer(), nullable=True))
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_version_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=16), server_default="active", nullable=False))
        batch_op.add_column(sa.Column("training_size", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("training_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("metrics", sa.JSON(), nullable=True))
    op.create_table(
        "model_artifacts",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_artifacts_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_version_id", name=op.f("pk_model_artifacts")),
    )
    op.create_table(
        "audits",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_audits_item_id_items"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_audits_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_audits_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_audits")),
    )
    op.create_index("ix_audits_version", "audits", ["model_version_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audits_version", table_name="audits")
    op.drop_table("audits")
    op.drop_table("model_artifacts")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        for column in ("metrics", "training_hash", "training_size", "state"):
            batch_op.drop_column(column)
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("model_version_id")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        for column in ("automation_stopped", "audit_rate", "text_fields"):
            batch_op.drop_column(column)
