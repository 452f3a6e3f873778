"""custom attributes: a JSON object of properties the catalog has no field for

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:38:33

The catalog's new `attributes` field (ferry/catalog.py `_ATTRIBUTES`) on every
importable resource with records of its own, and the same column in their
import-image tables (rollback restores it like any other).
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLES = ('accounts', 'catalogs', 'contacts', 'lists', 'segments', 'survey_responses', 'variants', 'workflows')


def upgrade() -> None:
    for table in TABLES:
        for name in (table, f'import_images_{table}'):
            op.add_column(
                name, sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True)
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        for name in (f'import_images_{table}', table):
            with op.batch_alter_table(name, schema=None) as batch_op:
                batch_op.drop_column('attributes')
