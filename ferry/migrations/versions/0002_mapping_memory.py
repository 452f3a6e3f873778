"""mapping memory: accepted import column mappings per workspace, resource and source-column set

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:00:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('import_mappings',
    sa.Column('id', _ID, nullable=False),
    sa.Column('workspace_id', _ID, nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('columns_key', sa.String(length=64), nullable=False),
    sa.Column('source_columns', _JSON, nullable=False),
    sa.Column('mapping', _JSON, nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_import_mappings_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_mappings')),
    sa.UniqueConstraint('workspace_id', 'resource', 'columns_key', name=op.f('uq_import_mappings_workspace_id_resource_columns_key'))
    )


def downgrade() -> None:
    op.drop_table('import_mappings')
