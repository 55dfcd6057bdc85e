'use strict';
// The pages, as template literals with every value escaped.

const money = new Intl.NumberFormat('id-ID', { style: 'currency', currency: 'IDR' });
const number = new Intl.NumberFormat('id-ID', { maximumFractionDigits: 2 });

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function layout(title, body, user) {
  const nav = user
    ? `<nav><a href="/dashboard">Dashboard</a> · <a href="/items">Work items</a> · <a href="/recap">Recap</a> · <a href="/report">Report</a> · ${esc(user)}</nav>`
    : '';
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(title)} · Estimates</title></head>
<body>
${nav}
<main>
<h1>${esc(title)}</h1>
${body}
</main>
</body>
</html>
`;
}

function login(csrfToken, error) {
  const alert = error ? `<div class="alert alert-danger" role="alert">${esc(error)}</div>\n` : '';
  return layout(
    'Sign in',
    `${alert}<form method="post" action="/login">
  <input type="hidden" name="_csrf" value="${esc(csrfToken)}">
  <p><label>Username <input name="username" autocomplete="username" required></label></p>
  <p><label>Password <input type="password" name="password" autocomplete="current-password" required></label></p>
  <p><button type="submit">Sign in</button></p>
</form>`,
  );
}

function dashboard(user, totals, byStatus, logins, rates) {
  const rows = byStatus.map((s) => `<tr><td>${esc(s.status)}</td><td>${esc(s.n)}</td></tr>`).join('\n');
  const value = Number(totals.value || 0);
  const fx = rates
    ? Object.entries(rates)
        .map(([cur, r]) => `<li>${esc(cur)} ${esc(number.format(value * r))}</li>`)
        .join('\n')
    : '<li>exchange rates unavailable</li>';
  return layout(
    'Dashboard',
    `<p>${esc(totals.count)} work items, volume ${esc(number.format(Number(totals.volume || 0)))}, value ${esc(money.format(value))}.</p>
<p>Last update: ${esc(totals.updated ? new Date(totals.updated).toISOString() : '-')}. Logins today: ${esc(logins)}.</p>
<table><tr><th>Status</th><th>Items</th></tr>
${rows}
</table>
<h2>Value in other currencies</h2>
<ul>
${fx}
</ul>`,
    user,
  );
}

function items(user, rows, page, pages) {
  const body = rows
    .map(
      (w) =>
        `<tr><td>${esc(w.code)}</td><td>${esc(w.title)}</td><td>${esc(number.format(Number(w.volume)))} ${esc(w.unit)}</td><td>${esc(money.format(Number(w.unit_price)))}</td><td>${esc(w.status)}</td></tr>`,
    )
    .join('\n');
  const prev = page > 1 ? `<a href="/items?page=${page - 1}">previous</a>` : '';
  const next = page < pages ? `<a href="/items?page=${page + 1}">next</a>` : '';
  return layout(
    'Work items',
    `<table><tr><th>Code</th><th>Title</th><th>Volume</th><th>Unit price</th><th>Status</th></tr>
${body}
</table>
<p>Page ${page} of ${pages} ${prev} ${next}</p>`,
    user,
  );
}

function recap(user, rows, grand) {
  const body = rows
    .map(
      (r) =>
        `<tr><td>${esc(r.code)}</td><td>${esc(r.title)}</td><td>${esc(money.format(Number(r.labor)))}</td><td>${esc(money.format(Number(r.material)))}</td><td>${esc(money.format(Number(r.cost)))}</td></tr>`,
    )
    .join('\n');
  return layout(
    'Cost recap',
    `<table><tr><th>Code</th><th>Work item</th><th>Labour</th><th>Material</th><th>Cost</th></tr>
${body}
</table>
<p>Total: ${esc(money.format(grand))}</p>`,
    user,
  );
}

function report(user, html) {
  return layout('Cost report', html, user);
}

function error(status, title, message) {
  return layout(`${status} ${title}`, `<p>${esc(message)}</p>`);
}

module.exports = { esc, layout, login, dashboard, items, recap, report, error };
