"""a trial's pause and resume history: when it paused (step, checkpoint, the worker it left) and when it was resumed
(from which step, to which budget, by which worker)

Trials paused before this revision have no history; their timings count from their first start.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('trial_events',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('trial_id', BIG_ID, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('step', sa.Float(), nullable=True),
    sa.Column('budget', sa.Float(), nullable=True),
    sa.Column('worker_id', sa.String(length=256), nullable=True),
    sa.Column('checkpoint', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    op.create_index('ix_trial_events_trial', 'trial_events', ['trial_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_trial_events_trial', table_name='trial_events')
    op.drop_table('trial_events')
