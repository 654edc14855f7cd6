"""the checkpoint a training job last reported for its trial (handed back when a paused trial is resumed)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('trials', sa.Column('checkpoint', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('trials', 'checkpoint')
