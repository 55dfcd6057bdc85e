'use strict';
// The password check, and the count of the day's logins shown on the
// dashboard. bcrypt.compare runs on libuv's thread pool (UV_THREADPOOL_SIZE,
// 4 threads by default), not on the event loop.
const bcrypt = require('bcrypt');
const pool = require('./db');
const config = require('./config');

const findUser = 'SELECT id, username, password_hash FROM users WHERE username = $1';

// check returns the user whose username and password match, or null.
async function check(username, password) {
  if (config.loginCountInTransaction) return checkCounted(username, password);
  const { rows } = await pool.query(findUser, [username]);
  const user = rows[0];
  if (!user || !(await bcrypt.compare(password, user.password_hash))) return null;
  await pool.query(
    'INSERT INTO daily_logins (day, attempts) VALUES (CURRENT_DATE, 1) ON CONFLICT (day) DO UPDATE SET attempts = daily_logins.attempts + 1',
  );
  await pool.query('UPDATE users SET last_login = now() WHERE id = $1', [user.id]);
  return user;
}

// checkCounted counts the attempt and checks the password in one
// transaction: the day's row is locked from the SELECT ... FOR UPDATE to
// the COMMIT, across the hash.
async function checkCounted(username, password) {
  const client = await pool.connect();
  let broken;
  try {
    await client.query('BEGIN');
    await client.query('SELECT attempts FROM daily_logins WHERE day = CURRENT_DATE FOR UPDATE');
    const { rows } = await client.query(findUser, [username]);
    const user = rows[0];
    const ok = user && (await bcrypt.compare(password, user.password_hash));
    await client.query('UPDATE daily_logins SET attempts = attempts + 1 WHERE day = CURRENT_DATE');
    if (ok) await client.query('UPDATE users SET last_login = now() WHERE id = $1', [user.id]);
    await client.query('COMMIT');
    return ok ? user : null;
  } catch (err) {
    // A client whose ROLLBACK fails is broken: release(err) destroys it.
    await client.query('ROLLBACK').catch((e) => {
      broken = e;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

module.exports = { check };
