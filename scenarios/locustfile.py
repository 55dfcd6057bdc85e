# The seed's locustfile, against the lab: each user logs in the way a browser
# does (GET the form, POST its csrfmiddlewaretoken with login and password),
# then browses the AHSP pages by weight. Endpoint names match stampede's demo
# scenario, so `stampede diagnose --locust PREFIX --log ...` and stampede's
# own run of the same fault can be compared finding for finding.
#
#   stampede lab --preset seed --addr 127.0.0.1:8000 --log-dir logs &
#   stampede lab users --count 100 > users.csv
#   LAB_USERS=users.csv locust --headless -u 100 -r 10 -t 30s \
#       --csv run/locust --csv-full-history --host http://127.0.0.1:8000 \
#       -f scenarios/locustfile.py
#   stampede diagnose --locust run/locust --log app-errors=logs/errors.log \
#       --log pgbouncer=logs/pgbouncer.log --log gunicorn=logs/gunicorn.log
#
# LAB_USERS names the users CSV (header username,password); each virtual user
# takes the next row, as stampede's user_assignment: unique does. LAB_CLIENT=fast
# runs the users as FastHttpUser (geventhttpclient) instead of HttpUser;
# LAB_WAIT=MIN,MAX sets the think time in seconds (default 1,3), as
# scripts/bench-peers does to measure memory per logged-in user. Written for
# Locust 2.x (tested with Debian's 2.12.1).

import csv
import itertools
import os
import re
import threading

from locust import HttpUser, between, task

if os.environ.get("LAB_CLIENT") == "fast":
    from locust import FastHttpUser as _User
else:
    _User = HttpUser
_WAIT = tuple(float(x) for x in os.environ.get("LAB_WAIT", "1,3").split(","))

_rows = []
_path = os.environ.get("LAB_USERS", "users.csv")
with open(_path, newline="", encoding="utf-8") as f:
    _rows = [(r["username"], r["password"]) for r in csv.DictReader(f)]
if not _rows:
    raise SystemExit(f"{_path}: no users")
_next = itertools.cycle(_rows)
_lock = threading.Lock()

_TOKEN = re.compile(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"')
_ERRORS = re.compile(r'<ul class="errorlist[^"]*">(.*?)</ul>', re.S)
_TAGS = re.compile(r"<[^>]+>")


def _login_form(text):
    """The page shows the login form again (a password field)."""
    return 'type="password"' in text or 'name="password"' in text


def _error_text(text):
    m = _ERRORS.search(text)
    if not m:
        return ""
    return " ".join(_TAGS.sub(" ", m.group(1)).split())


class LabUser(_User):
    wait_time = between(*_WAIT)

    def on_start(self):
        with _lock:
            self.username, self.password = next(_next)
        self.logged_in = False
        self.login()

    def login(self):
        with self.client.get("/accounts/login/", name="[AUTH] Login GET", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            m = _TOKEN.search(r.text)
            if not m:
                r.failure("no csrfmiddlewaretoken in the login form")
                return
            token = m.group(1)
        data = {"csrfmiddlewaretoken": token, "login": self.username, "password": self.password}
        headers = {"Referer": self.client.base_url + "/accounts/login/"}
        with self.client.post("/accounts/login/", data=data, headers=headers, name="[AUTH] Login POST",
                              allow_redirects=False, catch_response=True) as r:
            if r.status_code >= 500:
                r.failure(f"login server error: {r.status_code}")
            elif r.status_code == 200 and _login_form(r.text):
                # allauth answers a throttled or rejected login with the form
                # and its error: a failure, not a success.
                msg = _error_text(r.text)
                r.failure("login page returned" + (": " + msg if msg else ""))
            elif r.status_code != 302:
                r.failure(f"login HTTP {r.status_code}")
            else:
                self.logged_in = True

    def page(self, path, name):
        if not self.logged_in:
            self.login()
            return
        with self.client.get(path, name=name, catch_response=True) as r:
            if r.status_code >= 400:
                r.failure(f"HTTP {r.status_code}")
            elif "/accounts/login/" in r.url:
                self.logged_in = False
                r.failure("redirected to login page: session lost")

    @task(5)
    def dashboard(self):
        self.page("/dashboard/", "GET /dashboard/")

    @task(3)
    def pekerjaan(self):
        self.page("/pekerjaan/", "GET /pekerjaan/")

    @task(2)
    def rincian(self):
        n = (hash(self.username) % 50) + 1
        self.page(f"/rincian-ahsp/{n}/", "GET /rincian-ahsp/[id]/")

    @task(1)
    def rekap(self):
        self.page("/rekap-rab/", "GET /rekap-rab/")

    @task(1)
    def audit(self):
        self.page("/audit-trail/", "GET /audit-trail/")

    @task(1)
    def export(self):
        self.page("/export/", "GET /export/")
