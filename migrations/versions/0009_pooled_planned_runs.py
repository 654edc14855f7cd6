"""the ready pool of engines that plan runs: each pooled run's budget, and the paused trial a pooled resume takes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('pooled_suggestions', sa.Column('budget', sa.Float(), nullable=True))
    op.add_column('pooled_suggestions', sa.Column('resume_number', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('pooled_suggestions', 'resume_number')
    op.drop_column('pooled_suggestions', 'budget')
