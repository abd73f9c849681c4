// The official JavaScript clients (@langchain/langgraph-sdk, and @modelcontextprotocol/sdk for
// the MCP endpoint) against a running Runyard: `node client.mjs <scenario> <server url>
// [arguments]`. Each scenario asserts what a
// user of the client relies on and exits non-zero on the first failure; the pytest side
// (tests/e2e/test_js_client.py) starts the servers and reads what a scenario prints.
import assert from "node:assert/strict";
import { Client } from "@langchain/langgraph-sdk";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [scenario, apiUrl, ...args] = process.argv.slice(2);
const client = new Client({ apiUrl });

async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

const names = (parts) => parts.map((p) => p.event);

async function rejects(promise, status, detail) {
  const error = await promise.then(
    () => assert.fail(`expected HTTP ${status}`),
    (e) => e,
  );
  assert.equal(error.status, status, String(error));
  if (detail) assert.match(String(error.message), detail);
}

async function until(check, what, deadlineMs = 10_000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const scenarios = {
  async assistants() {
    const [system] = await client.assistants.search({ graphId: "counter" });
    assert.equal(system.graph_id, "counter");
    assert.deepEqual(await client.assistants.get(system.assistant_id), system);
    const graph = await client.assistants.getGraph(system.assistant_id);
    assert.deepEqual(
      graph.nodes.map((n) => n.id),
      ["__start__", "tick", "__end__"],
    );
    const schemas = await client.assistants.getSchemas(system.assistant_id);
    assert.equal(schemas.graph_id, "counter");
    assert.ok("steps" in schemas.input_schema.properties);
    assert.deepEqual(await client.assistants.getSubgraphs(system.assistant_id), {});
    const nested = await client.assistants.getSubgraphs("nested");
    assert.deepEqual(Object.keys(nested), ["child"]);

    const mine = await client.assistants.create({
      graphId: "counter",
      name: "js",
      config: { configurable: { model: "a" } },
      metadata: { owner: "js" },
    });
    assert.equal(mine.version, 1);
    const updated = await client.assistants.update(mine.assistant_id, {
      metadata: { owner: "js", more: 1 },
    });
    assert.equal(updated.version, 2);
    const versions = await client.assistants.getVersions(mine.assistant_id);
    assert.deepEqual(
      versions.map((v) => v.version),
      [2, 1],
    );
    const back = await client.assistants.setLatest(mine.assistant_id, 1);
    assert.deepEqual(back.metadata, { owner: "js" });
    const found = await client.assistants.search({ metadata: { owner: "js" } });
    assert.deepEqual(
      found.map((a) => a.assistant_id),
      [mine.assistant_id],
    );
    assert.equal(await client.assistants.count({ metadata: { owner: "js" } }), 1);
    const output = await client.runs.wait(null, mine.assistant_id, { input: { steps: 1 } });
    assert.equal(output.count, 1);
    await client.assistants.delete(mine.assistant_id);
    await rejects(client.assistants.get(mine.assistant_id), 404);
  },

  async threads() {
    const tag = `js-${Date.now()}-${Math.random()}`;
    const thread = await client.threads.create({ metadata: { tag } });
    assert.equal(thread.status, "idle");
    assert.equal(thread.state_updated_at, thread.created_at);
    await rejects(client.threads.create({ threadId: thread.thread_id }), 409);
    const same = await client.threads.create({ threadId: thread.thread_id, ifExists: "do_nothing" });
    assert.equal(same.thread_id, thread.thread_id);
    const updated = await client.threads.update(thread.thread_id, { metadata: { more: 1 } });
    assert.deepEqual(updated.metadata, { tag, more: 1 });
    const values = await client.runs.wait(thread.thread_id, "counter", { input: { steps: 2 } });
    assert.equal(values.count, 2);
    const found = await client.threads.search({ metadata: { tag }, status: "idle" });
    assert.deepEqual(
      found.map((t) => t.thread_id),
      [thread.thread_id],
    );
    assert.equal(found[0].values.count, 2);
    assert.equal(await client.threads.count({ metadata: { tag } }), 1);
    const picked = await client.threads.search({
      metadata: { tag },
      select: ["thread_id"],
      extract: { count: "values.count", tag: "metadata.tag" },
    });
    assert.deepEqual(picked, [{ thread_id: thread.thread_id, extracted: { count: 2, tag } }]);
    const runs = await client.runs.list(thread.thread_id, { select: ["run_id", "status"] });
    assert.deepEqual(Object.keys(runs[0]).sort(), ["run_id", "status"]);

    const state = await client.threads.getState(thread.thread_id);
    assert.equal(state.values.count, 2);
    assert.deepEqual(state.next, []);
    const history = await client.threads.getHistory(thread.thread_id, { limit: 2 });
    assert.equal(history.length, 2);
    assert.equal(history[0].checkpoint.checkpoint_id, state.checkpoint.checkpoint_id);
    const earlier = await client.threads.getState(thread.thread_id, history[1].checkpoint);
    assert.equal(earlier.values.count, 1);

    const written = await client.threads.updateState(thread.thread_id, {
      values: { count: 40 },
      asNode: "tick",
    });
    assert.ok(written.checkpoint.checkpoint_id);
    const patched = await client.threads.getState(thread.thread_id);
    assert.equal(patched.values.count, 40);
    assert.equal(patched.metadata.source, "update");
    // Runs go on from the state as updated.
    const more = await client.runs.wait(thread.thread_id, "counter", { input: { steps: 41 } });
    assert.equal(more.count, 41);

    const copy = await client.threads.copy(thread.thread_id);
    assert.notEqual(copy.thread_id, thread.thread_id);
    assert.equal((await client.threads.getState(copy.thread_id)).values.count, 41);
    await client.threads.delete(thread.thread_id);
    await rejects(client.threads.get(thread.thread_id), 404);
    await client.threads.delete(copy.thread_id);
  },

  async streams() {
    const thread = await client.threads.create();
    let created;
    const parts = await collect(
      client.runs.stream(thread.thread_id, "counter", {
        input: { steps: 2 },
        streamMode: ["values", "updates", "custom"],
        onRunCreated: (meta) => {
          created = meta;
        },
      }),
    );
    assert.deepEqual(names(parts), [
      "metadata",
      "values",
      "custom",
      "updates",
      "values",
      "custom",
      "updates",
      "values",
    ]);
    assert.equal(created.thread_id, thread.thread_id);
    assert.equal(parts[0].data.run_id, created.run_id);
    assert.deepEqual(
      parts.filter((p) => p.event === "custom").map((p) => p.data.tick),
      [1, 2],
    );
    assert.equal(parts.at(-1).data.count, 2);
    // Every event after the metadata carries an id the client can resume from.
    const ids = parts.slice(1).map((p) => Number(p.id));
    assert.ok(ids.every((id, i) => Number.isInteger(id) && (i === 0 || id > ids[i - 1])), `${ids}`);
    const run = await client.runs.get(thread.thread_id, created.run_id);
    assert.equal(run.status, "success");

    // A stateless run, the chat model's tokens as message tuples.
    const chat = await collect(
      client.runs.stream(null, "chat", {
        input: { messages: [{ role: "user", content: "hi" }] },
        streamMode: "messages-tuple",
      }),
    );
    const tokens = chat.filter((p) => p.event === "messages").map((p) => p.data[0].content);
    assert.equal(tokens.join(""), "hello from the fake model");
    assert.equal(chat.find((p) => p.event === "messages").data[1].langgraph_node, "model");

    // The older `messages` mode: the message growing, chunk by chunk.
    const legacy = await collect(
      client.runs.stream(null, "chat", {
        input: { messages: [{ role: "user", content: "hi" }] },
        streamMode: "messages",
      }),
    );
    assert.equal(legacy[1].event, "messages/metadata");
    assert.equal(legacy.at(-1).data[0].content, "hello from the fake model");

    // Subgraphs, and `events` beside another mode.
    const nested = await collect(
      client.runs.stream(null, "nested", {
        input: { steps: 1 },
        streamMode: ["updates", "events"],
        streamSubgraphs: true,
      }),
    );
    assert.ok(nested.some((p) => p.event.startsWith("updates|child:")), names(nested).join());
    assert.ok(nested.some((p) => p.event === "updates"));
    const events = nested.filter((p) => p.event === "events").map((p) => p.data);
    assert.equal(events[0].event, "on_chain_start");
    assert.equal(events[0].name, "nested");

    // A graph's failure ends the stream with an error event, and fails `wait`.
    const failed = await collect(client.runs.stream(null, "boom", { input: {} }));
    assert.deepEqual(names(failed), ["metadata", "error"]);
    assert.equal(failed[1].data.error, "ValueError");
    assert.equal(failed[1].data.message, "the agent failed on purpose");
    await assert.rejects(client.runs.wait(null, "boom", { input: {} }), /failed on purpose/);
  },

  async background() {
    const thread = await client.threads.create();
    const run = await client.runs.create(thread.thread_id, "counter", {
      input: { steps: 3 },
      metadata: { via: "js" },
    });
    assert.ok(["pending", "running", "success"].includes(run.status));
    const values = await client.runs.join(thread.thread_id, run.run_id);
    assert.equal(values.count, 3);
    const done = await client.runs.get(thread.thread_id, run.run_id);
    assert.equal(done.status, "success");
    assert.equal(done.metadata.via, "js");
    const listed = await client.runs.list(thread.thread_id, { status: "success" });
    assert.deepEqual(
      listed.map((r) => r.run_id),
      [run.run_id],
    );

    // Joining from the start ("-1", as useStream rejoins) replays the finished run.
    const replay = await collect(
      client.runs.joinStream(thread.thread_id, run.run_id, { lastEventId: "-1" }),
    );
    assert.deepEqual(
      replay.filter((p) => p.event === "values").map((p) => p.data.count ?? 0),
      [0, 1, 2, 3],
    );

    // A long run, joined midway after its third event: the rest, each once, in order.
    const slow = await client.runs.create(thread.thread_id, "sleeper", {
      input: { steps: 30, delay: 0.02 },
      streamMode: "custom",
    });
    const first = [];
    for await (const part of client.runs.joinStream(thread.thread_id, slow.run_id, {
      lastEventId: "-1",
    })) {
      if (part.event !== "custom") continue;
      first.push(part);
      if (first.length === 3) break;
    }
    const rest = await collect(
      client.runs.joinStream(thread.thread_id, slow.run_id, { lastEventId: first.at(-1).id }),
    );
    const ticks = [...first, ...rest].filter((p) => p.event === "custom").map((p) => p.data.tick);
    assert.deepEqual(
      ticks,
      Array.from({ length: 30 }, (_, i) => i + 4),
    );

    // Cancel: the run stops where it was (its thread waits for the rest), or is rolled
    // back (the thread as it was before it).
    const long = await client.runs.create(thread.thread_id, "sleeper", {
      input: { steps: 500, delay: 0.02 },
    });
    // Its first checkpoint (steps 500) has `work` still to run: cancelled after it, the
    // thread waits for the rest; cancelled before it, the thread is as the last run left it.
    await until(
      async () => (await client.threads.getState(thread.thread_id)).values.steps === 500,
      "the run's first checkpoint",
    );
    await client.runs.cancel(thread.thread_id, long.run_id, true);
    const cancelled = await client.runs.get(thread.thread_id, long.run_id);
    assert.equal(cancelled.status, "interrupted");
    assert.equal((await client.threads.get(thread.thread_id)).status, "interrupted");
    const before = (await client.threads.getState(thread.thread_id)).values;
    const undone = await client.runs.create(thread.thread_id, "sleeper", {
      input: { steps: 500, delay: 0.02, count: 1000 },
    });
    await until(
      async () => (await client.threads.getState(thread.thread_id)).values.count >= 1000,
      "the run's first checkpoint",
    );
    await client.runs.cancel(thread.thread_id, undone.run_id, true, "rollback");
    await rejects(client.runs.get(thread.thread_id, undone.run_id), 404);
    assert.deepEqual((await client.threads.getState(thread.thread_id)).values, before);

    // Multitask strategies: reject while busy, enqueue behind.
    const busy = await client.runs.create(thread.thread_id, "sleeper", {
      input: { steps: 10, delay: 0.02 },
    });
    await rejects(
      client.runs.create(thread.thread_id, "counter", { multitaskStrategy: "reject" }),
      409,
    );
    const queued = await client.runs.create(thread.thread_id, "counter", {
      input: { steps: 1 },
      multitaskStrategy: "enqueue",
    });
    await client.runs.join(thread.thread_id, busy.run_id);
    const after = await client.runs.join(thread.thread_id, queued.run_id);
    assert.ok(after.count >= 1);

    // A thread that does not exist yet, created by the run.
    const fresh = crypto.randomUUID();
    const made = await client.runs.wait(fresh, "counter", {
      input: { steps: 1 },
      ifNotExists: "create",
    });
    assert.equal(made.count, 1);
    assert.equal((await client.threads.get(fresh)).thread_id, fresh);

    await client.runs.delete(thread.thread_id, run.run_id);
    await rejects(client.runs.get(thread.thread_id, run.run_id), 404);
  },

  async disconnect() {
    // A stream whose client goes away: `onDisconnect: "cancel"` (useStream's default)
    // cancels the run, "continue" lets it finish.
    const thread = await client.threads.create();
    const outcomes = {};
    for (const onDisconnect of ["cancel", "continue"]) {
      const controller = new AbortController();
      let runId;
      try {
        for await (const part of client.runs.stream(thread.thread_id, "sleeper", {
          input: { steps: 25, delay: 0.02 },
          streamMode: "custom",
          onDisconnect,
          signal: controller.signal,
          onRunCreated: (meta) => {
            runId = meta.run_id;
          },
        })) {
          if (part.event === "custom") controller.abort();
        }
      } catch (error) {
        if (error.name !== "AbortError") throw error;
      }
      const run = await until(async () => {
        const r = await client.runs.get(thread.thread_id, runId);
        return ["pending", "running"].includes(r.status) ? null : r;
      }, `the ${onDisconnect} run to end`);
      outcomes[onDisconnect] = run.status;
    }
    assert.deepEqual(outcomes, { cancel: "interrupted", continue: "success" });
  },

  async interrupts() {
    const thread = await client.threads.create();
    const parts = await collect(
      client.runs.stream(thread.thread_id, "hitl", {
        input: { topic: "tides" },
        streamMode: ["updates", "values"],
      }),
    );
    const interrupt = parts.find((p) => p.event === "updates" && p.data.__interrupt__);
    assert.equal(interrupt.data.__interrupt__[0].value.question, "publish this?");
    const paused = await client.threads.get(thread.thread_id);
    assert.equal(paused.status, "interrupted");
    assert.equal(Object.values(paused.interrupts).flat()[0].value.draft, "a draft about tides");
    const state = await client.threads.getState(thread.thread_id);
    assert.deepEqual(state.next, ["review"]);
    assert.equal(state.tasks[0].interrupts[0].value.question, "publish this?");

    const resumed = await client.runs.wait(thread.thread_id, "hitl", {
      command: { resume: "ship it" },
    });
    assert.equal(resumed.verdict, "ship it");
    assert.deepEqual(resumed.log, ["write", "review", "publish"]);
    assert.equal((await client.threads.get(thread.thread_id)).status, "idle");

    // Interrupting before a node, then going on.
    const other = await client.threads.create();
    await client.runs.wait(other.thread_id, "hitl", {
      input: { topic: "x" },
      interruptBefore: ["write"],
    });
    assert.deepEqual((await client.threads.getState(other.thread_id)).next, ["write"]);
  },

  async errors() {
    // A name that is no graph's is malformed (422, naming the graphs); an unknown id, 404.
    await rejects(client.runs.wait(null, "no-such-graph", { input: {} }), 422, /counter/);
    await rejects(client.runs.wait(null, crypto.randomUUID(), { input: {} }), 404);
    await rejects(client.threads.get(crypto.randomUUID()), 404);
    await rejects(client.runs.create(crypto.randomUUID(), "counter", { input: {} }), 404);
    await rejects(client.threads.create({ threadId: "not a uuid" }), 422);
    await rejects(client.runs.create(null, "counter", { multitaskStrategy: "sometimes" }), 422);
    // A run the graph cannot start (no input at all) fails as a run, not as a request.
    await assert.rejects(client.runs.wait(null, "counter", {}), /EmptyInputError/);
  },

  async store() {
    const ns = ["js", `${Date.now()}`];
    await client.store.putItem([...ns, "a"], "k1", { colour: "red", n: 1 });
    await client.store.putItem([...ns, "b"], "k2", { colour: "blue", n: 2 });
    const item = await client.store.getItem([...ns, "a"], "k1");
    assert.deepEqual(item.value, { colour: "red", n: 1 });
    assert.deepEqual(item.namespace, [...ns, "a"]);
    const found = await client.store.searchItems(ns, { filter: { colour: "blue" } });
    assert.deepEqual(
      found.items.map((i) => i.key),
      ["k2"],
    );
    const spaces = await client.store.listNamespaces({ prefix: ns });
    assert.deepEqual(spaces.namespaces.map((n) => n.at(-1)).sort(), ["a", "b"]);
    await client.store.deleteItem([...ns, "a"], "k1");
    assert.equal(await client.store.getItem([...ns, "a"], "k1"), null);
    // A graph's store is the same one.
    const thread = await client.threads.create();
    await client.store.putItem(["memo"], thread.thread_id, { fact: "js was here" });
  },

  async crons() {
    const thread = await client.threads.create();
    const cron = await client.crons.createForThread(thread.thread_id, "counter", {
      schedule: "0 0 1 1 *",
      input: { steps: 1 },
    });
    assert.equal(cron.thread_id, thread.thread_id);
    const found = await client.crons.search({ threadId: thread.thread_id });
    assert.deepEqual(
      found.map((c) => c.cron_id),
      [cron.cron_id],
    );
    assert.equal(await client.crons.count({ threadId: thread.thread_id }), 1);
    const stateless = await client.crons.create("counter", { schedule: "0 0 1 1 *" });
    await client.crons.delete(stateless.cron_id);
    await client.crons.delete(cron.cron_id);
    assert.equal(await client.crons.count({ threadId: thread.thread_id }), 0);
  },

  // The assistants as tools, through the MCP client most MCP hosts are built on.
  async mcp() {
    const mcp = new McpClient({ name: "runyard-tests", version: "1" });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${apiUrl}/mcp`)));
    try {
      const { tools } = await mcp.listTools();
      const counter = tools.find((t) => t.name === "counter");
      assert.equal(counter.inputSchema.properties.steps.type, "integer");
      const chat = tools.find((t) => t.name === "chat");
      assert.equal(chat.inputSchema.properties.messages.type, "string");

      const counted = await mcp.callTool({ name: "counter", arguments: { steps: 2 } });
      assert.equal(counted.isError, false);
      assert.equal(counted.structuredContent.count, 2);
      assert.deepEqual(JSON.parse(counted.content[0].text), counted.structuredContent);
      const chatted = await mcp.callTool({ name: "chat", arguments: { messages: "hello" } });
      assert.equal(chatted.structuredContent.messages.at(-1).content, "hello from the fake model");

      const failed = await mcp.callTool({ name: "boom", arguments: { messages: "hi" } });
      assert.equal(failed.isError, true);
      assert.equal(failed.content[0].text, "ValueError: the agent failed on purpose");
      await assert.rejects(mcp.callTool({ name: "no-such-tool", arguments: {} }), (error) => {
        assert.equal(error.code, -32602);
        return true;
      });
    } finally {
      await mcp.close();
    }
  },

  // Streams a long run and says how far it got, so the test can kill the process serving
  // it: the client reconnects by itself (the response's Location, Last-Event-ID) and must
  // see every event once, in order.
  async reconnect() {
    const [steps, readyAt] = args.map(Number);
    const ticks = [];
    const thread = await client.threads.create();
    for await (const part of client.runs.stream(thread.thread_id, "sleeper", {
      input: { steps, delay: 0.05 },
      streamMode: "custom",
    })) {
      if (part.event !== "custom") continue;
      ticks.push(part.data.tick);
      if (ticks.length === readyAt) console.log("ready");
    }
    console.log(JSON.stringify({ ticks }));
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
await run();
console.log(`ok ${scenario}`);
