# Locust script for the reference Node.js (Express) target, the way a team would write it: each
# user GETs the login form, POSTs it with its _csrf token, and counts a login page that comes
# back (HTTP 200 with the form and its alert) as a failure with the page's own message; then it
# browses the dashboard, the work-item list, the recap and the report, and counts a page that
# lands on the login form as "bounced to login page".
#
#   go run ./internal/testenv/cmd/reftarget --stack node --mode healthy   # prints the exact command
#   NODE_USERS=users.csv locust -f internal/testenv/testdata/node/locustfile.py \
#       --headless -u 10 -r 2 -t 20s --host http://127.0.0.1:PORT --csv run/locust --csv-full-history
#   stampede diagnose --locust run/locust --log app=LOGDIR/app.log --log node=LOGDIR/node.log ...
#
# NODE_USERS names the users CSV (header username,password); the users take its rows in turn,
# so a file with fewer rows than users makes them share accounts. Endpoint names match
# scenario.yaml. Written for Locust 2.x (Debian's 2.12.1).

import csv
import html
import itertools
import os
import re
import threading

from locust import HttpUser, between, task

_path = os.environ.get("NODE_USERS", "users.csv")
with open(_path, newline="", encoding="utf-8") as f:
    _rows = [(r["username"], r["password"]) for r in csv.DictReader(f)]
if not _rows:
    raise SystemExit(f"{_path}: no users")
_next = itertools.cycle(_rows)
_lock = threading.Lock()

_TOKEN = re.compile(r'name="_csrf"\s+value="([^"]+)"')
_ALERT = re.compile(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', re.S)
_PARA = re.compile(r"<h1>(.*?)</h1>\s*<p>(.*?)</p>", re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_TAGS = re.compile(r"<[^>]+>")

LOGIN = "/login"


def _text(s):
    return html.unescape(" ".join(_TAGS.sub(" ", s).split()))


def _login_form(body):
    """The page shows the login form (a password field)."""
    return 'type="password"' in body


def _why(body):
    """The page's own words: the form's alert, an error page's heading and
    text, or a short plain-text body (express-rate-limit's message)."""
    m = _ALERT.search(body)
    if m:
        return _text(m.group(1))
    m = _PARA.search(body)
    if m:
        return _text(m.group(1) + ": " + m.group(2))
    m = _TITLE.search(body)
    if m:
        return _text(m.group(1))
    body = body.strip()
    return body if body and len(body) < 120 and "<" not in body else ""


class NodeUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self):
        with _lock:
            self.username, self.password = next(_next)
        self.logged_in = False
        self.login()

    def login(self):
        with self.client.get(LOGIN, name="[AUTH] Login GET", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            m = _TOKEN.search(r.text)
            if not m:
                r.failure("no _csrf token in the login form")
                return
            token = html.unescape(m.group(1))
        data = {"_csrf": token, "username": self.username, "password": self.password}
        with self.client.post(LOGIN, data=data, name="[AUTH] Login POST",
                              allow_redirects=False, catch_response=True) as r:
            if r.status_code >= 500:
                r.failure(f"login server error: {r.status_code}")
            elif r.status_code == 200 and _login_form(r.text):
                # The app answers a refused login with the form and its alert: a failure,
                # not a success.
                msg = _why(r.text)
                r.failure("login page returned" + (": " + msg if msg else ""))
            elif r.status_code != 302:
                msg = _why(r.text)
                r.failure(f"login HTTP {r.status_code}" + (": " + msg if msg else ""))
            elif r.headers.get("Location", "").startswith(LOGIN):
                r.failure("login redirected back to the login page")
            else:
                self.logged_in = True

    def page(self, path, name):
        if not self.logged_in:
            self.login()
            return
        with self.client.get(path, name=name, catch_response=True) as r:
            if r.status_code >= 400:
                r.failure(f"HTTP {r.status_code}")
            elif r.url.split("?")[0].endswith(LOGIN) and _login_form(r.text):
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

    @task(1)
    def report(self):
        self.page("/report", "GET /report")
