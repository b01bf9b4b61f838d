// The REST API as the console calls it: the signed-in token as a bearer, RFC 7807 problems as
// ApiError, and a run's events as Server-Sent Events read with fetch (EventSource cannot send
// an Authorization header), resumed from the last seq after a dropped connection.

const TOKEN_KEY = "parley.token";
const RUNS_KEY = "parley.runs";
export const TERMINAL = new Set(["completed", "requires_action", "failed"]);
const TERMINAL_EVENTS = new Set(["run.completed", "run.requires_action", "run.failed"]);
const RESUME_ATTEMPTS = 5;

// sessionStorage: the token lives as long as the tab, never in a cookie or on disk for long.
export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  signIn: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: () => {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(RUNS_KEY);
  },
  // Runs this tab started: the runs list falls back on them where GET /agents/runs is missing.
  knownRuns: () => JSON.parse(sessionStorage.getItem(RUNS_KEY) || "[]"),
  remember: (run) => {
    const runs = session.knownRuns().filter((r) => r.id !== run.id);
    runs.unshift({ id: run.id, conversation_id: run.conversation_id });
    sessionStorage.setItem(RUNS_KEY, JSON.stringify(runs.slice(0, 200)));
  },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${session.token()}`, ...extra };
}

async function problemOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { title: response.statusText || `HTTP ${response.status}`, detail: text.slice(0, 200) };
  }
}

export async function call(method, path, body) {
  const init = { method, headers: headers({ Accept: "application/json" }) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.json();
}

export const get = (path, query) => call("GET", query ? `${path}?${new URLSearchParams(query)}` : path);
export const post = (path, body) => call("POST", path, body);

// crypto.randomUUID exists only in secure contexts; getRandomValues everywhere.
export function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function parseFrame(frame) {
  const event = { id: null, event: "message", data: [] };
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") event.data.push(value);
    else if (field === "id") event.id = value;
    else if (field === "event") event.event = value;
  }
  if (!event.data.length) return null;
  return { ...event, data: JSON.parse(event.data.join("\n")) };
}

// Yields each event of the run (after `afterSeq`) until its terminal event.
export async function* runEvents(runId, { afterSeq = 0, signal } = {}) {
  let last = afterSeq;
  let failures = 0;
  for (;;) {
    let response;
    try {
      response = await fetch(`/agents/runs/${encodeURIComponent(runId)}/events?after_seq=${last}`, {
        headers: headers({ Accept: "text/event-stream" }),
        signal,
      });
    } catch (error) {
      if (signal?.aborted || ++failures > RESUME_ATTEMPTS) throw error;
      await backoff(failures, signal);
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!event) continue;
          if (event.event === "error") throw new ApiError(0, event.data);
          if (event.id) last = Number(event.id);
          failures = 0;
          yield event.data;
          if (TERMINAL_EVENTS.has(event.data.type)) return;
        }
      }
    } catch (error) {
      if (error instanceof ApiError || signal?.aborted) throw error;
      if (++failures > RESUME_ATTEMPTS) throw error;
      await backoff(failures, signal);
    }
    // The connection ended before the terminal event: resume after the last event seen.
  }
}

function backoff(failures, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.min(4000, 250 * 2 ** failures));
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
