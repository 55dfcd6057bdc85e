# Locust script for the reference Rails target, the way a team would write it: each user GETs
# Devise's sign-in form, POSTs it with its authenticity_token, and counts a sign-in page that
# comes back (HTTP 200 with the form and Devise's flash) as a failure with the page's own
# message; then it browses the dashboard, the work-item list, the recap and the report, and
# counts a page that lands on the sign-in form as "bounced to login page".
#
#   go run ./internal/testenv/cmd/reftarget --stack rails --mode healthy   # prints the exact command
#   RAILS_USERS=users.csv locust -f internal/testenv/testdata/rails/locustfile.py \
#       --headless -u 10 -r 2 -t 20s --host http://127.0.0.1:PORT --csv run/locust --csv-full-history
#   stampede diagnose --locust run/locust --log rails=LOGDIR/production.log ...
#
# RAILS_USERS names the users CSV (header username,password); the users take its rows in turn,
# so a file with fewer rows than users makes them share accounts. Endpoint names match
# scenario.yaml. Written for Locust 2.x (Debian's 2.12.1).

import csv
import html
import itertools
import os
import re
import threading

from locust import HttpUser, between, task

_path = os.environ.get("RAILS_USERS", "users.csv")
with open(_path, newline="", encoding="utf-8") as f:
    _rows = [(r["username"], r["password"]) for r in csv.DictReader(f)]
if not _rows:
    raise SystemExit(f"{_path}: no users")
_next = itertools.cycle(_rows)
_lock = threading.Lock()

_TOKEN = re.compile(r'name="authenticity_token"\s+value="([^"]+)"')
_FLASH = re.compile(r'<p class="flash-(?:alert|error)">(.*?)</p>', re.S)
_HEAD = re.compile(r"<h1>(.*?)</h1>", re.S)
_TAGS = re.compile(r"<[^>]+>")

LOGIN = "/users/sign_in"


def _text(s):
    return html.unescape(" ".join(_TAGS.sub(" ", s).split()))


def _login_form(body):
    """The page shows the sign-in form (a password field)."""
    return 'type="password"' in body


def _why(body):
    """The page's own words: Devise's flash, an error page's heading, or a
    short plain-text body (rack-attack's "Retry later")."""
    m = _FLASH.search(body)
    if m:
        return _text(m.group(1))
    m = _HEAD.search(body)
    if m:
        return _text(m.group(1))
    body = body.strip()
    return body if body and len(body) < 80 and "<" not in body else ""


class RailsUser(HttpUser):
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
                r.failure("no authenticity_token in the sign-in form")
                return
            token = html.unescape(m.group(1))
        data = {"authenticity_token": token, "user[login]": self.username,
                "user[password]": self.password, "commit": "Sign in"}
        with self.client.post(LOGIN, data=data, name="[AUTH] Login POST",
                              allow_redirects=False, catch_response=True) as r:
            if r.status_code >= 500:
                r.failure(f"login server error: {r.status_code}")
            elif r.status_code == 200 and _login_form(r.text):
                # Devise answers a refused sign-in with the form and its flash: a failure,
                # not a success.
                msg = _why(r.text)
                r.failure("login page returned" + (": " + msg if msg else ""))
            elif r.status_code != 302:
                msg = _why(r.text)
                r.failure(f"login HTTP {r.status_code}" + (": " + msg if msg else ""))
            elif LOGIN in r.headers.get("Location", ""):
                r.failure("login redirected back to the sign-in page")
            else:
                self.logged_in = True

    def page(self, path, name):
        if not self.logged_in:
            self.login()
            return
        with self.client.get(path, name=name, catch_response=True) as r:
            if r.status_code >= 400:
                r.failure(f"HTTP {r.status_code}")
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

    @task(1)
    def report(self):
        self.page("/report", "GET /report")
