"""A queued video is stored as it is, not compressed (PostgreSQL: STORAGE EXTERNAL)

Revision ID: 0007
Revises: 0006

A normalised video (H.264, up to 6 MB) does not compress; PostgreSQL still tried, with pglz, on
every one: about 30 ms of the server's CPU per 1.6 MB video, put in and read back, of the 48 ms
its whole handover took (measured by bench/load.py's run, see README "Load"). Out of line and
uncompressed, it takes 18 ms. SQLite has no such setting: nothing changes there.

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE queued_videos ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE queued_videos ALTER COLUMN data SET STORAGE EXTENDED")
