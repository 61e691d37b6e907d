"""Challenges say when they stopped being usable (challenges.finished_at), instead of having
their expires_at moved back to the moment they were used or replaced

Revision ID: 0006
Revises: 0005

Existing rows: a used challenge finished when it was used (used_at). An unused one was replaced
when the session drew the next challenge, and its expires_at was then set to that moment, which
is the next challenge's issued_at: where a later challenge of the same session was issued at
exactly its expires_at, it finished then. Any other unused challenge simply expired (or is still
open); it keeps finished_at NULL.

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('challenges', sa.Column('finished_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE challenges SET finished_at = used_at WHERE used_at IS NOT NULL")
    op.execute(
        "UPDATE challenges SET finished_at = expires_at "
        "WHERE used_at IS NULL AND EXISTS (SELECT 1 FROM challenges AS later "
        "WHERE later.session_id = challenges.session_id AND later.id <> challenges.id "
        "AND later.issued_at = challenges.expires_at)")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('challenges', 'finished_at')
