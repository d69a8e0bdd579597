// LogFleet charts: every <figure class="chart" data-series="..."> is drawn with uPlot into its
// .plot element. data-series holds the JSON itself (what htmx swaps in keeps it: htmx drops
// <script> elements) or the id of a json_script element: {name, type, agg, step, start, end,
// fill, series: [{label, points: [[unix seconds, value], ...]}]}. Buckets the query left out are drawn as `fill`
// (0 where an empty bucket means nothing happened, else a gap). Charts follow their container's
// width (a phone included) and are drawn again when htmx swaps new ones in. No inline script: the
// page's Content-Security-Policy forbids it.
(function () {
  "use strict";
  // Readable on the light and the dark theme alike.
  var PALETTE = ["#3b82f6", "#16a34a", "#dc2626", "#ca8a04", "#9333ea", "#0891b2", "#db2777", "#64748b"];
  var drawn = new Map(); // figure -> {plot, observer}

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  var compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 3 });
  function formatValue(value) {
    if (value === null || value === undefined) { return "–"; }
    var size = Math.abs(value);
    if (size !== 0 && size < 0.001) { return value.toExponential(2); }
    return compact.format(value);
  }

  // One x value per bucket from start to end (the query's buckets start at multiples of step).
  function align(spec) {
    var step = spec.step, first = Math.floor(spec.start / step) * step, xs = [], index = {};
    for (var t = first; t < spec.end; t += step) { index[t] = xs.length; xs.push(t); }
    var data = [xs];
    spec.series.forEach(function (line) {
      var ys = new Array(xs.length).fill(spec.fill === undefined ? null : spec.fill);
      line.points.forEach(function (point) {
        var i = index[point[0]];
        if (i !== undefined) { ys[i] = point[1]; }
      });
      data.push(ys);
    });
    return data;
  }

  function height(plotEl) { return plotEl.clientWidth < 480 ? 200 : 260; }

  function options(spec, plotEl) {
    var muted = cssVar("--muted", "#5b6470"), line = cssVar("--line", "#dde1e6"), panel = cssVar("--panel", "#fff");
    var axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    var series = [{}];
    spec.series.forEach(function (s, i) {
      series.push({
        label: s.label,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        points: { fill: panel },
        value: function (u, v) { return formatValue(v); },
      });
    });
    return {
      width: plotEl.clientWidth,
      height: height(plotEl),
      series: series,
      scales: { x: { time: true } },
      // Times in UTC, like the explorer's custom range and the API.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      axes: [
        axis,
        Object.assign({}, axis, { size: 56, values: function (u, splits) { return splits.map(formatValue); } }),
      ],
      legend: { show: spec.series.length > 0 },
      cursor: { drag: { x: true, y: false } },
    };
  }

  function destroy(figure) {
    var entry = drawn.get(figure);
    if (!entry) { return; }
    entry.observer.disconnect();
    entry.plot.destroy();
    drawn.delete(figure);
  }

  function readSpec(value) {
    if (!value) { return null; }
    if (value.charAt(0) === "{") { return JSON.parse(value); }
    var source = document.getElementById(value);
    return source ? JSON.parse(source.textContent) : null;
  }

  function draw(figure) {
    if (drawn.has(figure) || typeof uPlot === "undefined") { return; }
    var plotEl = figure.querySelector(".plot");
    var spec = readSpec(figure.getAttribute("data-series"));
    if (!spec || !plotEl) { return; }
    var plot = new uPlot(options(spec, plotEl), align(spec), plotEl);
    var width = plotEl.clientWidth;
    var observer = new ResizeObserver(function () {
      if (plotEl.clientWidth !== width && plotEl.clientWidth > 0) {
        width = plotEl.clientWidth;
        plot.setSize({ width: width, height: height(plotEl) });
      }
    });
    observer.observe(plotEl);
    drawn.set(figure, { plot: plot, observer: observer });
  }

  function scan(root) {
    drawn.forEach(function (_entry, figure) { if (!figure.isConnected) { destroy(figure); } });
    var scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("figure.chart[data-series]")) { draw(scope); }
    scope.querySelectorAll("figure.chart[data-series]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { scan(document); });
  document.addEventListener("htmx:load", function (event) { scan(event.detail.elt); });
  document.addEventListener("htmx:afterSwap", function (event) { scan(event.detail.target); });
  document.addEventListener("htmx:beforeCleanupElement", function (event) {
    if (drawn.has(event.target)) { destroy(event.target); }
  });
  // Colours follow the system's light or dark theme: draw again when it changes.
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
    Array.from(drawn.keys()).forEach(function (figure) { destroy(figure); draw(figure); });
  });
})();
