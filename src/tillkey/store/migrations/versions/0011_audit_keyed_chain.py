"""audit log: a format version per record (1 legacy SHA-256, 2 keyed HMAC-SHA256)

Existing records get v = 1 and keep their hashes. The migration cannot key them: the key derives
from the master secret, which migrations never see. At its next start Tillkey checks the legacy
records and continues the chain keyed after them with one `audit.keyed` record
(tillkey.audit.AuditLog.migrate_legacy).

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
    # A plain ADD COLUMN (SQLite and PostgreSQL both take it with a default): batch mode would
    # rebuild the table on SQLite and lose the expression index ix_audit_events_username.
    op.add_column("audit_events", sa.Column("v", sa.SmallInteger(), nullable=False, server_default="1"))


def downgrade() -> None:
    # Keyed records then no longer verify as SHA-256: `tillkey audit verify` of an older release
    # reports the first of them as altered.
    op.drop_column("audit_events", "v")  # SQLite 3.35+ drops a column in place
