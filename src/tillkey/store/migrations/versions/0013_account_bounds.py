"""Per-account bounds (issue 21): indexes that let sessions and refresh-token families be counted
per account when one is created, and pending reset tokens per account

Revision ID: 0013
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_user", "sessions", ["user_type", "user_id", "kind"])
    op.create_index("ix_refresh_tokens_user", "refresh_tokens", ["user_type", "user_id", "client_id"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_user", table_name="refresh_tokens")
    op.drop_index("ix_sessions_user", table_name="sessions")
