// A graph from GET /assistants/{id}/graph drawn as a small SVG: nodes in rows by their distance
// from __start__, __end__ last. Good enough for the graphs agents have (a handful of nodes);
// anything denser still reads from the edge list beside it.

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const NODE_H = 28;
const ROW_GAP = 56;
const COL_GAP = 24;
const CHAR_W = 7.5;
const PAD = 16;
const LOOP_W = 48; // room on the right for self-loops and edges that go back up

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function label(id) {
  return id === "__start__" ? "start" : id === "__end__" ? "end" : id;
}

/** Rows of node ids: breadth-first depth from the entry nodes, so cycles cannot loop. */
function layers(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const next = new Map(ids.map((id) => [id, []]));
  const incoming = new Set();
  for (const e of edges) {
    next.get(e.source)?.push(e.target);
    if (e.source !== e.target) incoming.add(e.target);
  }
  const entries = ids.includes("__start__") ? ["__start__"] : ids.filter((id) => !incoming.has(id));
  const depth = new Map(entries.map((id) => [id, 0]));
  const queue = [...entries];
  while (queue.length) {
    const id = queue.shift();
    for (const target of next.get(id) ?? []) {
      if (!depth.has(target)) {
        depth.set(target, depth.get(id) + 1);
        queue.push(target);
      }
    }
  }
  const deepest = Math.max(0, ...[...depth.entries()].filter(([id]) => id !== "__end__").map(([, d]) => d));
  for (const id of ids) if (!depth.has(id)) depth.set(id, deepest + 1);
  if (depth.has("__end__")) depth.set("__end__", Math.max(...depth.values()) + 1);
  const rows = [];
  for (const id of ids) (rows[depth.get(id)] ??= []).push(id);
  return rows.filter(Boolean);
}

export function drawGraph(graph) {
  const nodes = graph.nodes ?? [];
  const edges = graph.edges ?? [];
  const rows = layers(nodes, edges);
  const widthOf = (id) => Math.max(56, label(id).length * CHAR_W + 24);
  const rowWidths = rows.map((row) => row.reduce((sum, id) => sum + widthOf(id), 0) + COL_GAP * (row.length - 1));
  const inner = Math.max(120, ...rowWidths);
  const width = inner + PAD * 2 + LOOP_W;
  const height = rows.length * NODE_H + (rows.length - 1) * ROW_GAP + PAD * 2;

  const box = new Map();
  rows.forEach((row, r) => {
    let x = PAD + (inner - rowWidths[r]) / 2;
    const y = PAD + r * (NODE_H + ROW_GAP);
    for (const id of row) {
      box.set(id, { x, y, w: widthOf(id), row: r });
      x += widthOf(id) + COL_GAP;
    }
  });

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": `Graph with ${nodes.length} nodes and ${edges.length} edges`,
  });
  const defs = svg("defs");
  const marker = svg("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
  });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }));
  defs.append(marker);
  root.append(defs);

  for (const e of edges) {
    const a = box.get(e.source);
    const b = box.get(e.target);
    if (!a || !b) continue;
    let d;
    if (e.source === e.target) {
      const x = a.x + a.w;
      const y = a.y + NODE_H / 2;
      d = `M${x},${y - 6} C${x + 36},${y - 28} ${x + 36},${y + 28} ${x},${y + 6}`;
    } else if (b.row > a.row) {
      d = `M${a.x + a.w / 2},${a.y + NODE_H} L${b.x + b.w / 2},${b.y}`;
    } else {
      // Back or sideways: around the right-hand side so it crosses no row.
      const out = Math.max(a.x + a.w, b.x + b.w) + LOOP_W - 8;
      d = `M${a.x + a.w},${a.y + NODE_H / 2} C${out},${a.y} ${out},${b.y + NODE_H} ${b.x + b.w},${b.y + NODE_H / 2}`;
    }
    root.append(svg("path", { d, class: e.conditional ? "edge conditional" : "edge", "marker-end": "url(#arrow)" }));
  }

  for (const n of nodes) {
    const { x, y, w } = box.get(n.id);
    const terminal = n.id === "__start__" || n.id === "__end__";
    const group = svg("g", { class: terminal ? "node terminal" : "node" });
    group.append(svg("rect", { x, y, width: w, height: NODE_H, rx: terminal ? NODE_H / 2 : 6 }));
    group.append(svg("text", { x: x + w / 2, y: y + NODE_H / 2 + 4, "text-anchor": "middle" }, label(n.id)));
    root.append(group);
  }
  return root;
}

export function edgeItems(graph) {
  return (graph.edges ?? []).map((e) =>
    el("li", {}, `${label(e.source)} → ${label(e.target)}`, e.conditional ? el("span", { className: "muted" }, " (conditional)") : null),
  );
}
