"""Seeds the load-test data in bulk SQL: users user001..userNNN sharing one
password, their work items, and the analysis lines of each item.

The password is hashed once, with the first of PASSWORD_HASHERS (the hasher
the running site will check it with), and that hash is stored for every
user: seeding hundreds of users costs one hash even at a million PBKDF2
iterations. Rows are made with generate_series, not row by row through the
ORM. Running it again keeps the rows and only stores the password again,
hashed with the current hasher; --passwords-only does just that.
"""
import time

from django.contrib.auth.hashers import identify_hasher, make_password
from django.core.management.base import BaseCommand
from django.db import connection, transaction


class Command(BaseCommand):
    help = "Seed users, work items and analysis lines for load tests (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=200, help="users user001..userNNN")
        parser.add_argument("--items", type=int, default=20, help="work items per user")
        parser.add_argument("--lines", type=int, default=75, help="analysis lines per work item")
        parser.add_argument("--password", required=True, help="the password of every seeded user")
        parser.add_argument("--passwords-only", action="store_true", help="only store the password again")

    def handle(self, *args, **o):
        t0 = time.monotonic()
        encoded = make_password(o["password"])
        hasher = identify_hasher(encoded)
        summary = hasher.safe_summary(encoded)
        cost = summary.get("iterations", "-")
        with transaction.atomic(), connection.cursor() as c:
            if not o["passwords_only"]:
                self.seed_rows(c, o["users"], o["items"], o["lines"])
            c.execute("UPDATE auth_user SET password = %s WHERE username LIKE 'user%%'", [encoded])
            updated = c.rowcount
        if not o["passwords_only"]:
            with connection.cursor() as c:
                c.execute("ANALYZE auth_user, work_workitem, work_analysis, work_dailylogins")
        self.stdout.write(
            f"seed: {updated} users with a {hasher.algorithm} hash (iterations {cost}) in {time.monotonic() - t0:.1f}s"
        )

    def seed_rows(self, c, users, items, lines):
        c.execute("SELECT setseed(0.42)")
        c.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                   email, is_staff, is_active, date_joined)
            SELECT '!', false, 'user' || lpad(g::text, 3, '0'), '', '',
                   'user' || lpad(g::text, 3, '0') || '@example.test', false, true, now()
            FROM generate_series(1, %s) g
            ON CONFLICT (username) DO NOTHING
            """,
            [users],
        )
        c.execute("SELECT count(*) FROM work_workitem")
        if c.fetchone()[0] > 0:
            return
        c.execute(
            """
            INSERT INTO work_workitem (owner_id, code, title, unit, volume, unit_price, status, updated_at)
            SELECT u.id,
                   'WI-' || lpad(i::text, 4, '0'),
                   (ARRAY['Excavation', 'Concrete slab', 'Brick wall', 'Plastering', 'Roof truss',
                          'Floor tiling', 'Painting', 'Drainage'])[1 + i %% 8] || ' ' || i,
                   (ARRAY['m2', 'm3', 'kg', 'ls'])[1 + i %% 4],
                   round((1 + random() * 500)::numeric, 2),
                   round((10000 + random() * 990000)::numeric, 2),
                   (ARRAY['draft', 'review', 'final'])[1 + i %% 3],
                   now() - make_interval(hours => i)
            FROM auth_user u CROSS JOIN generate_series(1, %s) i
            WHERE u.username LIKE 'user%%'
            """,
            [items],
        )
        c.execute(
            """
            INSERT INTO work_analysis (work_item_id, kind, component, coefficient, price)
            SELECT w.id,
                   (ARRAY['labor', 'material', 'equipment'])[1 + j %% 3],
                   'Component ' || j,
                   round((random() * 3)::numeric, 4),
                   round((1000 + random() * 200000)::numeric, 2)
            FROM work_workitem w CROSS JOIN generate_series(1, %s) j
            """,
            [lines],
        )
        c.execute("INSERT INTO work_dailylogins (day, attempts) VALUES (CURRENT_DATE, 0) ON CONFLICT DO NOTHING")
