"""studies.owner references namespaces.name: a namespace and a study created in it while it is deleted can no
longer both win (the delete used to count no studies, and studies then landed in a deleted namespace)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Studies left behind by that race keep their owner: the namespace comes back, empty of tokens.
    op.execute("INSERT INTO namespaces (name, created_at) SELECT DISTINCT owner, CURRENT_TIMESTAMP FROM studies "
               "WHERE owner NOT IN (SELECT name FROM namespaces)")
    bind = op.get_bind()
    # SQLite rebuilds the table; its AUTOINCREMENT counter must survive, so study ids are never reused.
    counter = (bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'studies'")).scalar()
               if bind.dialect.name == 'sqlite' else None)
    with op.batch_alter_table('studies', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.create_foreign_key('fk_studies_owner_namespaces', 'namespaces', ['owner'], ['name'],
                                    ondelete='RESTRICT')
    if counter is not None:
        bind.execute(sa.text("UPDATE sqlite_sequence SET seq = MAX(seq, :counter) WHERE name = 'studies'"),
                     {"counter": counter})


def downgrade() -> None:
    with op.batch_alter_table('studies', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_constraint('fk_studies_owner_namespaces', type_='foreignkey')
