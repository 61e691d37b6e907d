"""Console sign-ins kept server-side: signing out (or a key leaving OPERATOR_API_KEYS) ends
them, whatever copies of the cookie exist

Revision ID: 0009
Revises: 0008

No row exists before: whoever was signed in to the console signs in again once.

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'console_sign_ins',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('operator', sa.String(length=40), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_console_sign_ins_operator'), 'console_sign_ins', ['operator'], unique=False)
    op.create_index(op.f('ix_console_sign_ins_expires_at'), 'console_sign_ins', ['expires_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_console_sign_ins_expires_at'), table_name='console_sign_ins')
    op.drop_index(op.f('ix_console_sign_ins_operator'), table_name='console_sign_ins')
    op.drop_table('console_sign_ins')
