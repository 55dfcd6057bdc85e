'use strict';
// node-postgres' Pool, one per process, sized and timed by the config.
const { Pool } = require('pg');
const config = require('./config');
const logger = require('./logger');

const pool = new Pool({
  max: config.poolMax,
  connectionTimeoutMillis: config.poolTimeoutMs,
  idleTimeoutMillis: config.poolIdleMs,
  application_name: 'node-target',
});

// An idle client whose connection breaks (PgBouncer or PostgreSQL closing
// it) is reported here; without a listener the process would crash.
pool.on('error', (err) => logger.error({ err }, 'idle PostgreSQL client failed'));

module.exports = pool;
