"""login throttle and account lockout

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("user_type", sa.Integer(), nullable=False),
        sa.Column("failures_count", sa.Integer(), nullable=False),
        sa.Column("lock_expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_name", "user_type"),
    )
    op.create_table(
        "account_locks",
        sa.Column("user_type", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("failures_num", sa.Integer(), nullable=False),
        sa.Column("lock_expires", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_type", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("account_locks")
    op.drop_table("login_failures")
