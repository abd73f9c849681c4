// Small DOM helpers shared by the views.

export const TERMINAL = new Set(["success", "error", "timeout", "interrupted"]);

/** el("td", {className: "x"}, "text", child): children may be strings, nodes or null. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function badge(status) {
  return el("span", { className: `badge status-${status}` }, status);
}

export function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

export function formatTime(iso) {
  if (!iso) return el("span", { className: "muted" }, "–");
  const when = new Date(iso);
  return el("time", { dateTime: iso, title: iso }, when.toLocaleTimeString());
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** Replace `node`'s children, but only when what they show changed: polling every couple of
 * seconds must not rebuild rows under the user's pointer for nothing. */
const rendered = new WeakMap();

export function renderIfChanged(node, data, build) {
  const key = JSON.stringify(data);
  if (rendered.get(node) === key) return;
  rendered.set(node, key);
  node.replaceChildren(...build(data));
}
