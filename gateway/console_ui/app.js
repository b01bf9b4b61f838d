// The console: a hash-routed page per view (sign-in, conversations, a conversation with its live
// run, runs, a run with its inference jobs), each built from the REST API's JSON.

import { ApiError, TERMINAL, get, post, runEvents, session, uuid4 } from "./api.js";
import { announce, checkbox, errorBox, field, h, json, shortId, when } from "./dom.js";

const main = document.getElementById("main");
const DEFAULT_DATA_PLANE = "f79cbdae-4848-47ca-95e8-69588364d185"; // the packaged catalogue's
let leaving = new AbortController(); // aborts the open view's streams when the route changes

// A view renders only while its route is current: a slow view never overwrites a newer one.
function show(signal, title, ...children) {
  if (signal.aborted) return;
  document.title = `${title} · Parley console`;
  main.replaceChildren(...children.flat(Infinity).filter((c) => c !== "" && c != null));
}

async function route() {
  leaving.abort();
  leaving = new AbortController();
  const signedIn = Boolean(session.token());
  document.getElementById("nav").hidden = !signedIn;
  const hash = location.hash.replace(/^#\/?/, "");
  const [section, id] = hash.split("/");
  if (!signedIn) return signInView();
  for (const link of document.querySelectorAll("#nav a[href^='#']")) {
    const current = link.getAttribute("href") === `#/${section || "conversations"}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const { signal } = leaving;
    if (section === "conversations" && id) await conversationView(id, signal);
    else if (section === "runs" && id) await runView(id, signal);
    else if (section === "runs") await runsView(signal);
    else await conversationsView(signal);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      session.signOut();
      return route();
    }
    if (error.name === "AbortError") return;
    show(leaving.signal, "Error", h("h1", {}, "Error"), errorBox(error));
  }
}

// --- sign in ---------------------------------------------------------------------------------

function signInView() {
  const token = h("input", { type: "password", name: "token", required: true, autocomplete: "off", spellcheck: "false" });
  const problems = h("div");
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Paste a Parley API token (a JWT). It is kept in this tab only."),
    field("Token", token),
    problems,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    session.signIn(token.value.trim());
    try {
      await get("/agents/models");
    } catch (error) {
      session.signOut();
      problems.replaceChildren(errorBox(error));
      token.focus();
      return;
    }
    if (!location.hash || location.hash === "#/") location.hash = "#/conversations";
    else route();
  });
  show(leaving.signal, "Sign in", form);
  token.focus();
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  location.hash = "";
  route();
});

// --- conversations ---------------------------------------------------------------------------

async function conversationsView(signal) {
  const [page, models] = await Promise.all([
    get("/agents/conversations", { per_page: 50 }),
    get("/agents/models"),
  ]);
  const list = page.records.length
    ? h(
        "ul",
        { class: "list", "aria-label": "Conversations" },
        page.records.map((c) =>
          h(
            "li",
            {},
            h("a", { href: `#/conversations/${c.id}` }, c.name || `Conversation ${shortId(c.id)}`),
            h("span", { class: "meta" }, ` ${c.defaults?.model ?? ""} · version ${c.version}`),
          ),
        ),
      )
    : h("p", { class: "empty" }, "No conversations yet.");
  const formSlot = h("div");
  const open = h("button", { type: "button", "aria-expanded": "false", "aria-controls": "new-conversation" }, "New conversation");
  open.addEventListener("click", () => {
    const expanded = open.getAttribute("aria-expanded") === "true";
    open.setAttribute("aria-expanded", String(!expanded));
    formSlot.replaceChildren(expanded ? "" : newConversationForm(models.models, page.records[0]));
    if (!expanded) formSlot.querySelector("input, textarea, select")?.focus();
  });
  show(
    signal,
    "Conversations",
    h("div", { class: "heading" }, h("h1", {}, "Conversations"), open),
    formSlot,
    list,
    h("p", { class: "meta" }, `${page.total_records} in all`),
  );
}

function jsonInput(name, rows, placeholder) {
  return h("textarea", { name, rows, placeholder, spellcheck: "false", class: "mono" });
}

