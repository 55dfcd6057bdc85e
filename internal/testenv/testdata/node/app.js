'use strict';
// The Express application: a login form with a CSRF token, then a
// dashboard, the paginated work items, the cost recap and the cost report,
// each behind the login. Sessions live in Redis; every request is logged
// by pino-http (method, url, statusCode, responseTime) and every error with
// its err (type, message, stack).
const express = require('express');
const session = require('express-session');
const { RedisStore } = require('connect-redis');
const { createClient } = require('redis');
const { rateLimit } = require('express-rate-limit');
const pinoHttp = require('pino-http');

const config = require('./config');
const logger = require('./logger');
const pool = require('./db');
const auth = require('./auth');
const csrf = require('./csrf');
const views = require('./views');
const report = require('./report');

// wrap passes an async handler's rejection to Express' error handlers
// (Express 4 does not await handlers).
const wrap = (fn) => (req, res, next) => fn(req, res, next).catch(next);

// The Redis client as connect-redis' README sets it up: connect in the
// background, report errors; a command sent before the connection is up
// waits in the client's queue, and fails with the server's refusal if the
// server refuses the connection.
function redisClient() {
  const client = createClient({ url: config.redisUrl });
  client.on('error', (err) => logger.error({ err }, 'redis client error'));
  client.connect().catch((err) => logger.error({ err }, 'redis connect failed'));
  return client;
}

function requireLogin(req, res, next) {
  if (!req.session.userId) return res.redirect(302, '/login');
  next();
}

async function fetchRates() {
  if (!config.ratesUrl) return null;
  try {
    const res = await fetch(config.ratesUrl, { signal: AbortSignal.timeout(config.ratesTimeoutMs) });
    if (!res.ok) throw new Error(`rates API: HTTP ${res.status}`);
    return (await res.json()).rates;
  } catch (err) {
    logger.warn({ err }, 'exchange rates unavailable');
    return null;
  }
}

