"""Integrations bound to a client certificate (issue 20, RFC 8705): the SHA-256 thumbprint
(x5t#S256, base64url) of the certificate an integration's calls must come with; NULL: unbound

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrations") as batch:
        batch.add_column(sa.Column("cert_x5t", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("cert_x5t")
