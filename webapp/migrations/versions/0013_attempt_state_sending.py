"""An attempt sent to Juhe is stored as `sending`: release 0.1's `processing` rewritten

Revision ID: 0013
Revises: 0012

Release 0.1 called an attempt whose video was with Juhe `processing`; later releases `sending`,
and read both. One name is kept: an attempt still `processing` (its process died mid-call) becomes
`sending`, and is then released as "sent, charge unknown" like any other (sessions.refresh).

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.execute("UPDATE attempts SET state = 'sending' WHERE state = 'processing'")


def downgrade() -> None:
    """Downgrade schema: nothing to undo (0.1's readers took `sending` too)."""
