"""Settings of the estimates app, from the environment, the way it is
deployed: stampede's test harness (internal/testenv/flask.go) sets them per
fault mode. The defaults are a sound single-host setup."""

import os


def env(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


def env_int(name, default):
    v = os.environ.get(name)
    return default if v is None or v == "" else int(v)


def env_float(name, default):
    v = os.environ.get(name)
    return default if v is None or v == "" else float(v)


class Config:
    SECRET_KEY = env("SECRET_KEY", "estimates-not-secret-only-for-local-load-tests")

    # PostgreSQL (normally through PgBouncer) with SQLAlchemy's QueuePool:
    # each uWSGI process keeps its own pool.
    DATABASE_URL = env("DATABASE_URL", "postgresql+psycopg2://app@127.0.0.1:5432/app")
    DB_POOL_SIZE = env_int("DB_POOL_SIZE", 5)
    DB_MAX_OVERFLOW = env_int("DB_MAX_OVERFLOW", 10)
    DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 30)
    DB_POOL_RECYCLE = env_int("DB_POOL_RECYCLE", -1)

    # Server-side sessions in Redis; the cookie holds the session id only.
    REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
    SESSION_COOKIE_NAME = "session"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE")
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_TTL = env_int("SESSION_TTL", 3600)

    # Werkzeug's password hashing, "pbkdf2:sha256:ITERATIONS" (werkzeug 2.2
    # defaults to 260,000 iterations). The stored hashes are made with it.
    PASSWORD_HASH_METHOD = env("PASSWORD_HASH_METHOD", "pbkdf2:sha256")

    # Login attempts are counted per day in one row. With the lock held
    # (LOGIN_COUNTER_IN_TRANSACTION), the row is locked FOR UPDATE in the
    # login's own transaction and kept until it commits, after the password
    # check; otherwise it is updated in a short transaction of its own.
    LOGIN_COUNTER_IN_TRANSACTION = env_bool("LOGIN_COUNTER_IN_TRANSACTION")

    # Flask-Limiter on the login POST, e.g. "5 per minute"; empty: off.
    # Its counters live in Redis, shared by every uWSGI process.
    LOGIN_RATE_LIMIT = env("LOGIN_RATE_LIMIT")

    # The exchange-rates API the dashboard shows rates from.
    RATES_URL = env("RATES_URL")
    RATES_TIMEOUT = env_float("RATES_TIMEOUT", 5)

    # The JSON log (requests and errors), one object a line.
    APP_LOG = env("APP_LOG", "-")
