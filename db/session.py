"""Engine and session factories; callers own the transaction."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_size: int = 5, echo: bool = False) -> Engine:
    """An engine with pre-ping so a restarted PostgreSQL does not break the worker."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        echo=echo,
        future=True,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker that keeps loaded attributes after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached now (worth retrying later).

    OperationalError covers a server that is gone, refusing or restarting; a DBAPIError
    whose connection was invalidated is a connection dropped mid-statement. Anything
    else (bad data, a constraint) will fail again the same way.
    """
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
