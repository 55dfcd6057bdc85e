"""SQLAlchemy 1.4: one engine per process with a QueuePool of
DB_POOL_SIZE connections plus DB_MAX_OVERFLOW more, a checkout waiting at
most DB_POOL_TIMEOUT seconds; one scoped session per request (per thread),
removed when the request ends, which returns its connection to the pool."""

from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

engine = None
db_session = scoped_session(sessionmaker(future=True))


def init_app(app):
    global engine
    c = app.config
    engine = create_engine(
        c["DATABASE_URL"],
        future=True,
        pool_size=c["DB_POOL_SIZE"],
        max_overflow=c["DB_MAX_OVERFLOW"],
        pool_timeout=c["DB_POOL_TIMEOUT"],
        pool_recycle=c["DB_POOL_RECYCLE"],
    )
    db_session.configure(bind=engine)

    @app.teardown_appcontext
    def remove_session(exc=None):
        db_session.remove()


def engine_of():
    """The process's engine."""
    return engine
