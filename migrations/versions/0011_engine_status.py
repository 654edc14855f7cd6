"""an engine's user-visible status (e.g. `likely_infeasible`) in a column of its own, apart from its warm-start memory

Engines kept it in their memory under the key `status`; the upgrade moves it out, the downgrade moves it back.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

JSON_VALUE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
STATUS_KEY = 'status'  # where engines kept their status in their memory before this revision


def _engine_states() -> sa.Table:
    return sa.table('engine_states', sa.column('study_id', sa.Integer()), sa.column('memory', JSON_VALUE),
                    sa.column('status', JSON_VALUE))


def upgrade() -> None:
    op.add_column('engine_states', sa.Column('status', JSON_VALUE, nullable=True))
    states = _engine_states()
    connection = op.get_bind()
    for study_id, memory in connection.execute(sa.select(states.c.study_id, states.c.memory)).all():
        if isinstance(memory, dict) and STATUS_KEY in memory:
            kept = {k: v for k, v in memory.items() if k != STATUS_KEY}
            connection.execute(states.update().where(states.c.study_id == study_id)
                               .values(memory=kept, status=memory[STATUS_KEY]))


def downgrade() -> None:
    states = _engine_states()
    connection = op.get_bind()
    for study_id, memory, status in connection.execute(
            sa.select(states.c.study_id, states.c.memory, states.c.status)).all():
        if status is None:
            continue
        connection.execute(states.update().where(states.c.study_id == study_id)
                           .values(memory={**(memory or {}), STATUS_KEY: status}))
    op.drop_column('engine_states', 'status')
