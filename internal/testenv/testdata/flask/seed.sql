-- Seed of the reference Flask target, in bulk SQL: the target replaces the
-- users, items and lines placeholders with the numbers of users (user001...),
-- work items per user and analysis lines per item (200 × 20 × 75: 300,000
-- analysis rows). The password hash is '!' (no password) until manage.py
-- set-password stores the mode's hash for every user. Run once on an empty
-- schema.
SELECT setseed(0.42);

INSERT INTO users (username, email, password_hash)
SELECT 'user' || lpad(g::text, 3, '0'), 'user' || lpad(g::text, 3, '0') || '@example.test', '!'
FROM generate_series(1, {{users}}) g;

INSERT INTO work_items (owner_id, code, title, unit, volume, unit_price, status, updated_at)
SELECT u.id,
       'WI-' || lpad(i::text, 4, '0'),
       (ARRAY['Excavation', 'Concrete slab', 'Brick wall', 'Plastering', 'Roof truss',
              'Floor tiling', 'Painting', 'Drainage'])[1 + i % 8] || ' ' || i,
       (ARRAY['m2', 'm3', 'kg', 'ls'])[1 + i % 4],
       round((1 + random() * 500)::numeric, 2),
       round((10000 + random() * 990000)::numeric, 2),
       (ARRAY['draft', 'review', 'final'])[1 + i % 3],
       now() - make_interval(hours => i)
FROM users u CROSS JOIN generate_series(1, {{items}}) i;

INSERT INTO analysis (work_item_id, kind, component, coefficient, price)
SELECT w.id,
       (ARRAY['labor', 'material', 'equipment'])[1 + j % 3],
       'Component ' || j,
       round((random() * 3)::numeric, 4),
       round((1000 + random() * 200000)::numeric, 2)
FROM work_items w CROSS JOIN generate_series(1, {{lines}}) j;

INSERT INTO login_counter (day, attempts) VALUES (CURRENT_DATE, 0) ON CONFLICT DO NOTHING;
