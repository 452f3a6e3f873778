"""import ledger: runs, created ids and before/after images of updated records

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:10:00

Written in each import's own transaction (see tasks/import_load.py), so a crash
leaves neither data nor ledger, and ``rollback_import`` can undo one import exactly.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_runs',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stamp', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('created_rows', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_rows', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('rolled_back_at', sa.DateTime(), nullable=True),
    sa.Column('rolled_back_by', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_import_runs_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_import_runs'))
    )
    op.create_table('import_created',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.BigInteger(), nullable=False)
    )
    op.create_table('import_images_contacts',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('first_name', sa.Text(), nullable=True),
    sa.Column('last_name', sa.Text(), nullable=True),
    sa.Column('full_name', sa.Text(), nullable=True),
    sa.Column('phone_mobile', sa.String(length=64), nullable=True),
    sa.Column('phone_work', sa.String(length=64), nullable=True),
    sa.Column('phone_home', sa.String(length=64), nullable=True),
    sa.Column('phone_fax', sa.String(length=64), nullable=True),
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('job_title', sa.Text(), nullable=True),
    sa.Column('address_street', sa.Text(), nullable=True),
    sa.Column('address_street2', sa.Text(), nullable=True),
    sa.Column('address_city', sa.Text(), nullable=True),
    sa.Column('address_state', sa.Text(), nullable=True),
    sa.Column('address_zip', sa.Text(), nullable=True),
    sa.Column('address_country', sa.Text(), nullable=True),
    sa.Column('lifecycle_stage', sa.String(length=64), nullable=True),
    sa.Column('email_consent', sa.Boolean(), nullable=True),
    sa.Column('sms_consent', sa.Boolean(), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('owner', sa.Text(), nullable=True),
    sa.Column('ip_address', sa.Text(), nullable=True),
    sa.Column('timezone', sa.Text(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('lifetime_value', sa.Float(), nullable=True),
    sa.Column('orders_count', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True)
    )
    op.create_table('import_images_accounts',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('domain', sa.Text(), nullable=True),
    sa.Column('industry', sa.Text(), nullable=True),
    sa.Column('employees', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True)
    )
    op.create_table('import_images_events',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('type', sa.Text(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=True),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('properties', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True)
    )
    op.create_table('import_images_survey_responses',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('survey', sa.Text(), nullable=True),
    sa.Column('question', sa.Text(), nullable=True),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('submitted_at', sa.DateTime(), nullable=True)
    )
    op.create_table('import_images_lists',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('key', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True)
    )
    op.create_table('import_images_segments',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('key', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('rule', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True)
    )
    op.create_table('import_images_catalogs',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('key', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True)
    )
    op.create_table('import_images_schemas',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('key', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True)
    )
    op.create_table('import_images_products',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sku', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('catalog_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('schema_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('price', sa.Float(), nullable=True),
    sa.Column('currency', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True)
    )
    op.create_table('import_images_variants',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=8), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sku', sa.Text(), nullable=True),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('price', sa.Float(), nullable=True),
    sa.Column('stock', sa.BigInteger(), nullable=True)
    )
    op.create_index(op.f('ix_import_runs_workspace_id'), 'import_runs', ['workspace_id'], unique=False)
    op.create_index(op.f('ix_import_created_run_id'), 'import_created', ['run_id'], unique=False)
    op.create_index('ix_import_images_contacts_run', 'import_images_contacts', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_accounts_run', 'import_images_accounts', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_events_run', 'import_images_events', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_survey_responses_run', 'import_images_survey_responses', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_lists_run', 'import_images_lists', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_segments_run', 'import_images_segments', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_catalogs_run', 'import_images_catalogs', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_schemas_run', 'import_images_schemas', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_products_run', 'import_images_products', ['run_id', 'id'], unique=False)
    op.create_index('ix_import_images_variants_run', 'import_images_variants', ['run_id', 'id'], unique=False)
    # ### end Alembic commands ###


def downgrade() -> None:
    op.drop_table('import_images_variants')
    op.drop_table('import_images_products')
    op.drop_table('import_images_schemas')
    op.drop_table('import_images_catalogs')
    op.drop_table('import_images_segments')
    op.drop_table('import_images_lists')
    op.drop_table('import_images_survey_responses')
    op.drop_table('import_images_events')
    op.drop_table('import_images_accounts')
    op.drop_table('import_images_contacts')
    op.drop_table('import_created')
    op.drop_table('import_runs')
