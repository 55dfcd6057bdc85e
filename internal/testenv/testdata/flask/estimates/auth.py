"""Login and logout (Flask-Login), with the login POST rate-limited by
Flask-Limiter when LOGIN_RATE_LIMIT is set, and every attempt counted in
the day's login_counter row."""

import datetime

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, login_required, login_user, logout_user
from sqlalchemy import select, text
from werkzeug.security import check_password_hash, generate_password_hash

from .db import db_session, engine_of
from .models import LoginCounter, User

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
# The client's address as the app sees it: behind nginx, nginx's own.
limiter = Limiter(get_remote_address)


def hash_password(password):
    """A new hash of password with the configured method."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


@login_manager.user_loader
def load_user(user_id):
    return db_session.get(User, int(user_id))


def count_attempt():
    """Adds one to today's login attempts. In the login's own transaction
    (LOGIN_COUNTER_IN_TRANSACTION) the row stays locked until that
    transaction ends, after the password check; otherwise in a short
    transaction of its own."""
    today = datetime.date.today()
    if current_app.config["LOGIN_COUNTER_IN_TRANSACTION"]:
        row = db_session.execute(
            select(LoginCounter).where(LoginCounter.day == today).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            db_session.add(LoginCounter(day=today, attempts=1))
        else:
            row.attempts += 1
        return
    with engine_of().begin() as c:
        c.execute(
            text("INSERT INTO login_counter (day, attempts) VALUES (:d, 1) "
                 "ON CONFLICT (day) DO UPDATE SET attempts = login_counter.attempts + 1"),
            {"d": today},
        )


def _login_limit():
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        count_attempt()
        user = db_session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is not None and user.active and check_password_hash(user.password_hash, password):
            db_session.commit()
            current_app.session_interface.regenerate(session)
            login_user(user)
            nxt = request.args.get("next", "")
            if not nxt.startswith("/") or nxt.startswith("//"):
                nxt = url_for("views.dashboard")
            return redirect(nxt)
        db_session.commit()
        error = "Invalid username or password."
    return render_template("login.html", error=error, username=request.form.get("username", ""))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
