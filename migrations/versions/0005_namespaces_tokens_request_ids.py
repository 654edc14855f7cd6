"""namespaces and hashed bearer tokens; client request ids on trials and jobs (idempotent ask, add and tell);
an index for the stale-trial sweep

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'namespaces',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.execute("INSERT INTO namespaces (name, created_at) VALUES ('default', CURRENT_TIMESTAMP)")
    op.create_table(
        'api_tokens',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('namespace', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.Column('revoked_at', UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('secret_hash', name='uq_api_tokens_secret_hash'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_api_tokens_namespace', 'api_tokens', ['namespace'], unique=False)
    op.add_column('trials', sa.Column('request_id', sa.String(length=128), nullable=True))
    op.add_column('trials', sa.Column('tell_request_id', sa.String(length=128), nullable=True))
    op.create_index('ix_trials_study_request', 'trials', ['study_id', 'request_id'], unique=False,
                    postgresql_where=sa.text('request_id IS NOT NULL'), sqlite_where=sa.text('request_id IS NOT NULL'))
    op.create_index('ix_trials_active_seen', 'trials', ['state'], unique=False,
                    postgresql_where=sa.text("state = 'active'"), sqlite_where=sa.text("state = 'active'"))
    op.add_column('jobs', sa.Column('request_id', sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'request_id')
    op.drop_index('ix_trials_active_seen', table_name='trials')
    op.drop_index('ix_trials_study_request', table_name='trials')
    op.drop_column('trials', 'tell_request_id')
    op.drop_column('trials', 'request_id')
    op.drop_index('ix_api_tokens_namespace', table_name='api_tokens')
    op.drop_table('api_tokens')
    op.drop_table('namespaces')