function parseJson(control, label, kind) {
  const text = control.value.trim();
  if (!text) return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${label} is not valid JSON: ${error.message}`);
  }
  const ok = kind === "array" ? Array.isArray(value) : value && typeof value === "object" && !Array.isArray(value);
  if (!ok) throw new Error(`${label} must be a JSON ${kind}`);
  return value;
}

function newConversationForm(models, latest) {
  const name = h("input", { name: "name" });
  const system = h("textarea", { name: "system_prompt", rows: 3 });
  const model = h("select", { name: "model", required: true },
    models.map((m) => h("option", { value: m.id }, m.id)));
  const cluster = h("select", { name: "execution_cluster" });
  const fillClusters = () => {
    const chosen = models.find((m) => m.id === model.value);
    cluster.replaceChildren(...(chosen?.execution_clusters || ["shared"]).map((c) => h("option", { value: c }, c)));
  };
  model.addEventListener("change", fillClusters);
  fillClusters();
  const dataPlane = h("input", { name: "data_plane_id", required: true, value: latest?.defaults?.data_plane_id || DEFAULT_DATA_PLANE, spellcheck: "false", class: "mono" });
  const iterations = h("input", { name: "max_iterations", type: "number", min: 1, value: 5 });
  const maxTokens = h("input", { name: "max_tokens", type: "number", min: 1, value: 1024 });
  const tools = jsonInput("tools", 4, '[{"name": "confirm_booking", "input_schema": {"type": "object"}}]');
  const mcp = jsonInput("mcp_servers", 3, '[{"alias": "docs", "url": "https://…/mcp", "require_approval": "always"}]');
  const schema = jsonInput("output_format_schema", 3, '{"type": "object", "properties": {…}}');
  const stream = checkbox("Stream tokens", { checked: true });
  const thinking = checkbox("Reasoning (thinking)");
  const problems = h("div");
  const form = h(
    "form",
    { class: "card", id: "new-conversation", "aria-label": "New conversation" },
    h("h2", {}, "New conversation"),
    field("Name", name, "Optional: the first run names it otherwise."),
    field("System prompt", system),
    h("div", { class: "row" }, field("Model", model), field("Execution cluster", cluster)),
    field("Data plane", dataPlane),
    h("div", { class: "row" }, field("Max iterations", iterations), field("Max tokens", maxTokens)),
    h("div", { class: "row" }, stream.el, thinking.el),
    field("Caller tools (JSON)", tools, "A JSON array of tools your code answers."),
    field("MCP servers (JSON)", mcp, "A JSON array of MCP servers Parley calls."),
    field("Output schema (JSON)", schema, "A JSON Schema object: answers become structured output."),
    problems,
    h("button", { type: "submit" }, "Create conversation"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problems.replaceChildren();
    try {
      const defaults = {
        model: model.value,
        data_plane_id: dataPlane.value.trim(),
        execution_cluster: cluster.value,
        max_iterations: Number(iterations.value),
        max_tokens: Number(maxTokens.value),
        stream: stream.input.checked,
      };
      if (thinking.input.checked) defaults.thinking = { enabled: true, budget_tokens: 1024 };
      const t = parseJson(tools, "Caller tools", "array");
      const m = parseJson(mcp, "MCP servers", "array");
      const s = parseJson(schema, "Output schema", "object");
      if (t) defaults.tools = t;
      if (m) defaults.mcp_servers = m;
      if (s) defaults.output_format_schema = s;
      const body = { defaults };
      if (name.value.trim()) body.name = name.value.trim();
      if (system.value.trim()) body.system_prompt = system.value;
      const created = await post("/agents/conversations", body);
      announce("Conversation created");
      location.hash = `#/conversations/${created.id}`;
    } catch (error) {
      problems.replaceChildren(errorBox(error));
    }
  });
  return form;
}

// --- a conversation: timeline, composer, live run ---------------------------------------------

async function allMessages(id) {
  const messages = [];
  let since = 0;
  for (;;) {
    const page = await get(`/agents/conversations/${id}/messages`, { since, per_page: 1000 });
    messages.push(...page.messages);
    if (page.next_since === null || page.next_since === undefined) return messages;
    since = page.next_since;
  }
}

