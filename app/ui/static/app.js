// The dashboard's wiring: the API key form, the assistants and their graphs, the start-run
// form, and the live tables polled every couple of seconds.

import { api, getKey, setKey } from "./api.js";
import { badge, el, formatTime, renderIfChanged, shortId } from "./dom.js";
import { drawGraph, edgeItems } from "./graph.js";
import { RunView } from "./run-view.js";

const POLL_MS = 2000;
const STREAM_MODES = ["values", "updates", "custom"];
const $ = (id) => document.getElementById(id);

const runView = new RunView($("run-view"), showProblem);
let assistantsLoaded = false;

// -- notices -----------------------------------------------------------------------------

function showProblem(err) {
  const notice = $("notice");
  notice.textContent = err.message;
  notice.hidden = false;
  if (err.status === 401) $("api-key").focus({ preventScroll: true });
}

function clearProblem() {
  $("notice").hidden = true;
}

// -- API key -----------------------------------------------------------------------------

function initKeyForm() {
  $("api-key").value = getKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setKey($("api-key").value.trim());
    onKeyChanged();
  });
  $("forget-key").addEventListener("click", () => {
    $("api-key").value = "";
    setKey("");
    onKeyChanged();
  });
}

function onKeyChanged() {
  clearProblem();
  assistantsLoaded = false;
  refreshAssistants();
  refreshLive();
  // An open stream carries the key in its URL: open it again with the new one.
  const open = runView.current;
  if (open) runView.open(open.threadId, open.runId);
}

// -- assistants and graphs ----------------------------------------------------------------

function assistantLabel(a) {
  return a.name && a.name !== a.graph_id ? `${a.name} (${a.graph_id})` : a.graph_id;
}

async function refreshAssistants() {
  let info;
  let assistants;
  try {
    [info, assistants] = await Promise.all([
      api("info"),
      api("assistants/search", { method: "POST", body: { limit: 100, sort_by: "name", sort_order: "asc" } }),
    ]);
  } catch (err) {
    showProblem(err);
    return;
  }
  assistantsLoaded = true;
  $("server-info").textContent = `${info.server} ${info.version}`;
  $("stat-storage").textContent = info.storage;
  const list = $("assistant-list");
  if (!assistants.length) {
    list.replaceChildren(el("li", { className: "muted" }, "No assistants."));
  } else {
    list.replaceChildren(...assistants.map(assistantItem));
  }
  const select = $("run-assistant");
  const chosen = select.value;
  select.replaceChildren(
    ...assistants.map((a) => el("option", { value: a.assistant_id }, assistantLabel(a))),
  );
  if (assistants.some((a) => a.assistant_id === chosen)) select.value = chosen;
}

function assistantItem(a) {
  const showGraph = el("button", { type: "button", className: "link" }, "graph");
  showGraph.addEventListener("click", () => showGraphOf(a));
  const useIt = el("button", { type: "button", className: "link" }, "run…");
  useIt.addEventListener("click", () => {
    $("run-assistant").value = a.assistant_id;
    $("run-input").focus();
  });
  return el(
    "li",
    { dataset: { graphId: a.graph_id } },
    el("strong", {}, a.name || a.graph_id),
    " ",
    a.name && a.name !== a.graph_id ? el("span", { className: "muted" }, `graph ${a.graph_id} · `) : null,
    el("code", { className: "muted", title: a.assistant_id }, shortId(a.assistant_id)),
    " ",
    showGraph,
    useIt,
  );
}

async function showGraphOf(a) {
  const view = $("graph-view");
  $("graph-title").textContent = `Graph of ${assistantLabel(a)}`;
  view.hidden = false;
  try {
    const graph = await api(`assistants/${encodeURIComponent(a.assistant_id)}/graph`);
    $("graph-drawing").replaceChildren(drawGraph(graph));
    $("graph-edges").replaceChildren(...edgeItems(graph));
  } catch (err) {
    $("graph-drawing").replaceChildren(el("p", { className: "field-error" }, err.message));
    $("graph-edges").replaceChildren();
  }
}

// -- starting a run ------------------------------------------------------------------------

