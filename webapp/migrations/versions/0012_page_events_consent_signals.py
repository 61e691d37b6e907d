"""The page's milestones (`page_events`), the consent receipt and the consent texts by version,
risk signals on attempts, and a low-score failure's reason in words

Revision ID: 0012
Revises: 0011

Existing sessions have no events and no receipt; existing attempts no signals. An attempt that
failed on a low similarity kept Juhe's reason for the call itself ("成功"); it now says why it
failed, as new ones do (verification._record).

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LOW_SCORE_REASON = "相似度低于通过标准"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'page_events',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('session_id', sa.String(length=40), sa.ForeignKey('sessions.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('name', sa.String(length=24), nullable=False),
        sa.Column('detail', sa.String(length=40), nullable=True),
        sa.Column('browser', sa.String(length=40), nullable=True),
        sa.Column('os', sa.String(length=40), nullable=True),
    )
    op.create_index('ix_page_events_session_id', 'page_events', ['session_id'])
    op.create_index('ix_page_events_at', 'page_events', ['at'])
    op.create_table(
        'consent_texts',
        sa.Column('version', sa.String(length=16), primary_key=True),
        sa.Column('language', sa.String(length=5), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('first_shown_at', sa.DateTime(), nullable=False),
    )
    op.add_column('sessions', sa.Column('consent_json', sa.Text(), nullable=True))
    op.add_column('attempts', sa.Column('signals_json', sa.Text(), nullable=True))
    attempts = sa.table('attempts', sa.column('outcome', sa.String), sa.column('reason', sa.String))
    op.execute(attempts.update().where(attempts.c.outcome == 'low_score').values(reason=LOW_SCORE_REASON))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('attempts') as batch:
        batch.drop_column('signals_json')
    with op.batch_alter_table('sessions') as batch:
        batch.drop_column('consent_json')
    op.drop_table('consent_texts')
    op.drop_index('ix_page_events_at', 'page_events')
    op.drop_index('ix_page_events_session_id', 'page_events')
    op.drop_table('page_events')