function roleName(role) {
  return { user: "User", assistant: "Assistant", tool: "Tool results" }[role] || role;
}

function blockView(block) {
  switch (block.type) {
    case "text":
      return h("p", { class: "text" }, block.text);
    case "reasoning":
      return h("details", { class: "reasoning" }, h("summary", {}, "Reasoning"),
        h("p", { class: "text" }, block.text || "(redacted)"));
    case "tool_use":
      return h("div", { class: "tool-call" }, h("span", { class: "tag" }, "Tool call"), " ",
        h("code", {}, block.name), h("pre", {}, json(block.arguments || {})));
    case "tool_result":
      return h("div", { class: `tool-result${block.is_error ? " failed" : ""}` },
        h("span", { class: "tag" }, block.is_error ? "Tool error" : "Tool result"), " ",
        h("code", {}, shortId(block.tool_use_id)),
        block.approval ? h("span", { class: "meta" }, ` · ${block.approval.decision}d${block.approval.reason ? `: ${block.approval.reason}` : ""}`) : "",
        (block.content || []).map(blockView));
    case "json":
      return h("pre", {}, json(block.value));
    default:
      return h("p", { class: "meta" }, `[${block.type}]`);
  }
}

function messageView(message) {
  return h("li", { class: `msg ${message.role}` },
    h("div", { class: "who" }, roleName(message.role)),
    (message.content_blocks || []).map(blockView));
}

// Run listings (GET /agents/runs, .../conversations/{id}/runs) are newer than some servers: the
// console asks the server's own OpenAPI document which it has instead of provoking 404s.
let paths;
async function hasGet(path) {
  paths ??= fetch("/openapi.json")
    .then((r) => r.json())
    .then((spec) => spec.paths || {})
    .catch(() => { paths = undefined; return {}; }); // asked again next time
  return Boolean((await paths)[path]?.get);
}

async function latestRunOf(conversationId) {
  if (await hasGet("/agents/conversations/{id}/runs")) {
    const page = await get(`/agents/conversations/${conversationId}/runs`, { limit: 1 });
    return page.runs[0] || null;
  }
  const known = session.knownRuns().find((r) => r.conversation_id === conversationId);
  return known ? get(`/agents/runs/${known.id}`) : null;
}

async function conversationView(id, signal) {
  const [conversation, messages, latest] = await Promise.all([
    get(`/agents/conversations/${id}`),
    allMessages(id),
    latestRunOf(id),
  ]);
  const defaults = conversation.defaults || {};
  const timeline = h("ol", { class: "timeline", "aria-label": "Timeline" }, messages.map(messageView));
  const live = h("section", { class: "live", "aria-label": "Live run", hidden: true });
  const answers = h("div");
  const problems = h("div");

  const text = h("textarea", { name: "message", rows: 3, required: true });
  const choice = h("select", { name: "tool_choice" },
    h("option", { value: "auto" }, "Model decides"),
    h("option", { value: "any" }, "Must call a tool"),
    h("option", { value: "specific_tool" }, "Must call this tool"));
  const toolNames = [
    ...(defaults.tools || []).map((t) => ({ name: t.name })),
    ...(defaults.mcp_servers || []).flatMap((s) => (s.tools || []).map((t) => ({ name: typeof t === "string" ? t : t.name, alias: s.alias }))),
  ];
  const toolName = h("input", { name: "tool_name", list: "tool-names", spellcheck: "false" });
  const toolList = h("datalist", { id: "tool-names" }, toolNames.map((t) => h("option", { value: t.name })));
  const alias = h("input", { name: "mcp_alias", spellcheck: "false" });
  const specific = h("div", { class: "row", hidden: true }, field("Tool name", toolName), field("MCP server alias", alias, "Empty for a caller tool."));
  choice.addEventListener("change", () => { specific.hidden = choice.value !== "specific_tool"; });
  const send = h("button", { type: "submit" }, "Send");
  const composer = h("form", { class: "card composer", "aria-label": "New run" },
    field("Message", text), h("div", { class: "row" }, field("Tool choice", choice)), specific, toolList, problems, send);

  const reload = async () => {
    const fresh = await allMessages(id);
    timeline.replaceChildren(...fresh.map(messageView));
  };
  const start = async (payload, toolChoice) => {
    problems.replaceChildren();
    const current = await get(`/agents/conversations/${id}`);
    const body = { client_op_id: uuid4(), expected_version: current.version, payload };
    if (toolChoice) body.tool_choice = toolChoice;
    const run = await post(`/agents/conversations/${id}/runs`, body);
    session.remember(run);
    return run;
  };
  const follow = (run) => watchRun(run, { live, answers, timeline, send, signal, reload, start, problems });

  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const toolChoice = choice.value === "auto" ? undefined
      : choice.value === "any" ? { kind: "any" }
      : { kind: "specific_tool", name: toolName.value.trim(), ...(alias.value.trim() ? { mcp_alias: alias.value.trim() } : {}) };
    try {
      send.disabled = true;
      const run = await start({ kind: "user_message", text: text.value }, toolChoice);
      timeline.append(messageView({ role: "user", content_blocks: [{ type: "text", text: text.value }] }));
      text.value = "";
      follow(run);
    } catch (error) {
      send.disabled = false;
      problems.replaceChildren(errorBox(error));
    }
  });

  const config = h("details", { class: "config" }, h("summary", {}, "Configuration"),
    h("pre", {}, json({ system_prompt: conversation.system_prompt, defaults })));
  show(
    signal,
    conversation.name || "Conversation",
    h("div", { class: "heading" },
      h("h1", {}, conversation.name || `Conversation ${shortId(id)}`),
      h("span", { class: "meta" }, `${defaults.model || ""} · version ${conversation.version}`)),
    config,
    timeline,
    live,
    answers,
    composer,
  );
  if (signal.aborted) return;
  if (latest && !TERMINAL.has(latest.status)) follow(latest);
  else if (latest?.status === "requires_action") answers.replaceChildren(answerForm(latest, { start, follow, answers }));
}

