// The live training view: line charts of the curves in the model's `data`
// ({title, xlabel, curves: {name: [[x, y], ...]}, gradients: {layer: [[x, norm], ...]},
//  graph: {step, nodes} or {error} of the explorer shown under it}),
// redrawn whenever Python sends new data. Plain SVG, no libraries, so the same module
// runs inline in Jupyter (anywidget) and in a saved page opened from file://.

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                 "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
const W = 420, H = 260, PAD = { left: 62, right: 12, top: 28, bottom: 40 };

function el(tag, attrs, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, s, attrs) {
  const t = el("text", Object.assign({ x, y, "font-size": 13, fill: "#222" }, attrs), parent);
  t.textContent = s;
  return t;
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

// Round tick positions for [lo, hi]: 1, 2 or 5 times a power of ten apart.
function ticks(lo, hi, count) {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / count, p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

// Log-scale ticks (as log10) for a range under two decades: 1, 2 and 5 times each power
// of ten in it, so that every decade the range touches gets its labels.
function logTicks(y0, y1) {
  const out = [];
  for (let e = Math.floor(y0); e <= Math.ceil(y1); e++) {
    for (const m of [1, 2, 5]) {
      const t = Math.log10(m) + e;
      if (t >= y0 - 1e-9 && t <= y1 + 1e-9) out.push(t);
    }
  }
  // (inside one step of 1-2-5: evenly spaced values instead)
  return out.length >= 2 ? out
    : ticks(Math.pow(10, y0), Math.pow(10, y1), 4).filter((v) => v > 0).map(Math.log10);
}

// One chart: every series a polyline with a legend entry; `log` for a log-scale y axis.
function chart(parent, role, title, series, xlabel, log) {
  const box = document.createElement("div");
  box.className = "adl-chart";
  box.style.cssText = "display:inline-block;vertical-align:top;margin-right:8px";
  box.dataset.role = role;
  parent.appendChild(box);
  const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` }, box);
  text(svg, W / 2, 18, title, { "text-anchor": "middle", "font-weight": "bold" });
  const names = Object.keys(series).filter((n) => series[n].length > 0);
  if (names.length === 0) {
    text(svg, W / 2, H / 2, "no data yet", { "text-anchor": "middle", fill: "#888" });
    return;
  }
  const ty = (v) => (log ? Math.log10(v) : v);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const n of names) for (const [x, y] of series[n]) {
    if (!Number.isFinite(y) || (log && y <= 0)) continue;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x);
    y0 = Math.min(y0, ty(y)); y1 = Math.max(y1, ty(y));
  }
  if (!Number.isFinite(y0)) { y0 = 0; y1 = 1; x0 = 0; x1 = 1; }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const margin = (y1 - y0) * 0.05;
  y0 -= margin; y1 += margin;
  const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const py = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  const axis = el("g", { stroke: "#999", "stroke-width": 1 }, svg);
  el("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }, axis);
  el("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }, axis);
  for (const v of ticks(x0, x1, 5)) {
    text(svg, px(v), H - PAD.bottom + 16, fmt(v), { "text-anchor": "middle", "font-size": 11 });
  }
  // (log scale: ticks at round values, decades when the range spans more than one)
  const yticks = !log ? ticks(y0, y1, 4)
    : y1 - y0 >= 2 ? ticks(Math.ceil(y0), Math.floor(y1), 4).filter(Number.isInteger)
    : logTicks(y0, y1);
  for (const v of yticks) {
    text(svg, PAD.left - 6, py(v) + 4, log ? fmt(Math.pow(10, v)) : fmt(v),
         { "text-anchor": "end", "font-size": 11 });
    el("line", { x1: PAD.left, y1: py(v), x2: W - PAD.right, y2: py(v), stroke: "#eee" }, svg);
  }
  text(svg, (PAD.left + W - PAD.right) / 2, H - 6, xlabel, { "text-anchor": "middle", "font-size": 12 });
  const legend = document.createElement("div");
  legend.style.cssText = `max-width:${W}px;padding-left:${PAD.left}px`;
  box.appendChild(legend);
  names.forEach((n, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const pts = series[n].filter(([, y]) => Number.isFinite(y) && !(log && y <= 0))
      .map(([x, y]) => `${px(x).toFixed(1)},${py(ty(y)).toFixed(1)}`).join(" ");
    const line = el("polyline", { points: pts, fill: "none", stroke: colour, "stroke-width": 2 }, svg);
    line.dataset.series = n;
    const last = series[n][series[n].length - 1];
    const item = document.createElement("span");
    item.className = "adl-legend-item";
    item.dataset.latest = n;
    const swatch = document.createElement("span");
    swatch.style.cssText = `display:inline-block;width:16px;height:3px;margin:0 4px 3px 0;` +
      `background:${colour};vertical-align:middle`;
    item.append(swatch, `${n}: ${fmt(last[1])}`);
    item.style.cssText = "margin-right:12px;font-size:12px;white-space:nowrap";
    legend.appendChild(item);
  });
}

function draw(model, root) {
  const data = model.get("data") || {};
  root.replaceChildren();
  const curves = data.curves || {};
  const losses = {}, metrics = {};
  for (const [n, pts] of Object.entries(curves)) (n.includes("loss") ? losses : metrics)[n] = pts;
  const xlabel = data.xlabel || "step";
  chart(root, "loss-chart", "loss", losses, xlabel, false);
  if (Object.keys(metrics).length) chart(root, "metric-chart", "metrics", metrics, xlabel, false);
  const grads = data.gradients || {};
  if (Object.keys(grads).length) {
    chart(root, "gradient-chart", "gradient norm per layer (log scale)", grads, xlabel, true);
  }
  // the explorer of a step's graph is its own widget under this one; say which step it is
  const graph = data.graph;
  if (graph) {
    const caption = document.createElement("p");
    caption.dataset.role = "graph-caption";
    caption.style.cssText = "font-size:13px;color:#333;margin:4px 0";
    caption.textContent = graph.error ? `no graph shown: ${graph.error}`
      : `Below: the graph of ${xlabel} ${fmt(graph.step)} (${graph.nodes} nodes). ` +
        "Click a node for its gradient and chain-rule paths; step through backward.";
    root.appendChild(caption);
  }
}

function render({ model, el: host }) {
  const root = document.createElement("div");
  root.className = "adl-live";
  root.dataset.role = "training-view";
  host.appendChild(root);
  const redraw = () => draw(model, root);
  model.on("change:data", redraw);
  redraw();
  return () => model.off("change:data", redraw);
}

export default { render };
