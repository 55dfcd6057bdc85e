'use strict';
// CSRF protection of the app's own (csurf is deprecated): a random token
// kept in the session, put in each form as the hidden input _csrf, and
// compared with the session's on every POST. A mismatch is rejected as
// csurf did: 403, code EBADCSRFTOKEN, "invalid csrf token".
const crypto = require('node:crypto');

class ForbiddenError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'ForbiddenError';
    this.code = code;
    this.status = 403;
  }
}

// token returns the session's token, making one if it has none.
function token(req) {
  if (!req.session.csrfToken) {
    req.session.csrfToken = crypto.randomBytes(24).toString('base64url');
  }
  return req.session.csrfToken;
}

function same(a, b) {
  const x = Buffer.from(String(a || ''));
  const y = Buffer.from(String(b || ''));
  return x.length > 0 && x.length === y.length && crypto.timingSafeEqual(x, y);
}

// verify is the middleware of the POST routes.
function verify(req, res, next) {
  const sent = req.body && req.body._csrf;
  if (!same(sent, req.session && req.session.csrfToken)) {
    return next(new ForbiddenError('invalid csrf token', 'EBADCSRFTOKEN'));
  }
  next();
}

module.exports = { token, verify, ForbiddenError };
