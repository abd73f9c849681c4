// One run, live: its events through EventSource on GET /threads/{tid}/runs/{rid}/stream, then
// the thread's final state once the stream is over.
//
// The server closes the stream after a run's last event; EventSource then reconnects with
// Last-Event-ID and a finished run answers 204, which closes it for good. Rather than wait for
// that reconnect, any interruption asks the run's status: a terminal run is done.

import { api, ApiError, streamUrl } from "./api.js";
import { badge, el, pretty, TERMINAL } from "./dom.js";

// EventSource only delivers event types someone listens to, by exact name: these are the ones
// a run streams (per stream mode) plus the server's own.
const EVENT_NAMES = [
  "metadata", "values", "updates", "custom", "messages", "messages/partial",
  "messages/complete", "messages/metadata", "events", "debug", "tasks", "checkpoints",
  "error", "end",
];
const MAX_EVENTS = 500;
const RECHECK_MS = 1000;

export class RunView {
  constructor(root, onError) {
    this.root = root;
    this.onError = onError;
    this.$ = (id) => root.querySelector(`#${id}`);
    this.session = null;
  }

  get current() {
    return this.session ? { threadId: this.session.threadId, runId: this.session.runId } : null;
  }

  open(threadId, runId) {
    this.close();
    const session = { threadId, runId, source: null, done: false, count: 0 };
    this.session = session;
    this.root.hidden = false;
    this.$("run-id").textContent = runId;
    this.$("run-thread").textContent = threadId;
    this.$("run-events").replaceChildren();
    this.$("event-count").textContent = "";
    this.$("final-state").textContent = "waiting for the run to end…";
    this.setStatus("pending");
    this.setConnection("connecting");
    this.root.scrollIntoView({ block: "start" });

    const source = new EventSource(streamUrl(`threads/${threadId}/runs/${runId}/stream`));
    session.source = source;
    source.addEventListener("open", () => this.live(session) && this.setConnection("streaming"));
    for (const name of EVENT_NAMES) {
      source.addEventListener(name, (event) => this.onEvent(session, name, event));
    }
    this.checkRun(session);
  }

  close() {
    this.session?.source?.close();
    this.session = null;
  }

  live(session) {
    return session === this.session && !session.done;
  }

  setStatus(status) {
    const node = this.$("run-status");
    node.className = badge(status).className;
    node.textContent = status;
  }

  setConnection(text) {
    this.$("run-connection").textContent = text;
  }

  /** A run row from the page's poll: keeps the badge current while events flow. */
  noteRun(run) {
    if (this.session && run.run_id === this.session.runId && !this.session.done) this.setStatus(run.status);
  }

  onEvent(session, name, event) {
    if (!this.live(session)) return;
    // "error" is both a server event (a MessageEvent with data) and EventSource's own signal
    // that the connection dropped or was refused.
    if (name === "error" && !(event instanceof MessageEvent)) {
      this.setConnection(session.source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
      this.checkRun(session, { dropped: true });
      return;
    }
    this.append(session, name, event.data);
    if (name === "end") this.finish(session);
  }

  append(session, name, data) {
    let shown = data;
    try {
      shown = pretty(JSON.parse(data));
    } catch {
      // Not JSON: show it as it came.
    }
    const list = this.$("run-events");
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    list.append(el("li", {}, el("span", { className: "event-name" }, name), el("pre", { className: "json" }, shown)));
    if (list.children.length > MAX_EVENTS) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
    session.count += 1;
    this.$("event-count").textContent = `(${session.count})`;
  }

  /** The run's status; after a dropped stream, a terminal run means the stream is over (an
   * old run opened afresh is terminal too, but its events are still to be replayed). */
  async checkRun(session, { dropped = false } = {}) {
    let run;
    try {
      run = await api(`threads/${session.threadId}/runs/${session.runId}`);
    } catch (err) {
      if (!this.live(session)) return;
      this.onError(err);
      if (err instanceof ApiError && err.status === 404) {
        this.setConnection("run not found");
        session.source.close();
      }
      return;
    }
    if (!this.live(session)) return;
    this.setStatus(run.status);
    if (dropped && TERMINAL.has(run.status) && session.source.readyState !== EventSource.OPEN) {
      this.finish(session);
    } else if (session.source.readyState === EventSource.CLOSED) {
      // Refused (a key missing, say) or closed before the run ended: look again shortly.
      setTimeout(() => this.live(session) && this.checkRun(session, { dropped }), RECHECK_MS);
    }
  }

  async finish(session) {
    session.done = true;
    session.source.close();
    this.setConnection("closed");
    try {
      const [run, state] = await Promise.all([
        api(`threads/${session.threadId}/runs/${session.runId}`),
        api(`threads/${session.threadId}/state`),
      ]);
      if (session !== this.session) return;
      this.setStatus(run.status);
      const shown = state.next?.length ? { values: state.values, next: state.next } : state.values;
      this.$("final-state").textContent = pretty(shown);
    } catch (err) {
      if (session !== this.session) return;
      this.$("final-state").textContent = `Could not read the final state: ${err.message}`;
      this.onError(err);
    }
  }
}
