"""estimates: a small construction-cost estimating site (Flask 2.2) behind
a login, on PostgreSQL through PgBouncer with SQLAlchemy, its sessions in
Redis, served by uWSGI behind nginx. Every knob is an environment variable
(config.py)."""

import logging

from flask import Flask

from . import auth, csrf, db, logs, views
from .config import Config
from .sessions import RedisSessionInterface


def create_app():
    app = Flask(__name__)
    app.config.from_object(Config)
    logs.setup(app.config["APP_LOG"])
    # Flask logs unhandled exceptions on app.logger ("estimates"); let them
    # reach the root logger's JSON handler only.
    app.logger.handlers.clear()
    app.logger.propagate = True
    app.logger.setLevel(logging.INFO)

    app.session_interface = RedisSessionInterface(app.config["REDIS_URL"], app.config["SESSION_TTL"])
    db.init_app(app)
    csrf.init_app(app)

    limited = bool(app.config["LOGIN_RATE_LIMIT"])
    app.config["RATELIMIT_ENABLED"] = limited
    app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"] if limited else "memory://"
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    auth.limiter.init_app(app)
    auth.login_manager.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)

    app.wsgi_app = logs.RequestLog(app.wsgi_app)
    return app
