"""Number mode may become action mode when the person's microphone is refused or silent:
whether a session allows it, and when and why it changed

Revision ID: 0008
Revises: 0007

Existing sessions allow it (the setting's default, ACTION_FALLBACK) and have not changed mode.

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('sessions', sa.Column('action_fallback', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column('sessions', sa.Column('requested_mode', sa.String(length=10), nullable=True))
    op.add_column('sessions', sa.Column('mode_changed_at', sa.DateTime(), nullable=True))
    op.add_column('sessions', sa.Column('mode_change_reason', sa.String(length=20), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('sessions') as batch:
        for column in ('mode_change_reason', 'mode_changed_at', 'requested_mode', 'action_fallback'):
            batch.drop_column(column)
