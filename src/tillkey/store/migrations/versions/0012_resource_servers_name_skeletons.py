"""OAuth 2 clients marked as resource servers: only they (or a token's own client) may introspect
tokens (RFC 7662 §2.1). Account names' UTS #39 skeletons, so that a look-alike of an existing
admin username or customer email is refused (tillkey/names.py).

Revision ID: 0012
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tillkey.names import skeleton

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _backfill(table: str, column: str) -> None:
    """Existing accounts keep their names; their skeletons are computed so new look-alikes of them
    are refused (an existing pair of look-alikes stays as it is: see README, Account names)."""
    t = sa.table(
        table, sa.column("id", sa.Integer()), sa.column(column, sa.String()), sa.column("name_skeleton", sa.String())
    )
    bind = op.get_bind()
    for row_id, name in bind.execute(sa.select(t.c.id, t.c[column])).all():
        bind.execute(sa.update(t).where(t.c.id == row_id).values(name_skeleton=skeleton(name or "")))


def upgrade() -> None:
    # Existing clients are not resource servers: an operator marks the ones that introspect.
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.add_column(sa.Column("resource_server", sa.Boolean(), nullable=False, server_default=sa.false()))
    for table, column in (("admins", "username"), ("customers", "email")):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("name_skeleton", sa.String(1024), nullable=True))
            batch.create_index(f"ix_{table}_name_skeleton", ["name_skeleton"])
        _backfill(table, column)


def downgrade() -> None:
    for table in ("admins", "customers"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_name_skeleton")
            batch.drop_column("name_skeleton")
    with op.batch_alter_table("oauth2_clients") as batch:
        batch.drop_column("resource_server")
