'use strict';
// node seed.js [--users N] [--items N] [--lines N] [--passwords-only]
//
// Creates the schema and seeds the load-test data in bulk SQL: users
// user001..userNNN sharing the password SEED_PASSWORD, their work items, and
// the analysis lines of each item (generate_series, not row by row). The
// password is hashed once with bcrypt at BCRYPT_COST and that hash stored
// for every user. Running it again keeps the rows; --passwords-only only
// stores the password again, hashed at the current cost. It connects with
// node-postgres' PG* variables, to PostgreSQL itself.
const bcrypt = require('bcrypt');
const { Client } = require('pg');
const config = require('./config');

const schema = `
CREATE TABLE IF NOT EXISTS users (
  id serial PRIMARY KEY,
  username text NOT NULL UNIQUE,
  email text NOT NULL,
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_login timestamptz
);
CREATE TABLE IF NOT EXISTS work_items (
  id serial PRIMARY KEY,
  owner_id integer NOT NULL REFERENCES users (id),
  code text NOT NULL,
  title text NOT NULL,
  unit text NOT NULL,
  volume numeric(12, 2) NOT NULL,
  unit_price numeric(14, 2) NOT NULL,
  status text NOT NULL DEFAULT 'draft',
  updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS work_items_owner_code_idx ON work_items (owner_id, code);
CREATE TABLE IF NOT EXISTS analysis (
  id bigserial PRIMARY KEY,
  work_item_id integer NOT NULL REFERENCES work_items (id),
  kind text NOT NULL,
  component text NOT NULL,
  coefficient numeric(10, 4) NOT NULL,
  price numeric(14, 2) NOT NULL
);
-- The recap's subqueries filter on work_item_id; the slow-query mode drops
-- this index by its name.
CREATE INDEX IF NOT EXISTS analysis_work_item_idx ON analysis (work_item_id);
CREATE TABLE IF NOT EXISTS daily_logins (
  day date PRIMARY KEY,
  attempts integer NOT NULL DEFAULT 0
);
`;

function args(argv) {
  const o = { users: 200, items: 20, lines: 75, passwordsOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--passwords-only') o.passwordsOnly = true;
    else if (['--users', '--items', '--lines'].includes(a)) o[a.slice(2)] = Number.parseInt(argv[++i], 10);
    else throw new Error(`seed: unknown argument ${a}`);
  }
  return o;
}

async function main() {
  const o = args(process.argv.slice(2));
  const password = process.env.SEED_PASSWORD;
  if (!password) throw new Error('seed: SEED_PASSWORD is not set');
  const t0 = Date.now();
  const hash = await bcrypt.hash(password, config.bcryptCost);
  const c = new Client({ application_name: 'node-target-seed' });
  await c.connect();
  try {
    await c.query('BEGIN');
    if (!o.passwordsOnly) {
      await c.query(schema);
      await c.query('SELECT setseed(0.42)');
      await c.query(
        `INSERT INTO users (username, email, password_hash)
         SELECT 'user' || lpad(g::text, 3, '0'), 'user' || lpad(g::text, 3, '0') || '@example.test', '!'
           FROM generate_series(1, $1) g
         ON CONFLICT (username) DO NOTHING`,
        [o.users],
      );
      const { rows } = await c.query('SELECT count(*)::int AS n FROM work_items');
      if (rows[0].n === 0) {
        await c.query(
          `INSERT INTO work_items (owner_id, code, title, unit, volume, unit_price, status, updated_at)
           SELECT u.id,
                  'WI-' || lpad(i::text, 4, '0'),
                  (ARRAY['Excavation', 'Concrete slab', 'Brick wall', 'Plastering', 'Roof truss',
                         'Floor tiling', 'Painting', 'Drainage'])[1 + i % 8] || ' ' || i,
                  (ARRAY['m2', 'm3', 'kg', 'ls'])[1 + i % 4],
                  round((1 + random() * 500)::numeric, 2),
                  round((10000 + random() * 990000)::numeric, 2),
                  (ARRAY['draft', 'review', 'final'])[1 + i % 3],
                  now() - make_interval(hours => i)
             FROM users u CROSS JOIN generate_series(1, $1) i
            WHERE u.username LIKE 'user%'`,
          [o.items],
        );
        await c.query(
          `INSERT INTO analysis (work_item_id, kind, component, coefficient, price)
           SELECT w.id,
                  (ARRAY['labor', 'material', 'equipment'])[1 + j % 3],
                  'Component ' || j,
                  round((random() * 3)::numeric, 4),
                  round((1000 + random() * 200000)::numeric, 2)
             FROM work_items w CROSS JOIN generate_series(1, $1) j`,
          [o.lines],
        );
      }
    }
    await c.query('INSERT INTO daily_logins (day, attempts) VALUES (CURRENT_DATE, 0) ON CONFLICT DO NOTHING');
    const up = await c.query("UPDATE users SET password_hash = $1 WHERE username LIKE 'user%'", [hash]);
    await c.query('COMMIT');
    if (!o.passwordsOnly) await c.query('ANALYZE users, work_items, analysis, daily_logins');
    const { rows: n } = await c.query('SELECT (SELECT count(*) FROM work_items)::int AS items, (SELECT count(*) FROM analysis)::int AS lines');
    console.log(
      `seed: ${up.rowCount} users with a bcrypt hash of cost ${config.bcryptCost}, ${n[0].items} work items, ${n[0].lines} analysis lines in ${((Date.now() - t0) / 1000).toFixed(1)}s`,
    );
  } finally {
    await c.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