function statusBadge(status) {
  return h("span", { class: `badge ${status}` }, status.replace("_", " "));
}

// Streams a run into the live panel: text as it is written, reasoning, tool calls and results;
// "Cancel run" while it is in flight; the answer form when it pauses.
async function watchRun(run, view) {
  const { live, answers, send, signal, reload, start } = view;
  answers.replaceChildren();
  send.disabled = true;
  const status = h("span", {}, statusBadge(run.status));
  const turns = h("div", { class: "turns", "aria-live": "off" });
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel run");
  const outcome = h("div", { role: "status" });
  live.hidden = false;
  live.setAttribute("aria-busy", "true");
  live.replaceChildren(
    h("div", { class: "heading" }, h("h2", {}, "Live run"), status,
      h("a", { href: `#/runs/${run.id}`, class: "meta" }, `run ${shortId(run.id)}`), cancel),
    turns, outcome);
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await post(`/agents/runs/${run.id}/cancel`);
    } catch (error) {
      outcome.replaceChildren(errorBox(error));
      cancel.disabled = false;
    }
  });

  const blocks = new Map(); // "turn/block/kind" -> the element its deltas append to
  const calls = new Map(); // tool_use_id -> its row
  let final = run;
  const blockEl = (turn, block, kind) => {
    const key = `${turn}/${block}/${kind}`;
    if (!blocks.has(key)) {
      const el = kind === "reasoning"
        ? h("p", { class: "text reasoning-live", "aria-label": "Reasoning" })
        : h("p", { class: "text streamed" });
      blocks.set(key, el);
      turns.append(el);
    }
    return blocks.get(key);
  };
  try {
    for await (const event of runEvents(run.id, { signal })) {
      switch (event.type) {
        case "run.status":
          status.replaceChildren(statusBadge(event.status));
          break;
        case "turn.restarted":
          for (const [key, el] of blocks) if (key.startsWith(`${event.turn_index}/`)) el.textContent = "";
          break;
        case "message.delta":
        case "reasoning.delta":
          blockEl(event.turn_index, event.block_index, event.type === "reasoning.delta" ? "reasoning" : "text").append(event.text);
          break;
        case "tool.call": {
          const row = h("div", { class: "tool-call" }, h("span", { class: "tag" }, event.kind === "caller" ? "Caller tool" : "Tool call"), " ",
            h("code", {}, event.name), h("pre", {}, json(event.arguments || {})));
          calls.set(event.tool_use_id, row);
          turns.append(row);
          break;
        }
        case "tool.result":
          turns.append(h("div", { class: `tool-result${event.is_error ? " failed" : ""}` },
            h("span", { class: "tag" }, event.is_error ? "Tool error" : "Tool result"), " ",
            (event.content?.values || event.content || []).map(blockView)));
          break;
        default:
          if (event.run) final = event.run;
          if (event.status) status.replaceChildren(statusBadge(event.status));
      }
    }
  } catch (error) {
    if (signal.aborted) return;
    outcome.replaceChildren(errorBox(error));
  }
  if (signal.aborted) return;
  if (!TERMINAL.has(final.status)) final = await get(`/agents/runs/${run.id}`);
  live.setAttribute("aria-busy", "false");
  cancel.hidden = true;
  status.replaceChildren(statusBadge(final.status));
  send.disabled = false;
  if (final.status === "completed") {
    outcome.replaceChildren(h("p", {}, "Completed."));
    announce("Run completed");
  } else if (final.status === "requires_action") {
    outcome.replaceChildren(h("p", {}, "The run waits for your answer."));
    announce("The run waits for your answer");
    answers.replaceChildren(answerForm(final, { start, follow: (r) => watchRun(r, view), answers }));
  } else {
    const cancelled = final.error?.type === "AgentLoopCancelled";
    outcome.replaceChildren(cancelled ? h("p", {}, "Cancelled.") : errorBox({ message: final.error?.message, problem: { title: final.error?.title || "Run failed", code: final.error?.type } }));
    announce(cancelled ? "Run cancelled" : "Run failed");
  }
  await reload();
}

