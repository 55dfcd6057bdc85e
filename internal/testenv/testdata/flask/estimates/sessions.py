"""Server-side sessions in Redis (redis-py): the cookie carries a random
session id, the session's data is a JSON object at "session:ID" with a TTL.

Flask-Session is not used: Debian's python3-flask-session 0.3 predates
Flask 2.2. This is the small session interface a project writes instead,
after Flask's documented SessionInterface."""

import json
import secrets

import redis
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict


class RedisSession(CallbackDict, SessionMixin):
    def __init__(self, initial=None, sid=None, new=False):
        def on_update(self):
            self.modified = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.new = new
        self.modified = False


class RedisSessionInterface(SessionInterface):
    def __init__(self, url, ttl, prefix="session:"):
        # One pool per process (uWSGI loads the app in each worker); a
        # thread takes a connection from it for each command.
        self.redis = redis.Redis.from_url(url)
        self.ttl = ttl
        self.prefix = prefix

    def open_session(self, app, request):
        sid = request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        if sid:
            raw = self.redis.get(self.prefix + sid)
            if raw is not None:
                return RedisSession(json.loads(raw), sid=sid)
        return RedisSession(sid=secrets.token_urlsafe(32), new=True)

    def save_session(self, app, session, response):
        name = app.config["SESSION_COOKIE_NAME"]
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if not session:
            if session.modified and not session.new:
                self.redis.delete(self.prefix + session.sid)
                response.delete_cookie(name, domain=domain, path=path)
            return
        if not self.should_set_cookie(app, session):
            return
        self.redis.setex(self.prefix + session.sid, self.ttl, json.dumps(dict(session)))
        response.set_cookie(
            name,
            session.sid,
            max_age=self.ttl,
            httponly=self.get_cookie_httponly(app),
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
            domain=domain,
            path=path,
        )

    def regenerate(self, session):
        """Gives the session a new id (after login), dropping the old key."""
        if not session.new:
            self.redis.delete(self.prefix + session.sid)
        session.sid = secrets.token_urlsafe(32)
        session.modified = True
