"""DPoP (issue 20, RFC 9449): the shared replay cache of single-use values (proof jtis), the
per-client `dpop_bound_access_tokens` flag, the key binding (`cnf.jkt`) of opaque access tokens
and refresh tokens, and the `dpop_jkt` an authorization code was requested with

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_cache",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_replay_cache_expires", "replay_cache", ["expires_ms"])
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.add_column(sa.Column("dpop_bound_access_tokens", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("opaque_tokens") as batch:
        batch.add_column(sa.Column("cnf_jkt", sa.String(length=64), nullable=True))
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("cnf_jkt", sa.String(length=64), nullable=True))
    with op.batch_alter_table("oauth2_codes") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth2_codes") as batch:
        batch.drop_column("dpop_jkt")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("cnf_jkt")
    with op.batch_alter_table("opaque_tokens") as batch:
        batch.drop_column("cnf_jkt")
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.drop_column("dpop_bound_access_tokens")
    op.drop_index("ix_replay_cache_expires", table_name="replay_cache")
    op.drop_table("replay_cache")