// The form that answers a paused run: an output per caller tool, a decision per approval.
function answerForm(run, { start, follow, answers }) {
  const rows = run.pending_tool_calls.map((call) => {
    const args = h("pre", {}, json(call.arguments || {}));
    if (call.kind === "approval") {
      const name = `decision-${call.tool_use_id}`;
      const approve = h("input", { type: "radio", name, value: "approve", checked: true });
      const deny = h("input", { type: "radio", name, value: "deny" });
      const reason = h("input", { name: `reason-${call.tool_use_id}` });
      return {
        el: h("fieldset", { class: "pending" },
          h("legend", {}, `Approve ${call.name}${call.server_alias ? ` on ${call.server_alias}` : ""}?`), args,
          h("div", { class: "row" }, h("label", { class: "check" }, approve, " Approve"), h("label", { class: "check" }, deny, " Deny")),
          field(`Reason for ${call.name}`, reason, "Optional; a denial's reason reaches the model.")),
        approval: () => ({ tool_use_id: call.tool_use_id, decision: deny.checked ? "deny" : "approve", ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) }),
      };
    }
    const output = h("textarea", { rows: 2, required: true });
    const failed = checkbox("Report as an error");
    return {
      el: h("fieldset", { class: "pending" }, h("legend", {}, `Answer ${call.name}`), args,
        field(`Output of ${call.name}`, output), failed.el),
      output: () => ({ tool_use_id: call.tool_use_id, content: output.value, is_error: failed.input.checked }),
    };
  });
  const problems = h("div");
  const form = h("form", { class: "card answers", "aria-label": "Answer the run" },
    h("h2", {}, "The run waits for you"), rows.map((r) => r.el), problems,
    h("button", { type: "submit" }, "Submit answers"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const payload = { kind: "tool_outputs", outputs: rows.filter((r) => r.output).map((r) => r.output()) };
    const approvals = rows.filter((r) => r.approval).map((r) => r.approval());
    if (approvals.length) payload.approvals = approvals;
    try {
      form.querySelector("button[type=submit]").disabled = true;
      const next = await start(payload);
      answers.replaceChildren();
      follow(next);
    } catch (error) {
      form.querySelector("button[type=submit]").disabled = false;
      problems.replaceChildren(errorBox(error));
    }
  });
  return form;
}

// --- runs ----------------------------------------------------------------------------------------

