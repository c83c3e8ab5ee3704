"""private_key_jwt client authentication and pushed authorization requests (issue 20): a client's
token endpoint auth method, JWKS (inline or URI) and PAR requirement; pushed authorization
requests (client assertion jtis go to 0020's replay_cache)

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing clients keep authenticating as their kind says (a secret, or none).
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.add_column(sa.Column("token_endpoint_auth_method", sa.String(32), nullable=True))
        batch.add_column(sa.Column("jwks", sa.Text(), nullable=True))
        batch.add_column(sa.Column("jwks_uri", sa.String(1024), nullable=True))
        batch.add_column(
            sa.Column("require_pushed_authorization_requests", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "oauth2_pushed_requests",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_oauth2_pushed_requests_expires_at", "oauth2_pushed_requests", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth2_pushed_requests_expires_at", table_name="oauth2_pushed_requests")
    op.drop_table("oauth2_pushed_requests")
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.drop_column("require_pushed_authorization_requests")
        batch.drop_column("jwks_uri")
        batch.drop_column("jwks")
        batch.drop_column("token_endpoint_auth_method")
