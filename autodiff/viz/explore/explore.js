// The explorer's page: graphviz's SVG, a details panel, and a stepper over the engine's
// backward order. Contract (API.md): data-label on nodes, data-role="details"/"step",
// data-action="next"/"prev".
function render({ model, el }) {
  const data = model.get("data");
  const nodes = data.nodes, steps = data.steps;
  el.innerHTML = `
    <style>
      .adx-on polygon { stroke: #ff7f0e; stroke-width: 3; }
      .adx-edge path { stroke: #ff7f0e; stroke-width: 3; }
      .adx-step polygon { fill: #fde68a; }
      .adx-send polygon { fill: #dbeafe; }
      .adx pre { background: #f8f8f8; padding: 6px; white-space: pre-wrap; }
      .adx g.node { cursor: pointer; }
    </style>
    <div class="adx">
      <div><button data-action="prev">&larr; prev</button>
        <input type="range" data-role="slider" min="0" max="${steps.length}" value="0">
        <button data-action="next">next &rarr;</button>
        <span data-role="step"></span></div>
      <div data-role="graph" style="overflow:auto; max-height: 70vh"></div>
      <div data-role="details"><em>click a node</em></div>
    </div>`;
  const graph = el.querySelector('[data-role="graph"]');
  graph.innerHTML = data.svg;
  const byId = new Map();
  for (const g of graph.querySelectorAll("g.node")) {
    const k = Number(g.querySelector("title").textContent.slice(1));
    g.setAttribute("data-label", nodes[k].label);
    g.setAttribute("data-node", k);
    const t = g.querySelectorAll("text");
    const last = t[t.length - 1];
    const extra = document.createElementNS("http://www.w3.org/2000/svg", "title");
    extra.textContent = `value ${nodes[k].value}\ngrad ${nodes[k].grad}`;
    g.appendChild(extra);
    byId.set(k, g);
  }
  const edges = new Map();
  for (const g of graph.querySelectorAll("g.edge")) {
    const [a, b] = g.querySelector("title").textContent.split("->").map((s) => Number(s.trim().slice(1)));
    if (!edges.has(b)) edges.set(b, []);
    edges.get(b).push({ from: a, el: g });
  }
  const details = el.querySelector('[data-role="details"]');
  const stepEl = el.querySelector('[data-role="step"]');
  const slider = el.querySelector('[data-role="slider"]');
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");
  function clear(cls) { for (const e of graph.querySelectorAll("." + cls)) e.classList.remove(cls); }
  function select(k) {
    clear("adx-on"); clear("adx-edge");
    const n = nodes[k];
    byId.get(k).classList.add("adx-on");
    const local = n.inputs.map((i) => nodes[i].label).join(", ");
    let html = `<h3>${esc(n.label)}</h3><p>op: <b>${esc(n.op)}</b>${local ? " of " + esc(local) : ""}</p>
      <p>value: <span data-role="value">${esc(n.value)}</span></p>
      <p>gradient d(root)/d(${esc(n.label)}): <span data-role="grad">${esc(n.grad)}</span></p>`;
    if (n.chain) {
      html += `<p>chain rule, total <span data-role="total">${esc(n.chain.total)}</span>:</p><pre>${esc(n.chain.text)}</pre>`;
      for (const [node, i] of n.chain.edges) {
        const from = nodes[node].inputs[i];
        for (const e of edges.get(node) || []) if (e.from === from) e.el.classList.add("adx-edge");
        byId.get(node).classList.add("adx-on");
      }
    }
    details.innerHTML = html;
  }
  let at = 0;
  function show(k) {
    at = Math.max(0, Math.min(steps.length, k));
    slider.value = at;
    clear("adx-step"); clear("adx-send");
    if (at === 0) { stepEl.textContent = "before backward"; return; }
    const s = steps[at - 1];
    stepEl.textContent = `step ${at}/${steps.length}: ${s.label}`;
    byId.get(s.node).classList.add("adx-step");
    for (const p of s.sends) byId.get(p).classList.add("adx-send");
    details.innerHTML = `<pre data-role="step-text">${esc(s.text)}</pre>`;
  }
  graph.addEventListener("click", (ev) => {
    const g = ev.target.closest("g.node");
    if (g) select(Number(g.getAttribute("data-node")));
  });
  el.querySelector('[data-action="next"]').onclick = () => show(at + 1);
  el.querySelector('[data-action="prev"]').onclick = () => show(at - 1);
  slider.oninput = () => show(Number(slider.value));
  el.tabIndex = 0;
  el.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowRight") show(at + 1);
    if (ev.key === "ArrowLeft") show(at - 1);
  });
  show(0);
}
export default { render };
