# Locust script for the reference Flask target, the way a team would write it: each user
# GETs the login form, POSTs it with the form's csrf_token, and counts a login page that
# comes back (HTTP 200 with the form) as a failure with the page's own error text; then it
# browses the dashboard, the work-item list and the recap, and counts a page that lands on
# the login form as "bounced to login page".
#
#   go run ./internal/testenv/cmd/reftarget --stack flask --mode healthy   # prints the command
#   FLASK_USERS=users.csv locust -f internal/testenv/testdata/flask/locustfile.py \
#       --headless -u 10 -r 2 -t 20s --host http://127.0.0.1:PORT --csv run/locust --csv-full-history
#   stampede diagnose --locust run/locust --log app=LOGDIR/app.log --log access=LOGDIR/access.log ...
#
# FLASK_USERS names the users CSV (header username,password); the users take its rows in
# turn, so a file with fewer rows than users makes them share accounts. Endpoint names match
# scenario.yaml. Written for Locust 2.x (Debian's 2.12.1).

import csv
import html
import itertools
import os
import re
import threading

from locust import HttpUser, between, task

_path = os.environ.get("FLASK_USERS", "users.csv")
with open(_path, newline="", encoding="utf-8") as f:
    _rows = [(r["username"], r["password"]) for r in csv.DictReader(f)]
if not _rows:
    raise SystemExit(f"{_path}: no users")
_next = itertools.cycle(_rows)
_lock = threading.Lock()

_TOKEN = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
_ERRORS = re.compile(r'<ul class="errors[^"]*">(.*?)</ul>', re.S)
_PARA = re.compile(r"<h1>(.*?)</h1>\s*<p>(.*?)</p>", re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_TAGS = re.compile(r"<[^>]+>")

LOGIN = "/login"


def _text(s):
    return html.unescape(" ".join(_TAGS.sub(" ", s).split()))


def _login_form(body):
    """The page shows the login form (a password field)."""
    return 'type="password"' in body or 'name="password"' in body


def _why(body):
    """The page's own words: a form error, or an error page's heading."""
    m = _ERRORS.search(body)
    if m:
        return _text(m.group(1))
    m = _PARA.search(body)
    if m:
        return _text(m.group(1) + ": " + m.group(2))
    m = _TITLE.search(body)
    return _text(m.group(1)) if m else ""


class FlaskUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self):
        with _lock:
            self.username, self.password = next(_next)
        self.logged_in = False
        self.login()

    def login(self):
        with self.client.get(LOGIN, name="[AUTH] Login GET", catch_response=True) as r:
            if r.status_code != 200:
                msg = _why(r.text)
                r.failure(f"HTTP {r.status_code}" + (": " + msg if msg else ""))
                return
            m = _TOKEN.search(r.text)
            if not m:
                r.failure("no csrf_token in the login form")
                return
            token = m.group(1)
        data = {"csrf_token": token, "username": self.username, "password": self.password}
        with self.client.post(LOGIN, data=data, name="[AUTH] Login POST",
                              allow_redirects=False, catch_response=True) as r:
            if r.status_code >= 500:
                msg = _why(r.text)
                r.failure(f"login server error: {r.status_code}" + (": " + msg if msg else ""))
            elif r.status_code == 200 and _login_form(r.text):
                # The app answers a refused login with the form and its error: a failure,
                # not a success.
                msg = _why(r.text)
                r.failure("login page returned" + (": " + msg if msg else ""))
            elif r.status_code != 302:
                msg = _why(r.text)
                r.failure(f"login HTTP {r.status_code}" + (": " + msg if msg else ""))
            elif LOGIN in r.headers.get("Location", "").split("?")[0]:
                r.failure("login redirected back to the login page")
            else:
                self.logged_in = True

    def page(self, path, name):
        if not self.logged_in:
            self.login()
            return
        with self.client.get(path, name=name, catch_response=True) as r:
            if r.status_code >= 400:
                msg = _why(r.text)
                r.failure(f"HTTP {r.status_code}" + (": " + msg if msg else ""))
            elif LOGIN in r.url and _login_form(r.text):
                self.logged_in = False
                r.failure("bounced to login page")

    @task(5)
    def dashboard(self):
        self.page("/dashboard", "GET /dashboard")

    @task(3)
    def items(self):
        self.page("/items", "GET /items")
        self.page("/items?page=2", "GET /items?page=2")

    @task(1)
    def recap(self):
        self.page("/recap", "GET /recap")
