"""Best frames sealed at rest in their own table (best_frames); the clear attempts.best_frames_json goes

Revision ID: 0004
Revises: 0003

Frames a database holds in the clear (attempts.best_frames_json) are dropped with the column:
they cannot be sealed here (the key is the application's), and keeping them in the clear is
what this revision ends.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('best_frames',
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('purged_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('attempt_id')
    )
    op.create_index(op.f('ix_best_frames_created_at'), 'best_frames', ['created_at'], unique=False)
    op.create_index(op.f('ix_best_frames_expires_at'), 'best_frames', ['expires_at'], unique=False)
    op.create_index(op.f('ix_best_frames_session_id'), 'best_frames', ['session_id'], unique=False)
    # SQLite (3.35+) and PostgreSQL both drop a column in place: no table copy, so no cascade
    # through the attempts' foreign keys.
    op.drop_column('attempts', 'best_frames_json')


def downgrade() -> None:
    """Downgrade schema (the sealed frames are not brought back into the clear)."""
    op.add_column('attempts', sa.Column('best_frames_json', sa.Text(), nullable=True))
    op.drop_index(op.f('ix_best_frames_session_id'), table_name='best_frames')
    op.drop_index(op.f('ix_best_frames_expires_at'), table_name='best_frames')
    op.drop_index(op.f('ix_best_frames_created_at'), table_name='best_frames')
    op.drop_table('best_frames')
