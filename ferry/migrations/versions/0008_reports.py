"""reports: saved export definitions (resource, columns, labels, filters, sort, title, description) per workspace

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:52:34

One row per saved report (ferry/reports.py), keyed by its public id
(``rpt_<24 hex>``); names are unique within a workspace, and deleting a
workspace deletes its reports (ON DELETE CASCADE). The definition is JSON,
validated as an export request whenever it is written.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('definition', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_reports_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_reports_workspace_id_name'))
    )


def downgrade() -> None:
    op.drop_table('reports')