/** {value} or {error}: the run's input must be a JSON object, as graphs' state is. */
function parseInput(text) {
  if (!text.trim()) return { error: "Input is empty: enter a JSON object, e.g. {}." };
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `Input is not valid JSON: ${err.message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const kind = Array.isArray(value) ? "an array" : value === null ? "null" : `a ${typeof value}`;
    return { error: `Input must be a JSON object like {"key": "value"}, not ${kind}.` };
  }
  return { value };
}

function setInputError(message) {
  const field = $("run-input");
  const error = $("run-input-error");
  error.textContent = message ?? "";
  error.hidden = !message;
  if (message) field.setAttribute("aria-invalid", "true");
  else field.removeAttribute("aria-invalid");
}

function initRunForm() {
  const form = $("run-form");
  $("run-input").addEventListener("input", () => {
    if (!$("run-input-error").hidden && !parseInput($("run-input").value).error) setInputError(null);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const parsed = parseInput($("run-input").value);
    if (parsed.error) {
      setInputError(parsed.error);
      $("run-input").focus();
      return;
    }
    const assistantId = $("run-assistant").value;
    if (!assistantId) {
      setInputError("Choose an assistant first.");
      return;
    }
    setInputError(null);
    const button = $("start-run");
    button.disabled = true;
    try {
      const thread = await api("threads", { method: "POST", body: { metadata: { created_by: "runyard-ui" } } });
      const run = await api(`threads/${thread.thread_id}/runs`, {
        method: "POST",
        body: { assistant_id: assistantId, input: parsed.value, stream_mode: STREAM_MODES },
      });
      runView.open(thread.thread_id, run.run_id);
      refreshLive();
    } catch (err) {
      setInputError(`Could not start the run: ${err.message}`);
      if (err.status === 401) showProblem(err);
    } finally {
      button.disabled = false;
    }
  });
}

// -- live tables ---------------------------------------------------------------------------

function openButton(threadId, runId) {
  const button = el("button", { type: "button", className: "link", title: runId }, el("code", {}, shortId(runId)));
  button.addEventListener("click", () => runView.open(threadId, runId));
  return button;
}

function runRows(runs) {
  if (!runs.length) return [el("tr", {}, el("td", { colSpan: 7, className: "muted" }, "No runs yet."))];
  const current = runView.current?.runId;
  return runs.map((r) =>
    el(
      "tr",
      { className: r.run_id === current ? "selected" : "", dataset: { runId: r.run_id } },
      el("td", {}, openButton(r.thread_id, r.run_id)),
      el("td", {}, el("code", { title: r.thread_id }, shortId(r.thread_id))),
      el("td", {}, badge(r.status)),
      el("td", { className: "num" }, String(r.attempt)),
      el("td", {}, formatTime(r.started_at)),
      el("td", {}, formatTime(r.ended_at)),
      el("td", { className: "error-text" }, r.error ? r.error.message ?? JSON.stringify(r.error) : ""),
    ),
  );
}

function threadRows(threads) {
  if (!threads.length) return [el("tr", {}, el("td", { colSpan: 4, className: "muted" }, "No threads yet."))];
  return threads.map((t) =>
    el(
      "tr",
      {},
      el("td", {}, el("code", { title: t.thread_id }, shortId(t.thread_id))),
      el("td", {}, badge(t.status)),
      el("td", {}, formatTime(t.created_at)),
      el("td", {}, formatTime(t.updated_at)),
    ),
  );
}

function showReadiness(ready) {
  const node = $("readiness");
  node.textContent = ready.status;
  node.className = `badge ready-${ready.status}`;
  node.title = Object.entries(ready).map(([k, v]) => `${k}: ${v}`).join(", ");
  const broker = Object.keys(ready).find((k) => !["status", "mode", "postgres", "sqlite"].includes(k));
  if (broker) $("stat-broker").textContent = `${broker} (${ready[broker]}, ${ready.mode})`;
}

function showOverview(overview) {
  $("stat-pending").textContent = overview.runs.pending;
  $("stat-running").textContent = overview.runs.running;
  $("stat-busy").textContent = overview.workers.busy;
  $("stat-idle").textContent = `${overview.workers.idle} of ${overview.workers.size}`;
}

async function refreshLive() {
  const [overview, ready, runs, threads] = await Promise.allSettled([
    api("ui/api/overview"),
    api("ready", { allow: [503] }),
    api("runs?limit=50"),
    api("threads/search", { method: "POST", body: { limit: 20 } }),
  ]);
  const failed = [overview, ready, runs, threads].find((r) => r.status === "rejected");
  if (failed) showProblem(failed.reason);
  else clearProblem();
  if (overview.status === "fulfilled") showOverview(overview.value);
  if (ready.status === "fulfilled") showReadiness(ready.value);
  if (runs.status === "fulfilled") {
    renderIfChanged($("runs-body"), { runs: runs.value, current: runView.current }, () => runRows(runs.value));
    for (const r of runs.value) runView.noteRun(r);
  }
  if (threads.status === "fulfilled") renderIfChanged($("threads-body"), threads.value, threadRows);
  if (!failed && !assistantsLoaded) refreshAssistants();
}

function poll() {
  const next = () => setTimeout(poll, POLL_MS);
  if (document.hidden) return next();
  refreshLive().finally(next);
}

initKeyForm();
initRunForm();
refreshAssistants();
poll();
