"""Step-up (issue 16): opaque access tokens keep the original sign-in time, as JWTs do in
`auth_time`, so step-up's max_age can judge them without a lookup per call

Revision ID: 0015
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: tokens issued before this carry no sign-in time and never pass a max_age.
    op.add_column("opaque_tokens", sa.Column("auth_time", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opaque_tokens") as batch:
        batch.drop_column("auth_time")
