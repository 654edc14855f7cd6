"""a study's engine options with every default filled in, pinned at creation

Studies created before this revision keep NULL: they go on with the server's defaults, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

JSON_VALUE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.add_column('studies', sa.Column('engine_options', JSON_VALUE, nullable=True))


def downgrade() -> None:
    op.drop_column('studies', 'engine_options')
