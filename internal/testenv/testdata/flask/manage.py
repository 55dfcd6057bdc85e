"""Maintenance commands of the estimates app.

    SEED_PASSWORD=PW python3 manage.py set-password --password-env SEED_PASSWORD

stores PW (read from the environment variable named, not from the command
line, where any user's ps could see it), hashed once with PASSWORD_HASH_METHOD (the method the running
site checks and makes hashes with), as every seeded user's password: the
users of a load test share one password, and seeding hundreds of them costs
one hash even at a million PBKDF2 iterations. DATABASE_URL names the
database (PostgreSQL itself, not the bouncer)."""

import argparse
import os
import sys
import time

from sqlalchemy import create_engine, text
from werkzeug.security import generate_password_hash

from estimates.config import Config


def set_password(password):
    t0 = time.monotonic()
    method = Config.PASSWORD_HASH_METHOD
    encoded = generate_password_hash(password, method=method)
    engine = create_engine(Config.DATABASE_URL, future=True)
    with engine.begin() as c:
        n = c.execute(text("UPDATE users SET password_hash = :h WHERE username LIKE 'user%'"), {"h": encoded}).rowcount
    engine.dispose()
    print(f"set-password: {n} users with a {encoded.split('$', 1)[0]} hash in {time.monotonic() - t0:.1f}s")


def main(argv):
    p = argparse.ArgumentParser(prog="manage.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("set-password", help="store the seeded users' password, hashed with the configured method")
    sp.add_argument("--password-env", required=True, metavar="NAME", help="the environment variable holding the password")
    a = p.parse_args(argv)
    if a.cmd == "set-password":
        password = os.environ.get(a.password_env, "")
        if not password:
            p.error(f"set-password: ${a.password_env} is empty")
        set_password(password)


if __name__ == "__main__":
    main(sys.argv[1:])
