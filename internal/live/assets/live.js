/* stampede live page: follows a running load test over Server-Sent Events
   (api/events: a snapshot, then an update a second), draws its per-second
   columns with uPlot as report.html does, and sends the load controls to
   api/load and api/stop. Text from the run is only ever set with
   textContent. */
(function () {
  "use strict";
  var root = document.documentElement;
  var nErrors = 0;
  function noteError(msg) {
    nErrors++;
    root.setAttribute("data-js-errors", String(nErrors));
    root.setAttribute("data-js-error", String(msg).slice(0, 300));
  }
  window.addEventListener("error", function (e) { noteError(e.message || e); });
  window.addEventListener("unhandledrejection", function (e) { noteError(e.reason); });

  var S = fresh();
  var charts = []; // {spec, u, box}
  var chartsSig = "";
  var follow = true;
  var syncing = false;
  var updates = 0;
  var es = null;
  var renderedEv = -1;
  var token = readToken();
  var prefilled = false;

  function fresh() {
    return { cols: {}, n: 0, t0: 0, start: 0, elapsed: 0, status: "waiting", run: {}, charts: [],
      endpoints: [], total: null, now: {}, failures: { groups: [], more: 0 }, events: [], evTotal: 0,
      evByClass: {}, evKeep: 200, evVersion: 0, probes: [], load: {}, loadChanges: [], diag: null, end: null };
  }

  /* The token comes in the URL's fragment (#token=...), which the browser
     never sends: kept for this tab, and taken out of the address bar. */
  function readToken() {
    var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    var t = null;
    if (m) {
      t = decodeURIComponent(m[1]);
      try { sessionStorage.setItem("stampede-token", t); } catch (e) { /* private mode */ }
      history.replaceState(null, "", location.pathname + location.search);
    } else {
      try { t = sessionStorage.getItem("stampede-token"); } catch (e) { t = null; }
    }
    return t;
  }

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  /* since formats seconds of the run as mm:ss (h:mm:ss past an hour). */
  function since(s) {
    s = Math.max(0, Math.floor(s || 0));
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
    return (h ? h + ":" + pad(m) : pad(m)) + ":" + pad(r);
  }
  function utc(ts) {
    if (!ts) return "–";
    var d = new Date(ts * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  function num(v) {
    var a = Math.abs(v);
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2).replace(/\.?0+$/, "");
  }
  function fmt(v, unit) {
    if (v == null || isNaN(v)) return "–";
    switch (unit) {
      case "/s": return num(v) + "/s";
      case "ms": return num(v) + " ms";
      case "s": return num(v) + " s";
      case "%": return num(v) + "%";
      default: return num(v);
    }
  }
  /* msCell formats milliseconds as report.html's tables do. */
  function msCell(v) { return v < 10 ? v.toFixed(1) : String(Math.round(v)); }
  function pct(f) {
    var p = f * 100;
    if (p === 0) return "0%";
    if (p < 1) return p.toFixed(2) + "%";
    if (p < 10) return p.toFixed(1) + "%";
    return p.toFixed(0) + "%";
  }

  /* apply merges a snapshot or an update into S. */
  function apply(m) {
    if (m.snapshot) {
      S = fresh();
      renderedEv = -1;
    }
    S.status = m.status;
    S.t0 = m.t0;
    S.start = m.start;
    S.elapsed = m.elapsed_s;
    if (m.run) S.run = m.run;
    var k, i;
    for (k in m.columns) {
      var d = m.columns[k], c = S.cols[k] || (S.cols[k] = []);
      for (i = c.length; i < d.from; i++) c[i] = null;
      for (i = 0; i < d.values.length; i++) c[d.from + i] = d.values[i];
    }
    S.n = Math.max(S.n, m.n);
    if (m.charts) S.charts = m.charts;
    S.endpoints = m.endpoints || [];
    S.total = m.total || null;
    S.now = m.now || {};
    S.failures = m.failures || { groups: [], more: 0 };
    S.probes = m.probes || [];
    S.load = m.load || {};
    if (m.evidence) {
      if (m.evidence.events.length || m.snapshot) {
        S.events = S.events.concat(m.evidence.events);
        if (S.events.length > m.evidence.keep) S.events = S.events.slice(S.events.length - m.evidence.keep);
        S.evVersion++;
      }
      if (m.evidence.total !== S.evTotal) S.evVersion++;
      S.evTotal = m.evidence.total;
      S.evByClass = m.evidence.by_class || {};
      S.evKeep = m.evidence.keep;
    }
    if (m.load_changes && m.load_changes.length) S.loadChanges = S.loadChanges.concat(m.load_changes);
    if (m.diagnosis) S.diag = m.diagnosis;
    if (m.end) S.end = m.end;
    render();
    updates++;
    root.setAttribute("data-updates", String(updates));
    root.setAttribute("data-status", S.status);
  }

  function render() {
    renderHeader();
    renderControls();
    renderDiagnosis();
    renderCharts();
    renderTable();
    renderFailures();
    renderEvidence();
    renderProbes();
  }

  function rate(v) { return String(Math.round(v * 100) / 100); }
  function loadText(l, model) {
    if (!l) return "";
    if (model === "open") {
      return rate(l.arrival_rate || 0) + " arrivals/s" + (l.max_users ? ", at most " + l.max_users + " users" : "");
    }
    return (l.users || 0) + " users" + (l.spawn_rate ? " spawned at " + rate(l.spawn_rate) + "/s" : "");
  }

  function fact(box, label, value) {
    if (!value) return;
    var d = el("div");
    d.appendChild(el("dt", "", label));
    d.appendChild(el("dd", "", value));
    box.appendChild(d);
  }

  function renderHeader() {
    var r = S.run || {};
    $("run-id").textContent = r.id || "";
    document.title = "stampede live" + (r.id ? ": " + r.id : "");
    var st = $("status"), text = S.status, cls = "verdict-none";
    if (S.status === "running") { cls = "verdict-running"; }
    if (S.end) {
      text = S.end.partial ? "ended (partial)" : "ended";
      cls = S.diag && S.diag.verdict === "fail" ? "verdict-fail" : S.diag && S.diag.verdict === "pass" ? "verdict-pass" : "verdict-none";
    }
    st.textContent = text;
    st.className = "verdict " + cls;
    var f = $("facts");
    f.textContent = "";
    fact(f, "target", r.target);
    fact(f, "model", r.model === "open" ? "open (arrival rate)" : r.model ? "closed (users)" : "");
    if (r.observer) fact(f, "role", "observer of a split load (probes and logs, no load)");
    if (r.segment) fact(f, "segment", r.segment + " (this generator's share of the load)");
    if (S.load && S.load.current) fact(f, "load now", loadText(S.load.current, S.load.model));
    if (S.status === "waiting" && r.start_at) fact(f, "starts at", r.start_at);
    fact(f, "elapsed", S.start ? since(S.elapsed) + (r.duration_s ? " of " + since(r.duration_s) : "") : "");
    if (S.end && S.end.reason) fact(f, "ended", S.end.reason);
    fact(f, "run directory", (S.end && S.end.dir) || r.dir);

    var figs = $("figures");
    figs.textContent = "";
    var t = S.total;
    function figure(key, label, value, bad) {
      var d = el("div", "figure" + (bad ? " bad" : ""));
      d.setAttribute("data-fig", key);
      var v = el("span", "value", value);
      d.appendChild(v);
      d.appendChild(el("span", "label", label));
      figs.appendChild(d);
    }
    figure("requests", "requests", t ? String(t.requests) : "0");
    figure("failures", "failures", t ? t.failures + " (" + pct(t.failure_rate) + ")" : "0", t && t.failures > 0);
    figure("rps", S.end ? "requests/s (run)" : "requests/s (last 10 s)", t ? num(t.rps) : "0");
    var p50 = lastValue("p50"), p95 = lastValue("p95");
    figure("p50", "p50 (last second)", p50 == null ? "–" : fmt(p50, "ms"));
    figure("p95", "p95 (last second)", p95 == null ? "–" : fmt(p95, "ms"));
    figure("users", "users", String(S.now.users || 0));
    figure("in_flight", "in flight", String(S.now.in_flight || 0));
    if (S.now.dropped) figure("dropped", "dropped starts", String(S.now.dropped), true);
  }

  function lastValue(col) {
    var c = S.cols[col];
    if (!c) return null;
    for (var i = c.length - 1; i >= 0 && i >= c.length - 3; i--) if (c[i] != null) return c[i];
    return null;
  }

  /* The controls: shown when the run has them and is not over. */
  function renderControls() {
    var l = S.load || {};
    var box = $("controls");
    box.hidden = !l.controls || !!S.end;
    if (box.hidden) return;
    var open = l.model === "open";
    $("closed-fields").hidden = open || !!l.observer;
    $("open-fields").hidden = !open || !!l.observer;
    $("apply-load").hidden = !!l.observer;
    $("users-input").required = !open && !l.observer;
    $("token-box").hidden = !(l.token_required && !token);
    if (!prefilled && l.current) {
      prefilled = true;
      if (open) {
        $("rate-input").value = l.current.arrival_rate || "";
      } else {
        $("users-input").value = l.current.users || "";
        $("spawn-input").value = l.current.spawn_rate || "";
      }
    }
  }

  function say(text, bad) {
    var m = $("control-msg");
    m.textContent = text;
    m.className = "hint" + (bad ? " bad-text" : "");
  }

  function post(path, body) {
    var h = { "Content-Type": "application/json" };
    if (token) h.Authorization = "Bearer " + token;
    return fetch(path, { method: "POST", headers: h, body: JSON.stringify(body), credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        return r.json().then(function (j) { return { ok: r.ok, status: r.status, body: j }; },
          function () { return { ok: r.ok, status: r.status, body: {} }; });
      });
  }

  $("load-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var body = { by: "ui" };
    if ((S.load || {}).model === "open") {
      var rate = parseFloat($("rate-input").value), mx = parseInt($("max-input").value, 10);
      if (rate > 0) body.arrival_rate = rate;
      if (mx > 0) body.max_users = mx;
    } else {
      var u = parseInt($("users-input").value, 10), sr = parseFloat($("spawn-input").value);
      if (u > 0) body.users = u;
      if (sr > 0) body.spawn_rate = sr;
    }
    say("Changing the load…");
    post("api/load", body).then(function (r) {
      if (r.ok) {
        say("Load now: " + loadText(r.body.load, r.body.model) + ".");
      } else {
        if (r.status === 401) { token = null; renderControls(); }
        say("Refused (" + r.status + "): " + (r.body.error || "no reason given"), true);
      }
    }, function (err) { say("Could not reach stampede: " + err, true); });
  });

  var stopArmed = null;
  $("stop").addEventListener("click", function () {
    var b = $("stop");
    if (!stopArmed) {
      b.textContent = "Click again to stop";
      b.classList.add("armed");
      stopArmed = setTimeout(function () { stopArmed = null; b.textContent = "Stop the run"; b.classList.remove("armed"); }, 5000);
      return;
    }
    clearTimeout(stopArmed);
    stopArmed = null;
    b.textContent = "Stopping…";
    b.disabled = true;
    post("api/stop", { by: "ui" }).then(function (r) {
      if (r.ok) {
        say("Stopping: the run writes its files, then the final diagnosis shows here.");
      } else {
        b.disabled = false;
        b.textContent = "Stop the run";
        say("Refused (" + r.status + "): " + (r.body.error || "no reason given"), true);
      }
    }, function (err) { b.disabled = false; say("Could not reach stampede: " + err, true); });
  });

  $("token-save").addEventListener("click", function () {
    token = $("token-input").value.trim() || null;
    $("token-input").value = "";
    if (token) { try { sessionStorage.setItem("stampede-token", token); } catch (e) { /* private mode */ } }
    renderControls();
  });

  function renderDiagnosis() {
    var d = S.diag;
    var list = $("findings");
    $("diag-title").textContent = d && d.final ? "Diagnosis" : "Diagnosis so far";
    if (d) {
      var meta = d.final ? "Final diagnosis, over the whole run" + (d.verdict ? ": " + d.verdict.toUpperCase() : "") + "."
        : "Diagnosed at " + since(d.at_s) + " over the records so far (in " + Math.round(d.took_ms) + " ms)" + (d.verdict ? ", verdict so far: " + d.verdict : "") + ".";
      if (d.error) meta += " The last diagnosis failed: " + d.error;
      if (d.failed_thresholds && d.failed_thresholds.length) meta += " Failed thresholds: " + d.failed_thresholds.join("; ") + ".";
      $("diag-meta").textContent = meta;
      list.textContent = "";
      if (!d.findings || !d.findings.length) list.appendChild(el("li", "ok", "No finding: nothing failed or was slow so far, and nothing in the probes or logs points at a problem."));
      (d.findings || []).forEach(function (f) {
        var li = el("li", "finding status-" + f.status + (f.current ? "" : " gone"));
        li.setAttribute("data-id", f.id);
        li.setAttribute("data-status", f.status);
        var h = el("div", "head");
        h.appendChild(el("code", "id", f.id));
        var when = " (" + f.status + " since " + since(f.status_since_s) + (f.first_seen_s < f.status_since_s ? ", first seen " + since(f.first_seen_s) : "") + ")";
        h.appendChild(el("span", "when", when));
        if (!f.current) h.appendChild(el("span", "note", " not found by the latest diagnosis"));
        li.appendChild(h);
        li.appendChild(el("div", "title", (f.caused_by ? "caused by " + f.caused_by + ": " : "") + f.title));
        var ex = [];
        if (f.failures) ex.push(f.failures + " failures");
        if (f.slow) ex.push(f.slow + " slow requests");
        var line = "confidence " + Math.round(f.confidence * 100) + "%" + (ex.length ? " · explains " + ex.join(" and ") : "") +
          (f.endpoints && f.endpoints.length ? " on " + f.endpoints.join(", ") : "");
        li.appendChild(el("div", "meta", line));
        (f.evidence || []).forEach(function (e) {
          var p = el("div", "ev");
          p.appendChild(el("span", "note", (e.t ? utc(e.t) + " " : "") + e.source + " "));
          p.appendChild(document.createTextNode(e.text));
          if (e.ref) { p.appendChild(document.createTextNode(" ")); p.appendChild(el("code", "", e.ref)); }
          li.appendChild(p);
        });
        if (d.final && f.fix) li.appendChild(el("div", "fix", "Fix: " + f.fix));
        list.appendChild(li);
      });
    }
    var link = $("report-link");
    if (S.end) {
      link.hidden = false;
      link.textContent = "";
      if (S.end.report) {
        var a = el("a", "", "report.html");
        a.href = S.end.report;
        a.target = "_blank";
        a.rel = "noopener";
        a.id = "report-a";
        link.appendChild(document.createTextNode("The run is over. Its full report: "));
        link.appendChild(a);
        link.appendChild(document.createTextNode(" (in " + S.end.dir + ")."));
      } else {
        link.appendChild(document.createTextNode("The run is over; no report.html" + (S.end.report_error ? ": " + S.end.report_error : "") + "."));
      }
    }
  }

  /* Load changes are dashed vertical lines on every chart, labelled with
     the load from then on. */
  function loadPlugin() {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, b = u.bbox, dpr = window.devicePixelRatio || 1;
          ctx.save();
          S.loadChanges.forEach(function (c) {
            if (c.by === "plan") return;
            var x = Math.round(u.valToPos(c.t, "x", true));
            if (x < b.left || x > b.left + b.width) return;
            ctx.strokeStyle = "#6a3d9a";
            ctx.lineWidth = 2 * dpr;
            ctx.setLineDash([5 * dpr, 4 * dpr]);
            ctx.beginPath();
            ctx.moveTo(x, b.top);
            ctx.lineTo(x, b.top + b.height);
            ctx.stroke();
            ctx.setLineDash([]);
            ctx.fillStyle = "#6a3d9a";
            ctx.font = (11 * dpr) + "px system-ui, sans-serif";
            ctx.fillText(loadText(c, S.load.model) + " (" + c.by + ")", x + 4 * dpr, b.top + 12 * dpr);
          });
          ctx.restore();
        }]
      }
    };
  }

  var epSelect = $("ep-select");
  epSelect.addEventListener("change", function () { chartsSig = ""; renderCharts(); });

  function colFor(spec, s) {
    var key = epSelect.value;
    if (key && spec.id === "throughput" && (s.col === "requests" || s.col === "failures")) return key + ":" + s.col;
    return s.col;
  }

  function dataFor(spec, n) {
    var xs = new Array(n);
    for (var i = 0; i < n; i++) xs[i] = S.t0 + i;
    var out = [xs];
    spec.series.forEach(function (s) {
      var c = S.cols[colFor(spec, s)] || [];
      var v = new Array(n);
      for (var j = 0; j < n; j++) v[j] = c[j] == null ? null : c[j];
      out.push(v);
    });
    return out;
  }

  function makeChart(spec, width) {
    var right = spec.series.some(function (s) { return s.axis === 1; });
    var fromZero = function (u, min, max) { return (max == null || !(max > 0)) ? [0, 1] : [0, max * 1.08]; };
    var scales = { x: { time: true }, y: { range: fromZero } };
    if (right) scales.y2 = { range: fromZero };
    var axes = [
      { space: 80, values: function (u, vals) { return vals.map(utc); } }, // room for hh:mm:ss
      { scale: "y", label: spec.axes[0], size: 60, labelSize: 18 }
    ];
    if (right) axes.push({ scale: "y2", side: 1, label: spec.axes[1], size: 60, labelSize: 18, grid: { show: false } });
    var series = [{ label: "UTC", value: function (u, v) { return utc(v); } }];
    spec.series.forEach(function (s) {
      series.push({
        label: s.label, scale: s.axis === 1 ? "y2" : "y", stroke: s.color, width: 1.5,
        fill: s.fill ? s.color + "1f" : undefined, dash: s.dash ? [6, 4] : undefined,
        spanGaps: !!s.span, points: { show: false },
        value: function (u, v) { return fmt(v, s.unit); }
      });
    });
    var box = el("div", "chart");
    box.setAttribute("data-chart", spec.id);
    box.appendChild(el("h3", "", spec.title + (spec.id === "throughput" && epSelect.value ? " of " + epSelect.options[epSelect.selectedIndex].text : "")));
    $("charts").appendChild(box);
    var u = new uPlot({
      width: width, height: 180, scales: scales, axes: axes, series: series,
      cursor: { sync: { key: "stampede-live" }, drag: { x: true, y: false } },
      plugins: [loadPlugin()],
      hooks: {
        setSelect: [function (u) { if (u.select.width > 0) follow = false; }],
        setScale: [function (u, key) {
          if (key !== "x" || syncing) return;
          syncing = true;
          charts.forEach(function (o) { if (o.u !== u) o.u.setScale("x", { min: u.scales.x.min, max: u.scales.x.max }); });
          syncing = false;
        }]
      }
    }, dataFor(spec, S.n), box);
    u.over.addEventListener("dblclick", function () { follow = true; });
    return { spec: spec, u: u, box: box };
  }

  function renderCharts() {
    var host = $("charts");
    var sig = JSON.stringify(S.charts) + "|" + epSelect.value;
    if (!S.n) {
      root.setAttribute("data-charts", "0");
      return; // nothing to draw yet (waiting for the start, or the first second)
    }
    if (sig !== chartsSig) {
      chartsSig = sig;
      charts.forEach(function (c) { c.u.destroy(); });
      charts = [];
      host.textContent = "";
      var width = Math.max(600, host.clientWidth || 1200);
      S.charts.forEach(function (spec) { charts.push(makeChart(spec, width)); });
    } else {
      charts.forEach(function (c) { c.u.setData(dataFor(c.spec, S.n), follow); });
    }
    charts.forEach(function (c) { c.box.setAttribute("data-n", String(S.n)); });
    root.setAttribute("data-charts", String(charts.length));
  }

  var resizeT = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeT);
    resizeT = setTimeout(function () {
      var w = Math.max(600, $("charts").clientWidth);
      charts.forEach(function (c) { c.u.setSize({ width: w, height: 180 }); });
    }, 100);
  });

  function cell(tr, text, cls, v) {
    var td = el("td", cls || "", text);
    if (v != null) td.setAttribute("data-v", String(v));
    tr.appendChild(td);
    return td;
  }

  function endpointRow(e, total) {
    var tr = el("tr", e.failures > 0 ? "failing" : "");
    tr.setAttribute("data-name", e.name);
    tr.setAttribute("data-method", e.method);
    cell(tr, e.method, "");
    cell(tr, e.name, "name");
    cell(tr, String(e.requests), "num", e.requests).setAttribute("data-k", "requests");
    cell(tr, e.failures + (e.requests ? " (" + pct(e.failure_rate) + ")" : ""), "num", e.failures).setAttribute("data-k", "failures");
    [["median_ms", e.median_ms], ["p95_ms", e.p95_ms], ["p99_ms", e.p99_ms], ["max_ms", e.max_ms], ["avg_ms", e.avg_ms]].forEach(function (p) {
      cell(tr, e.requests ? msCell(p[1]) : "–", "num", p[1]).setAttribute("data-k", p[0]);
    });
    cell(tr, e.rps.toFixed(2), "num", e.rps).setAttribute("data-k", "rps");
    cell(tr, e.failures_per_s.toFixed(2), "num", e.failures_per_s).setAttribute("data-k", "failures_per_s");
    if (total) tr.setAttribute("data-total", "1");
    return tr;
  }

  function renderTable() {
    var tb = document.querySelector("#endpoints tbody"), tf = document.querySelector("#endpoints tfoot");
    tb.textContent = "";
    tf.textContent = "";
    S.endpoints.forEach(function (e) { tb.appendChild(endpointRow(e, false)); });
    if (S.total) tf.appendChild(endpointRow(S.total, true));
    $("rps-head").textContent = S.end ? "RPS (run)" : "current RPS";
    $("fps-head").textContent = S.end ? "failures/s (run)" : "current failures/s";
    // The endpoint choice of the throughput chart.
    var keys = S.endpoints.filter(function (e) { return e.key; });
    if (epSelect.options.length !== keys.length + 1) {
      var cur = epSelect.value;
      while (epSelect.options.length > 1) epSelect.remove(1);
      keys.forEach(function (e) {
        var o = el("option", "", (e.method ? e.method + " " : "") + e.name);
        o.value = e.key;
        epSelect.appendChild(o);
      });
      epSelect.value = cur;
    }
  }

  function renderFailures() {
    var tb = document.querySelector("#failures tbody");
    tb.textContent = "";
    var g = S.failures.groups || [];
    $("failures-none").hidden = g.length > 0;
    $("failures").hidden = g.length === 0;
    g.forEach(function (f) {
      var tr = el("tr");
      cell(tr, f.method);
      cell(tr, f.name, "name");
      cell(tr, f.reason, "text");
      cell(tr, f.outcome);
      cell(tr, String(f.occurrences), "num", f.occurrences);
      cell(tr, utc(f.first), "num");
      cell(tr, utc(f.last), "num");
      tb.appendChild(tr);
    });
    $("failures-more").textContent = S.failures.more ? S.failures.more + " more groups, less frequent, in summary.json." : "";
  }

  function renderEvidence() {
    if (renderedEv === S.evVersion) return;
    renderedEv = S.evVersion;
    var box = $("evidence");
    box.textContent = "";
    var classes = Object.keys(S.evByClass).sort(function (a, b) { return S.evByClass[b] - S.evByClass[a]; });
    $("evidence-meta").textContent = S.evTotal ? S.evTotal + " log events so far (" + classes.map(function (c) { return c + " " + S.evByClass[c]; }).join(", ") + ")" +
      (S.evTotal > S.events.length ? "; the latest " + S.events.length + " below, every one in evidence.jsonl." : ".") : "No log event yet.";
    for (var i = S.events.length - 1; i >= 0; i--) {
      var e = S.events[i];
      var d = el("div", "event");
      d.setAttribute("data-class", e.class || "");
      d.appendChild(el("div", "when", (e.t ? utc(e.t) + " UTC" : "no time") + " · " + e.source + (e.level ? " · " + e.level : "") + (e.class ? " · " + e.class : "")));
      d.appendChild(el("div", "msg", e.message));
      if (e.exception) d.appendChild(el("div", "exc", e.exception));
      if (e.stack && e.stack.length) {
        var det = el("details");
        det.appendChild(el("summary", "", e.stack.length + " frames"));
        det.appendChild(el("pre", "", e.stack.join("\n")));
        d.appendChild(det);
      }
      if (e.ref) {
        var r = el("div", "ref");
        r.appendChild(el("code", "", e.ref));
        d.appendChild(r);
      }
      box.appendChild(d);
    }
  }

  function renderProbes() {
    var tb = document.querySelector("#probes tbody");
    tb.textContent = "";
    $("probes-section").hidden = !S.probes.length;
    S.probes.forEach(function (p) {
      var tr = el("tr");
      cell(tr, p.source, "name");
      cell(tr, String(p.samples), "num");
      cell(tr, String(p.errors), "num");
      cell(tr, p.last_error || "", "text");
      tb.appendChild(tr);
    });
  }

  function connect() {
    var conn = $("conn");
    es = new EventSource("api/events");
    es.addEventListener("open", function () { conn.textContent = "live"; conn.className = "conn on"; });
    function handle(e) {
      try {
        apply(JSON.parse(e.data));
      } catch (err) {
        noteError(err && err.stack ? err.stack : err);
        throw err;
      }
    }
    es.addEventListener("snapshot", handle);
    es.addEventListener("update", handle);
    es.addEventListener("error", function () {
      if (S.end) {
        // stampede has exited after the run: nothing more will come.
        es.close();
        conn.textContent = "stampede has exited";
        conn.className = "conn off";
        return;
      }
      conn.textContent = "reconnecting…";
      conn.className = "conn off";
    });
  }

  root.setAttribute("data-ready", "1");
  connect();
})();
