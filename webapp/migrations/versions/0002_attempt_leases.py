"""Attempts carry a lease (lease_until, owner) renewed by the process working on them

Revision ID: 0002
Revises: 0001

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('attempts', sa.Column('lease_until', sa.DateTime(), nullable=True))
    op.add_column('attempts', sa.Column('owner', sa.String(length=80), nullable=True))
    op.create_index(op.f('ix_attempts_state'), 'attempts', ['state'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_attempts_state'), table_name='attempts')
    op.drop_column('attempts', 'owner')
    op.drop_column('attempts', 'lease_until')
