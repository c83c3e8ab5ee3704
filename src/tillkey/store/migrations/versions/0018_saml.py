"""SAML 2.0 service provider (issue 15): each SAML provider's IdP metadata and the SP's own key
and certificate (the previous certificate kept while the IdP catches up with a rotation); consumed
assertion IDs go to the replay cache of 0020

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saml_providers",
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("idp_metadata", sa.Text(), nullable=False),
        sa.Column("sp_cert", sa.Text(), nullable=False),
        sa.Column("sp_key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("previous_cert", sa.Text(), nullable=True),
        sa.Column("previous_key_enc", sa.LargeBinary(), nullable=True),
        sa.Column("rotated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["identity_providers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("provider_id"),
    )


def downgrade() -> None:
    op.drop_table("saml_providers")
