'use strict';
// The target's configuration, read once from the environment. Every fault
// mode of stampede's Node reference target is a set of these variables
// (internal/testenv/node.go); the defaults are the libraries' own.

function int(name, def) {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v}: not a number`);
  return n;
}

function bool(name) {
  return /^(1|true|yes|on)$/i.test(process.env[name] || '');
}

module.exports = {
  // Where the server listens.
  host: process.env.BIND_HOST || '127.0.0.1',
  port: int('PORT', 3000),
  // NODE_WORKERS > 1 runs a cluster: a primary process and that many
  // workers sharing the port; otherwise one process serves.
  workers: int('NODE_WORKERS', 1),

  // PostgreSQL: node-postgres reads PGHOST, PGPORT, PGUSER, PGPASSWORD and
  // PGDATABASE itself. Its Pool, per process: max clients, how long a
  // request waits for one (connectionTimeoutMillis; 0, node-postgres'
  // default, waits for ever) and how long an idle client is kept.
  poolMax: int('DB_POOL_MAX', 10),
  poolTimeoutMs: int('DB_POOL_TIMEOUT_MS', 0),
  poolIdleMs: int('DB_IDLE_TIMEOUT_MS', 10000),

  // Sessions in Redis (express-session with connect-redis).
  redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379/1',
  sessionSecret: process.env.SESSION_SECRET || 'stampede-node-target-dev-secret',
  sessionCookieSecure: bool('SESSION_COOKIE_SECURE'),

  // express-rate-limit on POST /login, per client address: at most
  // LOGIN_RATE_LIMIT logins per LOGIN_RATE_WINDOW_MS; 0 turns it off.
  loginRateLimit: int('LOGIN_RATE_LIMIT', 0),
  loginRateWindowMs: int('LOGIN_RATE_WINDOW_MS', 60000),

  // bcrypt's cost for the passwords the seed stores (the login checks a
  // hash at the cost it was made with).
  bcryptCost: int('BCRYPT_COST', 10),
  // Count the day's logins in the same transaction as the password check,
  // the day's row locked (SELECT ... FOR UPDATE) before the hash.
  loginCountInTransaction: bool('LOGIN_COUNT_IN_TRANSACTION'),

  // The exchange-rates API the dashboard calls (empty: none).
  ratesUrl: process.env.RATES_URL || '',
  ratesTimeoutMs: int('RATES_TIMEOUT_MS', 5000),

  // pino's JSON lines go to APP_LOG (default: stdout).
  appLog: process.env.APP_LOG || '',
  logLevel: process.env.LOG_LEVEL || 'info',
};
