"""Mutual TLS (issue 20, RFC 8705): the per-client `tls_client_certificate_bound_access_tokens`
flag, the name a tls_client_auth client's certificate must carry, and the certificate binding
(`cnf.x5t#S256`) of opaque access tokens

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.add_column(
            sa.Column(
                "tls_client_certificate_bound_access_tokens", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.add_column(sa.Column("tls_client_auth_field", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("tls_client_auth_value", sa.String(length=1024), nullable=True))
    with op.batch_alter_table("opaque_tokens") as batch:
        batch.add_column(sa.Column("cnf_x5t", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opaque_tokens") as batch:
        batch.drop_column("cnf_x5t")
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.drop_column("tls_client_auth_value")
        batch.drop_column("tls_client_auth_field")
        batch.drop_column("tls_client_certificate_bound_access_tokens")
