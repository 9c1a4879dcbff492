"""equipment ledger: equipment, linked devices, maintenance plans and tasks, work orders,
technicians, failure-risk predictions (issue 8)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 07:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.state.models

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('technicians',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('daily_capacity_min', sa.Integer(), nullable=False),
    sa.Column('shift_start', sa.Time(), nullable=False),
    sa.Column('shift_end', sa.Time(), nullable=False),
    sa.Column('contractor', sa.String(length=128), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('updated_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('equipment',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('manufacturer', sa.String(length=128), nullable=False),
    sa.Column('building_id', sa.String(length=64), nullable=True),
    sa.Column('floor', sa.Integer(), nullable=True),
    sa.Column('zone_id', sa.String(length=64), nullable=True),
    sa.Column('installed_on', sa.Date(), nullable=True),
    sa.Column('warranty_until', sa.Date(), nullable=True),
    sa.Column('contractor', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('created_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site', 'building_id', 'zone_id'], ['zones.site', 'zones.building_id', 'zones.zone_id'], ),
    sa.ForeignKeyConstraint(['site', 'building_id'], ['buildings.site', 'buildings.building_id'], ),
    sa.ForeignKeyConstraint(['site'], ['sites.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('equipment', schema=None) as batch_op:
        batch_op.create_index('ix_equipment_site_type', ['site', 'type'], unique=False)

    op.create_table('equipment_risks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('equipment_id', sa.String(length=64), nullable=False),
    sa.Column('asset_id', sa.String(length=200), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('top_features', sa.JSON(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('scored_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['equipment_id'], ['equipment.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('equipment_risks', schema=None) as batch_op:
        batch_op.create_index('ix_equipment_risks_latest', ['equipment_id', 'scored_at'], unique=False)

    op.create_table('maintenance_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('equipment_type', sa.String(length=32), nullable=True),
    sa.Column('equipment_id', sa.String(length=64), nullable=True),
    sa.Column('name_zh', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('builtin', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('updated_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(equipment_type IS NULL) != (equipment_id IS NULL)', name='ck_maintenance_plans_target'),
    sa.ForeignKeyConstraint(['equipment_id'], ['equipment.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('maintenance_plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_maintenance_plans_equipment_id'), ['equipment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_maintenance_plans_equipment_type'), ['equipment_type'], unique=False)

    op.create_table('equipment_devices',
    sa.Column('equipment_id', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('family', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['equipment_id'], ['equipment.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site', 'family', 'device_id'], ['devices.site', 'devices.family', 'devices.device_id'], ),
    sa.PrimaryKeyConstraint('equipment_id', 'site', 'family', 'device_id')
    )
    with op.batch_alter_table('equipment_devices', schema=None) as batch_op:
        batch_op.create_index('ix_equipment_devices_device', ['site', 'family', 'device_id'], unique=False)

    op.create_table('plan_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('title_zh', sa.String(length=200), nullable=False),
    sa.Column('title_en', sa.String(length=200), nullable=False),
    sa.Column('checklist', sa.JSON(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('interval', sa.String(length=16), nullable=False),
    sa.Column('skill', sa.String(length=32), nullable=False),
    sa.Column('duration_min', sa.Integer(), nullable=False),
    sa.Column('blackout_sensitive', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['maintenance_plans.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('plan_id', 'key', name='uq_plan_tasks_plan_key')
    )
    op.create_table('work_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('equipment_id', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('checklist', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('skill', sa.String(length=32), nullable=False),
    sa.Column('estimate_min', sa.Integer(), nullable=False),
    sa.Column('assignee', sa.String(length=64), nullable=True),
    sa.Column('due_at', storage.state.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('plan_task_id', sa.Integer(), nullable=True),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('risk_id', sa.Integer(), nullable=True),
    sa.Column('parts', sa.JSON(), nullable=False),
    sa.Column('minutes_spent', sa.Integer(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('maintenance_mode', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('maintenance_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.state.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('started_at', storage.state.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', storage.state.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', storage.state.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['equipment_id'], ['equipment.id'], ),
    sa.ForeignKeyConstraint(['maintenance_id'], ['maintenance.id'], ),
    sa.ForeignKeyConstraint(['plan_task_id'], ['plan_tasks.id'], ),
    sa.ForeignKeyConstraint(['risk_id'], ['equipment_risks.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('equipment_id', 'plan_task_id', 'period_start', name='uq_work_orders_planned_period')
    )
    with op.batch_alter_table('work_orders', schema=None) as batch_op:
        batch_op.create_index('ix_work_orders_equipment', ['equipment_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_orders_site'), ['site'], unique=False)
        batch_op.create_index('ix_work_orders_status', ['status', 'due_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('work_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_work_orders_status')
        batch_op.drop_index(batch_op.f('ix_work_orders_site'))
        batch_op.drop_index('ix_work_orders_equipment')

    op.drop_table('work_orders')
    op.drop_table('plan_tasks')
    with op.batch_alter_table('equipment_devices', schema=None) as batch_op:
        batch_op.drop_index('ix_equipment_devices_device')

    op.drop_table('equipment_devices')
    with op.batch_alter_table('maintenance_plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_maintenance_plans_equipment_type'))
        batch_op.drop_index(batch_op.f('ix_maintenance_plans_equipment_id'))

    op.drop_table('maintenance_plans')
    with op.batch_alter_table('equipment_risks', schema=None) as batch_op:
        batch_op.drop_index('ix_equipment_risks_latest')

    op.drop_table('equipment_risks')
    with op.batch_alter_table('equipment', schema=None) as batch_op:
        batch_op.drop_index('ix_equipment_site_type')

    op.drop_table('equipment')
    op.drop_table('technicians')
