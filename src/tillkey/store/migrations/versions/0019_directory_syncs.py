"""LDAP / Active Directory sync (issue 15): one row per LDAP provider, its lease and last outcome;
the accounts a sync deactivated (only those does a later sync reactivate)

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_syncs",
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_started_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_ok_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deactivated", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["identity_providers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("provider_id"),
    )
    op.create_table(
        "directory_deactivations",
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("user_type", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("deactivated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["identity_providers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("provider_id", "user_type", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("directory_deactivations")
    op.drop_table("directory_syncs")
