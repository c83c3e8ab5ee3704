"""Step-up and customer MFA (issue 16): opaque access tokens keep the original sign-in time, as
JWTs do in `auth_time`, so step-up's max_age can judge them without a lookup per call; customers
get TOTP secrets and recovery codes, as admins have

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: tokens issued before this carry no sign-in time and never pass a max_age.
    op.add_column("opaque_tokens", sa.Column("auth_time", sa.BigInteger(), nullable=True))
    op.create_table(
        "customer_tfa",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "customer_recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "digest"),
    )


def downgrade() -> None:
    op.drop_table("customer_recovery_codes")
    op.drop_table("customer_tfa")
    with op.batch_alter_table("opaque_tokens") as batch:
        batch.drop_column("auth_time")
