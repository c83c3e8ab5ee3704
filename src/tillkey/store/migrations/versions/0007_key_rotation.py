"""signing-key rotation: when a key starts signing and until when it verifies

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.add_column(sa.Column("signs_from", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("verify_until", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("verify_until")
        batch.drop_column("signs_from")
