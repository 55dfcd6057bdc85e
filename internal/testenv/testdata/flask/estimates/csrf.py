"""CSRF protection for every POST, after Flask-WTF's CSRFProtect (which is
not packaged in Debian): a raw token kept in the session, a signed copy in
each form's hidden csrf_token field; a POST whose signed token is missing,
expired, forged or not the session's is refused with 400 and Flask-WTF's
own reasons."""

import hashlib
import hmac
import logging
import os

from flask import current_app, request, session
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from werkzeug.exceptions import BadRequest

FIELD = "csrf_token"
TIME_LIMIT = 3600
log = logging.getLogger("estimates.csrf")


class CSRFError(BadRequest):
    description = "CSRF validation failed."


def _serializer():
    return URLSafeTimedSerializer(current_app.secret_key, salt="wtf-csrf-token")


def generate_csrf():
    """The form's token: the session's raw token (made when missing),
    signed with a timestamp."""
    if FIELD not in session:
        session[FIELD] = hashlib.sha1(os.urandom(64)).hexdigest()
    return _serializer().dumps(session[FIELD])


def validate_csrf(data):
    if not data:
        raise CSRFError("The CSRF token is missing.")
    if FIELD not in session:
        raise CSRFError("The CSRF session token is missing.")
    try:
        token = _serializer().loads(data, max_age=TIME_LIMIT)
    except SignatureExpired as e:
        raise CSRFError("The CSRF token has expired.") from e
    except BadData as e:
        raise CSRFError("The CSRF token is invalid.") from e
    if not hmac.compare_digest(session[FIELD], token):
        raise CSRFError("The CSRF tokens do not match.")


def init_app(app):
    app.jinja_env.globals["csrf_token"] = generate_csrf

    @app.before_request
    def protect():
        if request.method != "POST":
            return
        try:
            validate_csrf(request.form.get(FIELD))
        except CSRFError as e:
            log.warning("CSRF validation failed: %s", e.description,
                        extra={"reason": e.description, "path": request.path, "method": request.method})
            raise
