"""External identity providers (issue 14): the providers, the identities linked from them, and the
authorization requests in flight

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_providers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("issuer", sa.String(1024), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("client_secret_enc", sa.LargeBinary, nullable=True),
        sa.Column("actor", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(512), nullable=False),
        sa.Column("redirect_uri", sa.String(1024), nullable=False),
        sa.Column("groups_claim", sa.String(128), nullable=True),
        sa.Column("role_map", sa.Text, nullable=False),
        sa.Column("default_role", sa.String(128), nullable=True),
        sa.Column("provisioning", sa.String(16), nullable=False),
        sa.Column("allowed_domains", sa.Text, nullable=False),
        sa.Column("trust_email_domains", sa.Boolean, nullable=False),
        sa.Column("mfa_from_amr", sa.Boolean, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "external_identities",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "provider_id", sa.Integer, sa.ForeignKey("identity_providers.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user_type", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("auth_identity_id", sa.Integer, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_login_ms", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("provider_id", "subject"),
    )
    op.create_index("ix_external_identities_account", "external_identities", ["user_type", "user_id"])
    op.create_table(
        "idp_flows",
        sa.Column("state_digest", sa.String(64), primary_key=True),
        sa.Column(
            "provider_id", sa.Integer, sa.ForeignKey("identity_providers.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("verifier_enc", sa.LargeBinary, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_idp_flows_expires_ms", "idp_flows", ["expires_ms"])


def downgrade() -> None:
    op.drop_index("ix_idp_flows_expires_ms", table_name="idp_flows")
    op.drop_table("idp_flows")
    op.drop_index("ix_external_identities_account", table_name="external_identities")
    op.drop_table("external_identities")
    op.drop_table("identity_providers")
