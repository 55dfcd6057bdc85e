'use strict';
// pino, one JSON line per event, appended to APP_LOG (several cluster
// workers append to the same file; each line is one write). Cookies and
// Set-Cookie headers are redacted.
const pino = require('pino');
const config = require('./config');

const dest = config.appLog
  ? pino.destination({ dest: config.appLog, append: true, sync: true })
  : pino.destination(1);

module.exports = pino(
  {
    level: config.logLevel,
    redact: ['req.headers.cookie', 'req.headers.authorization', 'res.headers["set-cookie"]'],
  },
  dest,
);
