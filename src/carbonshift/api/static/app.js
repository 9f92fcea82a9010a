/* carbonshift dashboard: draws the charts (uPlot) from the JSON each page embeds, sorts tables, and
   reads a spec file into the plan form. No network requests of its own. */
(function () {
  "use strict";
  var COLORS = ["#1f7a4d", "#2878dc", "#dc6e1e", "#8a4fbf", "#c2185b", "#00838f", "#6d6d00", "#5d4037"];

  function drawChart(el, data) {
    var series = [data.labels ? { label: "Month", value: function (u, v) { return v == null ? "--" : data.labels[v]; } } : {}];
    var columns = [data.x];
    data.series.forEach(function (s, i) {
      var opts = { label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false };
      if (data.bars && i === 0) {  // the first series as bars, the others (baselines) as lines over them
        opts.fill = COLORS[0] + "99";
        opts.paths = uPlot.paths.bars({ size: [0.6, 80] });
      } else if (data.bars) {
        opts.stroke = "#555"; opts.paths = function () { return null; }; opts.points = { show: true, size: 9, width: 2 };
      } else { opts.paths = uPlot.paths.stepped({ align: 1 }); opts.points = { show: false }; }
      series.push(opts);
      columns.push(s.values);
    });
    var bands = data.bands || [];
    var labels = data.labels || null;  // categorical x (months): index -> label
    var ticks = function (u, splits) {
      return splits.map(function (v) { return v === 0 ? "0" : Number(v.toPrecision(3)).toLocaleString(); });
    };
    var xAxis = labels
      ? { values: function (u, splits) { return splits.map(function (v) { return labels[v] !== undefined && Number.isInteger(v) ? labels[v] : ""; }); } }
      : {};
    var opts = {
      width: Math.max(280, el.clientWidth || 600),
      height: 300,
      series: series,
      axes: [xAxis, { label: data.y, size: 70, values: ticks }],
      scales: {
        x: labels ? { time: false, range: function () { return [-0.6, labels.length - 0.4]; } } : { time: true },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } }
      },
      hooks: {
        drawClear: [function (u) {
          var ctx = u.ctx;
          bands.forEach(function (b, k) {
            var x0 = u.valToPos(b.from, "x", true), x1 = u.valToPos(b.to, "x", true);
            ctx.save();
            ctx.fillStyle = b.color;
            ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
            ctx.fillStyle = "#333";
            ctx.font = (12 * devicePixelRatio) + "px sans-serif";
            ctx.fillText(b.label, x0 + 4, u.bbox.top + (14 + 14 * k) * devicePixelRatio);
            ctx.restore();
          });
        }]
      }
    };
    var plot = new uPlot(opts, columns, el);
    el.setAttribute("data-drawn", "true");
    window.addEventListener("resize", function () { plot.setSize({ width: Math.max(280, el.clientWidth), height: 300 }); });
  }

  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (source) { drawChart(el, JSON.parse(source.textContent)); }
  });

  document.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      var table = th.closest("table"), body = table.tBodies[0];
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var numeric = th.getAttribute("data-sort") === "num";
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var ca = a.cells[index], cb = b.cells[index];
        var va = ca.getAttribute("data-value") !== null ? ca.getAttribute("data-value") : ca.textContent.trim();
        var vb = cb.getAttribute("data-value") !== null ? cb.getAttribute("data-value") : cb.textContent.trim();
        if (numeric) {
          va = va === "" ? Infinity : parseFloat(va); vb = vb === "" ? Infinity : parseFloat(vb);
          return asc ? va - vb : vb - va;
        }
        return asc ? va.localeCompare(vb) : vb.localeCompare(va);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });

  var file = document.getElementById("spec-file");
  if (file) {
    file.addEventListener("change", function () {
      if (!file.files.length) { return; }
      var reader = new FileReader();
      reader.onload = function () { document.getElementById("spec").value = reader.result; };
      reader.readAsText(file.files[0]);
    });
  }
})();
