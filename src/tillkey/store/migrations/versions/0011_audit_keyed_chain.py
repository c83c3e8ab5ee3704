"""audit log: a format version per record (1 legacy SHA-256, 2 keyed HMAC-SHA256)

Existing records get v = 1 and keep their hashes. The migration cannot key them: the key derives
from the master secret, which migrations never see. At its next start Tillkey checks the legacy
records and continues the chain keyed after them with one `audit.keyed` record
(tillkey.security.audit.AuditLog.migrate_legacy).

Revision ID: 0011
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("v", sa.SmallInteger(), nullable=False, server_default="1"))


def downgrade() -> None:
    # Keyed records then no longer verify as SHA-256: `tillkey audit verify` of an older release
    # reports the first of them as altered.
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("v")
