"""per-trial engine info (e.g. which epsilon-greedy branch proposed it); which trials a pooled suggestion knew of

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON_VALUE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.add_column('trials', sa.Column('engine_info', JSON_VALUE, nullable=True))
    op.add_column('pooled_suggestions', sa.Column('engine_info', JSON_VALUE, nullable=True))
    op.add_column('pooled_suggestions', sa.Column('as_of_number', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('pooled_suggestions', 'as_of_number')
    op.drop_column('pooled_suggestions', 'engine_info')
    op.drop_column('trials', 'engine_info')