function regenerate(req) {
  return new Promise((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
}

function build() {
  const app = express();
  app.disable('x-powered-by');
  app.use(
    pinoHttp({
      logger,
      customLogLevel: (req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
    }),
  );
  app.use(express.urlencoded({ extended: false, limit: '10kb' }));

  if (config.loginRateLimit > 0) {
    // express-rate-limit's memory store counts per process.
    app.post(
      '/login',
      rateLimit({ windowMs: config.loginRateWindowMs, limit: config.loginRateLimit, standardHeaders: 'draft-8', legacyHeaders: false }),
    );
  }

  app.use(
    session({
      store: new RedisStore({ client: redisClient(), prefix: 'sess:' }),
      name: 'sid',
      secret: config.sessionSecret,
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: config.sessionCookieSecure, maxAge: 3600 * 1000 },
    }),
  );

  app.get('/', (req, res) => res.redirect(302, req.session.userId ? '/dashboard' : '/login'));

  app.get('/login', (req, res) => {
    if (req.session.userId) return res.redirect(302, '/dashboard');
    res.send(views.login(csrf.token(req)));
  });

  app.post(
    '/login',
    csrf.verify,
    wrap(async (req, res) => {
      const user = await auth.check(String(req.body.username || ''), String(req.body.password || ''));
      if (!user) {
        req.log.info({ username: req.body.username }, 'login failed: invalid username or password');
        return res.send(views.login(csrf.token(req), 'Invalid username or password.'));
      }
      await regenerate(req);
      req.session.userId = user.id;
      req.session.username = user.username;
      res.redirect(302, '/dashboard');
    }),
  );

  app.post('/logout', csrf.verify, (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.redirect(302, '/login')));
  });

  // The dashboard checks a client out of the pool for its queries and
  // keeps it, as written, across the call to the exchange-rates API.
  app.get(
    '/dashboard',
    requireLogin,
    wrap(async (req, res) => {
      const client = await pool.connect();
      let broken;
      try {
        const uid = req.session.userId;
        const totals = await client.query(
          'SELECT count(*) AS count, sum(volume) AS volume, sum(volume * unit_price) AS value, max(updated_at) AS updated FROM work_items WHERE owner_id = $1',
          [uid],
        );
        const byStatus = await client.query('SELECT status, count(*) AS n FROM work_items WHERE owner_id = $1 GROUP BY status ORDER BY status', [uid]);
        const logins = await client.query('SELECT attempts FROM daily_logins WHERE day = CURRENT_DATE');
        const rates = await fetchRates();
        res.send(views.dashboard(req.session.username, totals.rows[0], byStatus.rows, logins.rows[0] ? logins.rows[0].attempts : 0, rates));
      } catch (err) {
        broken = err;
        throw err;
      } finally {
        client.release(broken);
      }
    }),
  );

  app.get(
    '/items',
    requireLogin,
    wrap(async (req, res) => {
      const uid = req.session.userId;
      const { rows: count } = await pool.query('SELECT count(*)::int AS n FROM work_items WHERE owner_id = $1', [uid]);
      const pages = Math.max(1, Math.ceil(count[0].n / 10));
      const page = Math.min(pages, Math.max(1, Number.parseInt(req.query.page, 10) || 1));
      const { rows } = await pool.query(
        'SELECT code, title, unit, volume, unit_price, status FROM work_items WHERE owner_id = $1 ORDER BY code LIMIT 10 OFFSET $2',
        [uid, (page - 1) * 10],
      );
      res.send(views.items(req.session.username, rows, page, pages));
    }),
  );

  // The recap: per work item, three correlated subqueries on analysis
  // (labour, material, all), which the index analysis_work_item_idx makes
  // cheap.
  app.get(
    '/recap',
    requireLogin,
    wrap(async (req, res) => {
      const { rows } = await pool.query(
        `SELECT w.code, w.title,
                COALESCE((SELECT sum(a.coefficient * a.price) FROM analysis a WHERE a.work_item_id = w.id AND a.kind = 'labor'), 0) AS labor,
                COALESCE((SELECT sum(a.coefficient * a.price) FROM analysis a WHERE a.work_item_id = w.id AND a.kind = 'material'), 0) AS material,
                COALESCE((SELECT sum(a.coefficient * a.price) FROM analysis a WHERE a.work_item_id = w.id), 0) AS cost
           FROM work_items w
          WHERE w.owner_id = $1
          ORDER BY w.code`,
        [req.session.userId],
      );
      const grand = rows.reduce((s, r) => s + Number(r.cost), 0);
      res.send(views.recap(req.session.username, rows, grand));
    }),
  );

  app.get(
    '/report',
    requireLogin,
    wrap(async (req, res) => {
      const { rows } = await pool.query(
        `SELECT w.code, a.kind, a.component, a.coefficient, a.price
           FROM analysis a JOIN work_items w ON w.id = a.work_item_id
          WHERE w.owner_id = $1
          ORDER BY w.code, a.kind, a.id`,
        [req.session.userId],
      );
      res.send(views.report(req.session.username, report.build(rows)));
    }),
  );

  app.use((req, res) => res.status(404).send(views.error(404, 'Not Found', req.path)));

  // Errors: pino-http logs the request's line with res.err (type, message,
  // stack) at level error (warn for a 4xx).
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    res.err = err;
    if (res.headersSent) return;
    if (err.code === 'EBADCSRFTOKEN') {
      return res.status(403).send(views.error(403, 'Forbidden', err.message));
    }
    res.status(500).send(views.error(500, 'Internal Server Error', 'The server failed to answer; the error is in its log.'));
  });
  return app;
}

function start() {
  const app = build();
  const server = app.listen(config.port, config.host, () => {
    logger.info({ port: config.port, host: config.host }, 'listening');
  });
  server.on('error', (err) => {
    logger.fatal({ err }, 'listen failed');
    console.error(err);
    process.exit(1);
  });
  // Sockets kept alive longer than a load generator's idle connections.
  server.keepAliveTimeout = 65 * 1000;
  server.headersTimeout = 66 * 1000;
  const stop = () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}

module.exports = { build, start };
