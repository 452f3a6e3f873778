"""leaner writes: the import ledger keeps id ranges; no workspace_id index that another index already covers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00

- ``import_created`` (one row per created record) becomes ``import_created_ranges``
  (one row per run of consecutive ids). Existing rows are folded into ranges.
- Every resource table had an index on ``workspace_id`` alone, beside unique
  constraints and time indexes that start with ``workspace_id``: the lone one
  served no query the others do not, and cost every insert.
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_COVERED = ['accounts', 'audit_log', 'catalogs', 'contacts', 'events', 'list_memberships', 'lists', 'products',
            'schemas', 'segments', 'survey_responses', 'variants']


def upgrade() -> None:
    op.create_table('import_created_ranges',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('first_id', sa.BigInteger(), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=False)
    )
    op.create_index(op.f('ix_import_created_ranges_run_id'), 'import_created_ranges', ['run_id'], unique=False)
    op.execute(
        "INSERT INTO import_created_ranges (run_id, resource, first_id, last_id) "
        "SELECT run_id, resource, MIN(record_id), MAX(record_id) FROM ("
        "SELECT run_id, resource, record_id, "
        "record_id - ROW_NUMBER() OVER (PARTITION BY run_id, resource ORDER BY record_id) AS island "
        "FROM import_created) x GROUP BY run_id, resource, island"
    )
    op.drop_index(op.f('ix_import_created_run_id'), table_name='import_created')
    op.drop_table('import_created')
    for table in _COVERED:
        op.drop_index(f'ix_{table}_workspace_id', table_name=table)


def downgrade() -> None:
    for table in _COVERED:
        op.create_index(f'ix_{table}_workspace_id', table, ['workspace_id'], unique=False)
    op.create_table('import_created',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.BigInteger(), nullable=False)
    )
    op.create_index(op.f('ix_import_created_run_id'), 'import_created', ['run_id'], unique=False)
    op.execute("WITH RECURSIVE ids(run_id, resource, id, last_id) AS ("
               "SELECT run_id, resource, first_id, last_id FROM import_created_ranges "
               "UNION ALL SELECT run_id, resource, id + 1, last_id FROM ids WHERE id < last_id) "
               "INSERT INTO import_created (run_id, resource, record_id) SELECT run_id, resource, id FROM ids")
    op.drop_index(op.f('ix_import_created_ranges_run_id'), table_name='import_created_ranges')
    op.drop_table('import_created_ranges')
