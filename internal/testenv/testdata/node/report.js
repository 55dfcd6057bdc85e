'use strict';
// The cost report: every analysis line of the user's estimate (about
// 1,500), costed with a running total, subtotals per work item and kind,
// and the same lines as CSV for the export. Each amount is formatted with
// Number.prototype.toLocaleString, which builds a new Intl.NumberFormat at
// every call: about 0.1-0.2 s of CPU a report, synchronous, on the event
// loop, while nothing else of the process runs.
const { esc } = require('./views');

const IDR = { style: 'currency', currency: 'IDR' };
const COEF = { minimumFractionDigits: 4, maximumFractionDigits: 4 };

function build(rows) {
  let running = 0;
  const byKind = {};
  const byItem = new Map();
  const lines = [];
  const csv = ['code;kind;component;coefficient;price;cost'];
  for (const r of rows) {
    const coefficient = Number(r.coefficient);
    const price = Number(r.price);
    const cost = Math.round(coefficient * price * 100) / 100;
    running += cost;
    byKind[r.kind] = (byKind[r.kind] || 0) + cost;
    byItem.set(r.code, (byItem.get(r.code) || 0) + cost);
    lines.push(
      `<tr><td>${esc(r.code)}</td><td>${esc(r.kind)}</td><td>${esc(r.component)}</td>` +
        `<td>${coefficient.toLocaleString('id-ID', COEF)}</td><td>${price.toLocaleString('id-ID', IDR)}</td>` +
        `<td>${cost.toLocaleString('id-ID', IDR)}</td><td>${running.toLocaleString('id-ID', IDR)}</td></tr>`,
    );
    csv.push(
      [r.code, r.kind, r.component, coefficient.toLocaleString('id-ID', COEF), price.toLocaleString('id-ID', IDR), cost.toLocaleString('id-ID', IDR)]
        .map((v) => `"${String(v).replace(/"/g, '""')}"`)
        .join(';'),
    );
  }
  const kinds = Object.entries(byKind)
    .map(([k, v]) => `<li>${esc(k)}: ${v.toLocaleString('id-ID', IDR)}</li>`)
    .join('\n');
  const items = [...byItem]
    .map(([code, v]) => `<li>${esc(code)}: ${v.toLocaleString('id-ID', IDR)}</li>`)
    .join('\n');
  return `<p>${rows.length} lines, total ${running.toLocaleString('id-ID', IDR)}.</p>
<h2>By kind</h2>
<ul>
${kinds}
</ul>
<h2>By work item</h2>
<ul>
${items}
</ul>
<h2>Lines</h2>
<table><tr><th>Item</th><th>Kind</th><th>Component</th><th>Coefficient</th><th>Price</th><th>Cost</th><th>Running total</th></tr>
${lines.join('\n')}
</table>
<h2>Export</h2>
<pre>${esc(csv.join('\n'))}</pre>`;
}

module.exports = { build };
