"""OAuth 2 / OpenID Connect provider: clients, authorization codes, refresh-token families;
scope and client of opaque access tokens

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth2_clients",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("client_type", sa.String(16), nullable=False),
        sa.Column("secret_digest", sa.String(64), nullable=True),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("grant_types", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("require_pkce", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "oauth2_codes",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_type", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("auth_time", sa.BigInteger(), nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False, index=True),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("family_id", sa.String(64), nullable=True),
        sa.Column("access_jti", sa.String(64), nullable=True),
        sa.Column("access_expires_at", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "refresh_families",
        sa.Column("family_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("rotated_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False, index=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("user_type", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("auth_time", sa.BigInteger(), nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False, index=True),
        sa.Column("family_expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("access_jti", sa.String(64), nullable=True),
        sa.Column("access_expires_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family_id"])
    with op.batch_alter_table("opaque_tokens") as batch:
        batch.add_column(sa.Column("scope", sa.Text(), nullable=True))
        batch.add_column(sa.Column("client_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opaque_tokens") as batch:
        batch.drop_column("client_id")
        batch.drop_column("scope")
    op.drop_index("ix_refresh_tokens_family", "refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_table("refresh_families")
    op.drop_table("oauth2_codes")
    op.drop_table("oauth2_clients")
