# Migrates and seeds the load-test data in bulk SQL: users user001..userNNN
# sharing one password, their work items, and the analysis lines of each
# item. Run with the app's environment (config/environment.rb), directly
# against PostgreSQL:
#
#   ruby db/setup.rb --password PW [--users 200 --items 20 --lines 75]
#   ruby db/setup.rb --password PW --passwords-only
#
# The password is hashed once, by Devise with the configured cost
# (DEVISE_STRETCHES), and that hash is stored for every user: seeding
# hundreds of users costs one hash even at a high cost. Rows are made with
# generate_series, not row by row through ActiveRecord. Running it again
# keeps the rows and only stores the password again, hashed with the
# current cost; --passwords-only skips the migrations and the rows.
require "optparse"

$boot = Process.clock_gettime(Process::CLOCK_MONOTONIC)

opts = { users: 200, items: 20, lines: 75 }
OptionParser.new do |o|
  o.on("--users N", Integer) { |v| opts[:users] = v }
  o.on("--items N", Integer) { |v| opts[:items] = v }
  o.on("--lines N", Integer) { |v| opts[:lines] = v }
  o.on("--password PW") { |v| opts[:password] = v }
  o.on("--passwords-only") { opts[:passwords_only] = true }
end.parse!
abort "setup: --password is required" unless opts[:password]

require_relative "../config/environment"

t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
conn = ActiveRecord::Base.connection
unless opts[:passwords_only]
  ActiveRecord::Base.logger = nil
  ActiveRecord::MigrationContext.new(File.expand_path("migrate", __dir__), ActiveRecord::SchemaMigration).migrate
end
digest = Devise::Encryptor.digest(User, opts[:password])
updated = 0
ActiveRecord::Base.transaction do
  unless opts[:passwords_only]
    conn.execute("SELECT setseed(0.42)")
    conn.execute(<<~SQL)
      INSERT INTO users (username, email, encrypted_password, created_at, updated_at)
      SELECT 'user' || lpad(g::text, 3, '0'), 'user' || lpad(g::text, 3, '0') || '@example.test', '!', now(), now()
      FROM generate_series(1, #{Integer(opts[:users])}) g
      ON CONFLICT (username) DO NOTHING
    SQL
    if conn.select_value("SELECT count(*) FROM work_items").to_i.zero?
      # Bulk load first, index and foreign key after: one sort and one
      # join instead of 300,000 B-tree inserts and trigger checks.
      conn.execute("DROP INDEX IF EXISTS analyses_work_item_idx")
      conn.remove_foreign_key :analyses, :work_items
      conn.execute(<<~SQL)
        INSERT INTO work_items (user_id, code, title, unit, volume, unit_price, status, updated_at)
        SELECT u.id,
               'WI-' || lpad(i::text, 4, '0'),
               (ARRAY['Excavation', 'Concrete slab', 'Brick wall', 'Plastering', 'Roof truss',
                      'Floor tiling', 'Painting', 'Drainage'])[1 + i % 8] || ' ' || i,
               (ARRAY['m2', 'm3', 'kg', 'ls'])[1 + i % 4],
               round((1 + random() * 500)::numeric, 2),
               round((10000 + random() * 990000)::numeric, 2),
               (ARRAY['draft', 'review', 'final'])[1 + i % 3],
               now() - make_interval(hours => i)
        FROM users u CROSS JOIN generate_series(1, #{Integer(opts[:items])}) i
        WHERE u.username LIKE 'user%'
      SQL
      conn.execute(<<~SQL)
        INSERT INTO analyses (work_item_id, kind, component, coefficient, price)
        SELECT w.id,
               (ARRAY['labor', 'material', 'equipment'])[1 + j % 3],
               'Component ' || j,
               round((random() * 3)::numeric, 4),
               round((1000 + random() * 200000)::numeric, 2)
        FROM work_items w CROSS JOIN generate_series(1, #{Integer(opts[:lines])}) j
      SQL
      conn.execute("CREATE INDEX analyses_work_item_idx ON analyses (work_item_id)")
      conn.add_foreign_key :analyses, :work_items
    end
    conn.execute("INSERT INTO daily_logins (day, attempts) VALUES ((now() AT TIME ZONE 'UTC')::date, 0) ON CONFLICT DO NOTHING")
  end
  updated = conn.update("UPDATE users SET encrypted_password = #{conn.quote(digest)} WHERE username LIKE 'user%'")
end
conn.execute("ANALYZE users, work_items, analyses, daily_logins") unless opts[:passwords_only]
cost = BCrypt::Password.new(digest).cost
puts format("setup: %d users with a bcrypt hash of cost %d in %.1fs (Rails loaded in %.1fs)", updated, cost, Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0, t0 - $boot)
