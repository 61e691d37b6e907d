"""What the capture page's own check saw during a recording (`page_checks` on an attempt)

Revision ID: 0011
Revises: 0010

Existing attempts have none, as do videos sent through the operator API.

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('attempts', sa.Column('page_checks_json', sa.Text(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('attempts') as batch:
        batch.drop_column('page_checks_json')
