// The explorer's page: graphviz's SVG of one view at a time, a details panel, and a
// stepper over the engine's backward order. Contract (API.md): data-label on nodes,
// data-role="details"/"step", data-action="next"/"prev". Groups fold into one node
// (data-group); data-action="expand"/"collapse"/"expand-all"/"collapse-all" switch views.
// New data (the live training view sends each new step's graph) redraws the page,
// keeping what the reader chose (view, selected node, step, scroll) where the new graph
// has it: mount returns a function that tells that state, and takes the last one.
const FIT = 0.7;  // the smallest scale a graph is shrunk to, to fit the page's width

function mount(data, el, keep) {
  if (!data || !data.nodes) {
    el.innerHTML = '<div class="adx" data-role="no-graph"><em>no graph yet</em></div>';
    return null;
  }
  const nodes = data.nodes, steps = data.steps, groups = data.groups || [], views = data.views;
  el.innerHTML = `
    <style>
      .adx-on polygon, .adx-on path { stroke: #ff7f0e; stroke-width: 3; }
      .adx-edge path { stroke: #ff7f0e; stroke-width: 3; }
      .adx-step polygon, .adx-step path { fill: #fde68a; }
      .adx-send polygon, .adx-send path { fill: #dbeafe; }
      .adx pre { background: #f8f8f8; padding: 6px; white-space: pre-wrap; }
      .adx g.node { cursor: pointer; }
      .adx [data-role="crumbs"] a { cursor: pointer; color: #1d4ed8; }
    </style>
    <div class="adx">
      <div><button data-action="prev">&larr; prev</button>
        <input type="range" data-role="slider" min="0" max="${steps.length}" value="0">
        <button data-action="next">next &rarr;</button>
        <span data-role="step"></span></div>
      <div data-role="groups" ${groups.length ? "" : 'style="display:none"'}>
        <span data-role="crumbs"></span>
        <button data-action="collapse">collapse</button>
        <button data-action="collapse-all">fold all groups</button>
        <button data-action="expand-all" ${data.full === null ? "disabled" : ""}>open all groups</button>
      </div>
      <div data-role="graph" style="overflow:auto; max-height: 70vh"></div>
      <div data-role="details"><em>click a node</em></div>
    </div>`;
  const graph = el.querySelector('[data-role="graph"]');
  const details = el.querySelector('[data-role="details"]');
  const stepEl = el.querySelector('[data-role="step"]');
  const slider = el.querySelector('[data-role="slider"]');
  const crumbs = el.querySelector('[data-role="crumbs"]');
  // (also for attribute values: a quote in a label must not end the attribute)
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  // byId: DOT name -> node; copies: DOT name -> its dashed copies (drawn beside far consumers)
  let view = null, expanded = new Set(), byId = new Map(), copies = new Map(), edges = new Map(), selected = null;

  function tooltip(g, text) {
    const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
    t.textContent = text;
    g.appendChild(t);
  }
  // The DOT node standing for node k in this view: itself, or the folded group around it.
  function rep(k) {
    if (byId.has("n" + k)) return "n" + k;
    const j = nodes[k].groups.find((j) => !expanded.has(j) && byId.has("g" + j));
    return j === undefined ? null : "g" + j;
  }
  function mark(id, cls) {
    const g = id && byId.get(id);
    if (g) g.classList.add(cls);
    for (const c of copies.get(id) || []) c.classList.add(cls);
  }
  // Scroll the graph so that DOT node `id` is in sight (a wide view scrolls: an opened
  // group or the step's node may lie beyond its edge).
  function reveal(id) {
    const g = id && byId.get(id);
    if (!g) return;
    const r = g.getBoundingClientRect(), box = graph.getBoundingClientRect();
    if (r.left < box.left || r.right > box.right) graph.scrollLeft += r.left - box.left - (box.width - r.width) / 2;
    if (r.top < box.top || r.bottom > box.bottom) graph.scrollTop += r.top - box.top - (box.height - r.height) / 2;
  }
  function clear(cls) { for (const e of graph.querySelectorAll("." + cls)) e.classList.remove(cls); }

  function showView(v) {
    view = v;
    expanded = new Set(views[v].expanded);
    graph.innerHTML = views[v].svg;
    // A graph a little wider than the page is scaled down to fit (its text stays
    // readable); a much wider one keeps its size and scrolls.
    const svg = graph.querySelector("svg"), room = graph.clientWidth;
    const wide = svg ? svg.getBoundingClientRect().width : 0;
    if (svg && room > 0 && wide > room && room / wide >= FIT) {
      svg.style.width = `${room}px`;
      svg.style.height = "auto";
    }
    byId = new Map(); copies = new Map(); edges = new Map();
    for (const g of graph.querySelectorAll("g.node")) {
      const title = g.querySelector("title").textContent.trim(), id = title.split("~")[0];
      const k = Number(id.slice(1));
      if (title !== id) {  // a copy of node k: clicks and highlights act on k itself
        g.setAttribute("data-node", k);
        g.setAttribute("data-copy", "");
        tooltip(g, `${nodes[k].label} (drawn again by this consumer)\nvalue ${nodes[k].value}\ngrad ${nodes[k].grad}`);
        copies.set(id, (copies.get(id) || []).concat([g]));
        continue;
      }
      if (id[0] === "n") {
        g.setAttribute("data-label", nodes[k].label);
        g.setAttribute("data-node", k);
        tooltip(g, `value ${nodes[k].value}\ngrad ${nodes[k].grad}`);
      } else {
        g.setAttribute("data-label", groups[k].label);
        g.setAttribute("data-group", k);
        tooltip(g, `${groups[k].label}: ${groups[k].size} nodes (${groups[k].ops})`);
      }
      byId.set(id, g);
    }
    for (const g of graph.querySelectorAll("g.edge")) {
      const key = g.querySelector("title").textContent.split("->").map((s) => s.trim().split("~")[0]).join(">");
      edges.set(key, g);
    }
    const path = [];
    for (let j = views[v].group; j !== null && j !== undefined; j = groups[j].parent) path.unshift(j);
    crumbs.innerHTML = [`<a data-view="0">whole graph</a>`].concat(path.map((j) =>
      groups[j].view === null ? esc(groups[j].label) : `<a data-view="${groups[j].view}">${esc(groups[j].label)}</a>`))
      .join(" &rsaquo; ") + (v === data.full ? " &rsaquo; every group open" : "");
    el.querySelector('[data-action="collapse"]').disabled = views[v].group === null && v !== data.full;
    graph.scrollTop = graph.scrollLeft = 0;
    const opened = views[v].group;
    if (opened !== null && opened !== undefined)  // the opened group's first node in sight
      reveal("n" + nodes.findIndex((n, k) => n.groups.includes(opened) && byId.has("n" + k)));
    if (selected && selected.group !== undefined && !byId.has("g" + selected.group)) selected = null;
    if (at > 0) show(at);
    else if (selected) select(selected);
    else details.innerHTML = "<em>click a node</em>";
  }

  function select(item) {
    selected = item;
    clear("adx-on"); clear("adx-edge");
    if (item.group !== undefined) return selectGroup(item.group);
    const k = item.node, n = nodes[k];
    mark(rep(k), "adx-on");
    const local = n.inputs.map((i) => nodes[i].label).join(", ");
    let html = `<h3>${esc(n.label)}</h3><p>op: <b>${esc(n.op)}</b>${local ? " of " + esc(local) : ""}</p>
      <p>value: <span data-role="value">${esc(n.value)}</span></p>
      <p>gradient d(root)/d(${esc(n.label)}): <span data-role="grad">${esc(n.grad)}</span>${
        n.grad === "none" && n.chain ? " (it does not require grad: backward() computes none for it; the chain rule below says what it would be)" : ""}</p>`;
    if (n.hooked) html += `<p data-role="hook-note"><em>backward() passes this gradient through a hook
      (registered here or on a node it comes through), which may change it. The numbers here are
      the chain rule's, without hooks: a page never runs your code.</em></p>`;
    if (n.groups.length) html += `<p>in: ${n.groups.map((j) => esc(groups[j].label)).join(" &rsaquo; ")}</p>`;
    if (n.chain) {
      html += `<p>chain rule, total <span data-role="total">${esc(n.chain.total)}</span>:</p><pre>${esc(n.chain.text)}</pre>`;
      for (const [node, i] of n.chain.edges) {
        const a = rep(nodes[node].inputs[i]), b = rep(node);
        if (a !== b && edges.has(a + ">" + b)) edges.get(a + ">" + b).classList.add("adx-edge");
        mark(b, "adx-on");
      }
    } else if (k !== data.root) {
      html += "<p><em>chain-rule paths not listed: the graph is too large to list them for every node (the gradient above is exact)</em></p>";
    }
    details.innerHTML = html;
  }
  function selectGroup(j) {
    const g = groups[j];
    mark("g" + j, "adx-on");
    const names = (ks) => ks.map((k) => esc(nodes[k].label)).join(", ");
    let html = `<h3>${esc(g.label)}</h3><p>a group of <b>${g.size}</b> nodes: ${esc(g.ops)}</p>
      <p>inputs: ${names(g.inputs)}; outputs: ${names(g.outputs)}</p>`;
    if (g.local.length) {
      const out = nodes[g.outputs[0]].label;
      html += "<p>local derivatives:</p><ul data-role=\"local\">" + g.local.map((d) =>
        `<li title="${esc(d.tip)}">∂${esc(out)}/∂${esc(nodes[d.input].label)} = ${esc(d.text)}</li>`).join("") + "</ul>";
    }
    html += g.view === null ? "<p><em>too large to open here</em></p>"
      : `<button data-action="expand" data-view="${g.view}">open this group</button>`;
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
    mark(rep(s.node), "adx-step");
    reveal(rep(s.node));
    for (const p of s.sends) if (rep(p) !== rep(s.node)) mark(rep(p), "adx-send");
    details.innerHTML = `<pre data-role="step-text">${esc(s.text)}</pre>`;
  }

  graph.addEventListener("click", (ev) => {
    const g = ev.target.closest("g.node");
    if (!g) return;
    if (g.hasAttribute("data-group")) select({ group: Number(g.getAttribute("data-group")) });
    else select({ node: Number(g.getAttribute("data-node")) });
  });
  graph.addEventListener("dblclick", (ev) => {
    const g = ev.target.closest("g.node[data-group]");
    const j = g && Number(g.getAttribute("data-group"));
    if (g && groups[j].view !== null) showView(groups[j].view);
  });
  el.addEventListener("click", (ev) => {
    const t = ev.target.closest("[data-view]");
    if (t && !t.closest('[data-role="graph"]')) showView(Number(t.getAttribute("data-view")));
  });
  el.querySelector('[data-action="collapse"]').onclick = () => {
    const j = views[view].group;
    if (j === null) return showView(0);
    const p = groups[j].parent;
    showView(p === null || groups[p].view === null ? 0 : groups[p].view);
  };
  el.querySelector('[data-action="collapse-all"]').onclick = () => showView(0);
  el.querySelector('[data-action="expand-all"]').onclick = () => { if (data.full !== null) showView(data.full); };
  el.querySelector('[data-action="next"]').onclick = () => show(at + 1);
  el.querySelector('[data-action="prev"]').onclick = () => show(at - 1);
  slider.oninput = () => show(Number(slider.value));
  el.tabIndex = 0;
  el.addEventListener("keydown", (ev) => {
    if (ev.target === slider) return;  // (the slider moves itself, and says so by "input")
    if (ev.key === "ArrowRight") show(at + 1);
    if (ev.key === "ArrowLeft") show(at - 1);
  });
  showView(keep && keep.view < views.length ? keep.view : data.start || 0);
  stepEl.textContent = "before backward";
  if (keep) {
    const k = nodes.findIndex((n) => n.label === keep.node);
    const j = groups.findIndex((g) => g.label === keep.group);
    if (k >= 0) select({ node: k });
    else if (j >= 0 && byId.has("g" + j)) select({ group: j });
    if (keep.at) show(keep.at);
    [graph.scrollTop, graph.scrollLeft] = keep.scroll;
  }
  return () => ({
    view, at, scroll: [graph.scrollTop, graph.scrollLeft],
    node: selected && selected.node !== undefined ? nodes[selected.node].label : null,
    group: selected && selected.group !== undefined ? groups[selected.group].label : null,
  });
}

function render({ model, el: host }) {
  // each drawing gets a fresh element, so its listeners go with it
  let state = null;
  const redraw = () => {
    const keep = state ? state() : null;
    const el = document.createElement("div");
    host.replaceChildren(el);
    state = mount(model.get("data"), el, keep);
  };
  model.on("change:data", redraw);
  redraw();
  return () => model.off("change:data", redraw);
}
export default { render };