function duration(run) {
  let ms = run.duration_ms;
  if ((ms === undefined || ms === null) && run.started_at && run.completed_at) {
    ms = new Date(run.completed_at) - new Date(run.started_at);
  }
  if (ms === undefined || ms === null) return "—";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

function tokens(run) {
  const u = run.usage || {};
  const total = u.total_tokens ?? 0;
  const cache = u.cache_read_input_tokens ? ` (${u.cache_read_input_tokens} cached)` : "";
  return `${total}${cache}`;
}

function cost(run) {
  const usd = run.total_cost_usd;
  return usd === undefined || usd === null ? "—" : `$${usd.toFixed(usd < 0.01 ? 4 : 2)}`;
}

async function listRuns() {
  if (await hasGet("/agents/runs")) {
    return { runs: (await get("/agents/runs", { limit: 50 })).runs, all: true };
  }
  // No run listing on this server: the runs this tab started.
  const known = session.knownRuns().slice(0, 50);
  const runs = await Promise.all(known.map((r) => get(`/agents/runs/${r.id}`).catch(() => null)));
  return { runs: runs.filter(Boolean), all: false };
}

function table(caption, columns, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell, i) => h("td", { "data-label": columns[i] }, cell)))))));
}

async function runsView(signal) {
  const { runs, all } = await listRuns();
  const body = runs.length
    ? table("Runs, newest first", ["Run", "Status", "Conversation", "Started", "Duration", "Tokens", "Cost"],
        runs.map((r) => [
          h("a", { href: `#/runs/${r.id}` }, shortId(r.id)),
          statusBadge(r.status),
          h("a", { href: `#/conversations/${r.conversation_id}` }, shortId(r.conversation_id)),
          when(r.started_at), duration(r), tokens(r), cost(r),
        ]))
    : h("p", { class: "empty" }, "No runs yet.");
  show(signal, "Runs", h("h1", {}, "Runs"),
    all ? "" : h("p", { class: "meta" }, "This server does not list runs: these are the runs started in this tab."),
    body);
}

async function runView(id, signal) {
  const [run, jobs] = await Promise.all([get(`/agents/runs/${id}`), get(`/agents/runs/${id}/inference_jobs`)]);
  const facts = [
    ["Status", statusBadge(run.status)],
    ["Conversation", h("a", { href: `#/conversations/${run.conversation_id}` }, run.conversation_id)],
    ["Model", run.effective_config?.model || "—"],
    ["Started", when(run.started_at)],
    ["Duration", duration(run)],
    ["Tokens", `${tokens(run)} (${run.usage?.prompt_tokens ?? 0} in, ${run.usage?.completion_tokens ?? 0} out)`],
    ["Cost", cost(run)],
    ["Iterations", run.iterations_used ?? "—"],
  ];
  if (run.error) facts.push(["Error", `${run.error.type}: ${run.error.message}`]);
  if (run.trace_id) facts.push(["Trace", run.trace_id]);
  const list = jobs.inference_jobs;
  show(signal, `Run ${shortId(id)}`,
    h("h1", {}, `Run ${shortId(id)}`),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    run.final_text ? [h("h2", {}, "Answer"), h("p", { class: "text answer" }, run.final_text)] : "",
    h("h2", {}, "Inference jobs"),
    list.length
      ? [
          table("Model calls by iteration", ["Iteration", "Provider", "Model", "Tokens in", "Tokens out", "Duration", "Error"],
            list.map((j) => [String(j.iteration), j.provider, j.provider_model_id, String(j.usage?.prompt_tokens ?? 0), String(j.usage?.completion_tokens ?? 0),
              duration(j), j.error_type ? `${j.error_type}: ${j.error_message}` : "—"])),
          list.map((j) => h("details", { class: "job" },
            h("summary", {}, `Iteration ${j.iteration}: request and response`),
            h("h3", {}, "Request"), h("pre", {}, pretty(j.request_json)),
            h("h3", {}, "Response"), h("pre", {}, pretty(j.response_json) || "(none)"))),
        ]
      : h("p", { class: "empty" }, "No model calls yet."),
  );
}

function pretty(text) {
  try {
    return json(JSON.parse(text));
  } catch {
    return text;
  }
}

window.addEventListener("hashchange", route);
route();
