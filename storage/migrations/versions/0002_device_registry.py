"""device registry: sites, buildings, zones, gateways and devices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 05:35:26.809496
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.state.models

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sites',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('auto_register', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('buildings',
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('building_id', sa.String(length=64), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['site'], ['sites.id'], ),
    sa.PrimaryKeyConstraint('site', 'building_id')
    )
    op.create_table('zones',
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('building_id', sa.String(length=64), nullable=False),
    sa.Column('zone_id', sa.String(length=64), nullable=False),
    sa.Column('floor', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['site', 'building_id'], ['buildings.site', 'buildings.building_id'], ),
    sa.PrimaryKeyConstraint('site', 'building_id', 'zone_id')
    )
    op.create_table('gateways',
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('building_id', sa.String(length=64), nullable=True),
    sa.Column('zone_id', sa.String(length=64), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['site', 'building_id', 'zone_id'], ['zones.site', 'zones.building_id', 'zones.zone_id'], ),
    sa.ForeignKeyConstraint(['site', 'building_id'], ['buildings.site', 'buildings.building_id'], ),
    sa.ForeignKeyConstraint(['site'], ['sites.id'], ),
    sa.PrimaryKeyConstraint('site', 'gateway_id')
    )
    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('family', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('building_id', sa.String(length=64), nullable=True),
    sa.Column('zone_id', sa.String(length=64), nullable=True),
    sa.Column('gateway_id', sa.String(length=64), nullable=True),
    sa.Column('equipment_id', sa.String(length=64), nullable=True),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('report_interval_s', sa.Float(), nullable=True),
    sa.Column('registered_by', sa.String(length=16), nullable=False),
    sa.Column('created_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site', 'building_id', 'zone_id'], ['zones.site', 'zones.building_id', 'zones.zone_id'], ),
    sa.ForeignKeyConstraint(['site', 'building_id'], ['buildings.site', 'buildings.building_id'], ),
    sa.ForeignKeyConstraint(['site', 'gateway_id'], ['gateways.site', 'gateways.gateway_id'], ),
    sa.ForeignKeyConstraint(['site'], ['sites.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('site', 'family', 'device_id', name='uq_devices_site_family_device')
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index('ix_devices_site_gateway', ['site', 'gateway_id'], unique=False)
        batch_op.create_index('ix_devices_site_location', ['site', 'building_id', 'zone_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_site_location')
        batch_op.drop_index('ix_devices_site_gateway')

    op.drop_table('devices')
    op.drop_table('gateways')
    op.drop_table('zones')
    op.drop_table('buildings')
    op.drop_table('sites')
