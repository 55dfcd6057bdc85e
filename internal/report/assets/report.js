/* stampede report: draws the charts of #report-data with uPlot, on one
   shared time axis, with the log evidence as vertical marks that open
   their excerpt. Text from the run is only ever set with textContent. */
(function () {
  "use strict";
  var root = document.documentElement;
  var dataEl = document.getElementById("report-data");
  var host = document.getElementById("charts");
  if (!dataEl) return;
  var data = JSON.parse(dataEl.textContent);
  var markers = data.markers || [];
  var groups = data.groups || [];
  var loads = data.loads || [];
  var hidden = {};
  var charts = [];
  var drawn = 0;
  var syncing = false;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
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

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function fmtTime(ts) {
    if (ts == null) return "–";
    if (data.relative) {
      var s = Math.round(ts);
      return Math.floor(s / 60) + ":" + pad(s % 60);
    }
    var d = new Date(ts * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  function fromZero(u, min, max) {
    if (max == null || !(max > 0)) return [0, 1];
    return [0, max * 1.08];
  }

  /* The marker plugin draws one vertical line per marker (an evidence
     group's events in one bucket), thicker when it holds more events. */
  function markerPlugin() {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, b = u.bbox, dpr = window.devicePixelRatio || 1;
          ctx.save();
          for (var i = 0; i < markers.length; i++) {
            var m = markers[i];
            if (hidden[m.g]) continue;
            var x = Math.round(u.valToPos(m.t, "x", true));
            if (x < b.left || x > b.left + b.width) continue;
            var color = (groups[m.g] && groups[m.g].color) || "#d62728";
            ctx.globalAlpha = 0.45;
            ctx.strokeStyle = color;
            ctx.lineWidth = dpr * (m.n > 9 ? 3 : m.n > 1 ? 2 : 1);
            ctx.beginPath();
            ctx.moveTo(x, b.top);
            ctx.lineTo(x, b.top + b.height);
            ctx.stroke();
            ctx.globalAlpha = 1;
            ctx.fillStyle = color;
            ctx.beginPath();
            ctx.moveTo(x - 4 * dpr, b.top);
            ctx.lineTo(x + 4 * dpr, b.top);
            ctx.lineTo(x, b.top + 6 * dpr);
            ctx.closePath();
            ctx.fill();
          }
          /* The changes of the load: a dashed line with its label at the
             top, staggered so that close changes stay readable. */
          ctx.font = (11 * dpr) + "px sans-serif";
          ctx.textBaseline = "top";
          ctx.textAlign = "left"; /* uPlot leaves its last axis's alignment */
          for (var j = 0; j < loads.length; j++) {
            var l = loads[j];
            var lx = Math.round(u.valToPos(l.t, "x", true));
            if (lx < b.left || lx > b.left + b.width) continue;
            ctx.globalAlpha = 0.8;
            ctx.strokeStyle = l.stop ? "#d62728" : "#333";
            ctx.lineWidth = dpr * 1.5;
            ctx.setLineDash([4 * dpr, 3 * dpr]);
            ctx.beginPath();
            ctx.moveTo(lx, b.top);
            ctx.lineTo(lx, b.top + b.height);
            ctx.stroke();
            ctx.setLineDash([]);
            var tw = ctx.measureText(l.label).width;
            var ty = b.top + 8 * dpr + (j % 3) * 14 * dpr;
            var tx = lx + 3 * dpr;
            if (tx + tw > b.left + b.width) tx = lx - 3 * dpr - tw;
            ctx.globalAlpha = 0.85;
            ctx.fillStyle = "#fff";
            ctx.fillRect(tx - 2 * dpr, ty - 1 * dpr, tw + 4 * dpr, 13 * dpr);
            ctx.globalAlpha = 1;
            ctx.fillStyle = l.stop ? "#d62728" : "#333";
            ctx.fillText(l.label, tx, ty);
          }
          ctx.restore();
          if (!u._stampedeDrawn) {
            u._stampedeDrawn = true;
            drawn++;
            root.setAttribute("data-charts-drawn", String(drawn));
          }
        }]
      }
    };
  }

  /* markersNear returns the visible markers within 5 px of the plot
     position x (CSS pixels), nearest first. */
  function markersNear(u, x) {
    var hits = [];
    for (var i = 0; i < markers.length; i++) {
      var m = markers[i];
      if (hidden[m.g]) continue;
      var d = Math.abs(u.valToPos(m.t, "x") - x);
      if (d <= 5) hits.push({ m: m, d: d });
    }
    hits.sort(function (a, b) { return a.d - b.d || a.m.g - b.m.g; });
    return hits.map(function (h) { return h.m; });
  }

  var panel = document.getElementById("excerpt");
  var panelTitle = document.getElementById("excerpt-title");
  var panelBody = document.getElementById("excerpt-body");
  if (panel) {
    document.getElementById("excerpt-close").addEventListener("click", function () { panel.hidden = true; });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") panel.hidden = true; });
  }

  function eventBlock(g, ev) {
    var box = el("div", "event");
    var when = el("div", "when");
    var sw = el("span", "swatch");
    sw.style.background = g ? g.color : "#888";
    when.appendChild(sw);
    when.appendChild(document.createTextNode(" " + (g ? g.key : "") + " · " + (ev.time || "no time") + " UTC · " + ev.source + (ev.level ? " · " + ev.level : "")));
    box.appendChild(when);
    box.appendChild(el("div", "msg", ev.message));
    if (ev.exception) box.appendChild(el("div", "exc", ev.exception));
    if (ev.stack && ev.stack.length) box.appendChild(el("pre", "", ev.stack.join("\n")));
    if (ev.ref) {
      var r = el("div", "ref");
      r.appendChild(el("code", "", ev.ref));
      box.appendChild(r);
    }
    return box;
  }

  /* showMarkers opens the excerpt panel with the events of ms. */
  function showMarkers(title, ms) {
    if (!panel) return;
    panelTitle.textContent = title;
    panelBody.textContent = "";
    ms.forEach(function (m) {
      var g = groups[m.g];
      m.events.forEach(function (ev) { panelBody.appendChild(eventBlock(g, ev)); });
      if (m.n > m.events.length) {
        panelBody.appendChild(el("p", "note", (m.n - m.events.length) + " more events of this group within " + data.step + " s."));
      }
    });
    panel.hidden = false;
    root.setAttribute("data-excerpt-open", "1");
  }

  function showGroup(gi) {
    var g = groups[gi];
    if (!g) return;
    var ms = markers.filter(function (m) { return m.g === gi; }).slice(0, 10);
    if (ms.length) {
      showMarkers(g.key + " (" + g.count + " events)", ms);
    } else {
      showMarkers(g.key + " (" + g.count + " events)", [{ g: gi, n: 1, events: [g.example] }]);
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("button[data-group]"), function (b) {
    b.addEventListener("click", function () { showGroup(Number(b.getAttribute("data-group"))); });
  });

  /* A finding's evidence time opens the log events of the buckets around
     it, when there are any. */
  Array.prototype.forEach.call(document.querySelectorAll("button[data-t]"), function (b) {
    var t = Number(b.getAttribute("data-t"));
    var ms = markers.filter(function (m) { return Math.abs(m.t - t) <= Math.max(1, data.step); });
    if (!ms.length) {
      b.disabled = true;
      b.title = "no log event around this time";
      return;
    }
    b.addEventListener("click", function () { showMarkers("Log events around " + fmtTime(t) + " UTC", ms.slice(0, 10)); });
  });

  function legend() {
    var box = document.getElementById("evidence-legend");
    if (!box || !groups.length || !markers.length) return;
    box.appendChild(el("span", "note", "Log events:"));
    groups.forEach(function (g, gi) {
      var lab = el("label");
      var cb = el("input");
      cb.type = "checkbox";
      cb.checked = true;
      cb.addEventListener("change", function () {
        hidden[gi] = !cb.checked;
        charts.forEach(function (u) { u.redraw(false); });
      });
      var sw = el("span", "swatch");
      sw.style.background = g.color;
      lab.appendChild(cb);
      lab.appendChild(sw);
      lab.appendChild(document.createTextNode(g.key + " (" + g.count + ")"));
      box.appendChild(lab);
    });
  }

  function makeChart(c, xs, width) {
    var right = c.series.some(function (s) { return s.axis === 1; });
    var scales = { x: { time: !data.relative }, y: { range: fromZero } };
    if (right) scales.y2 = { range: fromZero };
    var x = { values: function (u, vals) { return vals.map(fmtTime); } };
    if (data.relative) x.incrs = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400];
    var axes = [
      x,
      { scale: "y", label: c.axes[0], size: 60, labelSize: 18 }
    ];
    if (right) axes.push({ scale: "y2", side: 1, label: c.axes[1], size: 60, labelSize: 18, grid: { show: false } });
    var series = [{ label: data.relative ? "since start" : "UTC", value: function (u, v) { return fmtTime(v); } }];
    var cols = [xs];
    c.series.forEach(function (s) {
      series.push({
        label: s.label,
        scale: s.axis === 1 ? "y2" : "y",
        stroke: s.color,
        width: 1.5,
        fill: s.fill ? s.color + "1f" : undefined,
        dash: s.dash ? [6, 4] : undefined,
        spanGaps: !!s.span,
        points: { show: false },
        value: function (u, v) { return fmt(v, s.unit); }
      });
      cols.push(s.values);
    });
    var box = el("div", "chart");
    box.setAttribute("data-chart", c.id);
    box.appendChild(el("h3", "", c.title));
    host.appendChild(box);
    var opts = {
      width: width,
      height: 190,
      scales: scales,
      axes: axes,
      series: series,
      cursor: { sync: { key: "stampede" }, drag: { x: true, y: false } },
      plugins: [markerPlugin()],
      hooks: {
        setScale: [function (u, key) {
          if (key !== "x" || syncing) return;
          syncing = true;
          charts.forEach(function (o) {
            if (o !== u) o.setScale("x", { min: u.scales.x.min, max: u.scales.x.max });
          });
          syncing = false;
        }]
      }
    };
    var u = new uPlot(opts, cols, box);
    var downX = null;
    u.over.addEventListener("mousedown", function (e) { downX = e.offsetX; });
    u.over.addEventListener("mousemove", function (e) {
      u.over.classList.toggle("on-marker", markersNear(u, e.offsetX).length > 0);
    });
    u.over.addEventListener("click", function (e) {
      if (downX != null && Math.abs(e.offsetX - downX) > 3) return; // a zoom drag
      var ms = markersNear(u, e.offsetX);
      if (ms.length) showMarkers("Log events at " + fmtTime(ms[0].t) + (data.relative ? "" : " UTC"), ms);
    });
    return u;
  }

  if (host && data.charts && data.charts.length && data.n > 0) {
    var xs = new Array(data.n);
    for (var i = 0; i < data.n; i++) xs[i] = data.t0 + i * data.step;
    var width = Math.max(600, host.clientWidth || 1200);
    legend();
    data.charts.forEach(function (c) { charts.push(makeChart(c, xs, width)); });
    root.setAttribute("data-charts", String(charts.length));
    root.setAttribute("data-markers", String(markers.length));
    root.setAttribute("data-load-marks", String(loads.length));
    var t = null;
    window.addEventListener("resize", function () {
      clearTimeout(t);
      t = setTimeout(function () {
        var w = Math.max(600, host.clientWidth);
        charts.forEach(function (u) { u.setSize({ width: w, height: 190 }); });
      }, 100);
    });
  } else {
    root.setAttribute("data-charts", "0");
  }
  root.setAttribute("data-ready", "1");
})();
