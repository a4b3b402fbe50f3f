"""The agent roster: who the 代办员 are, the desks and townships they serve."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.storage.tables import AgentProfile, User


def profile(session: Session, username: str) -> AgentProfile | None:
    """The roster entry of the agent who logs in as `username` (None: not on the roster)."""
    return session.scalar(
        select(AgentProfile).join(User, User.id == AgentProfile.user_id).where(User.username == username)
    )
