"""OAuth 2 clients marked as resource servers: only they (or a token's own client) may introspect
tokens (RFC 7662 §2.1)

Revision ID: 0012
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing clients are not resource servers: an operator marks the ones that introspect.
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.add_column(sa.Column("resource_server", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.drop_column("resource_server")
