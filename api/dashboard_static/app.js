// Mayfly dashboard: one page, hash routes, every read from /v1 with the token of this tab.
// Data never reaches innerHTML: every node is built with el() and text goes in as text nodes.
"use strict";

const TOKEN_KEY = "mayfly.token";
const POLL_MS = 1500;
const STATUSES = ["queued", "preparing", "running", "complete", "error", "cancelled", "timeout"];
const TERMINAL = new Set(["complete", "error", "cancelled", "timeout"]);

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ DOM helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(status, extra) {
  return el("span", { class: `badge s-${status}${extra || ""}`, "data-status": status }, status);
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const abs = Math.abs(s);
  const text = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.round(abs / 60)}m` : abs < 86400 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86400)}d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
}

function table(headers, rows, empty) {
  const head = el("tr", {}, headers.map((h) => el("th", { class: h.endsWith("#") ? "num" : null }, h.replace(/#$/, ""))));
  const body = el("tbody", {});
  if (!rows.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: headers.length }, empty)));
  else body.append(...rows);
  return el("table", {}, el("thead", {}, head), body);
}

// A cost in US dollars with enough decimals for a one-second task.
function usd(amount) {
  return `${Number(amount).toFixed(6)} USD`;
}

function fields(pairs) {
  return el("dl", { class: "fields" }, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")]));
}

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function request(path, options = {}, secret = token()) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
    signal: options.signal,
    cache: "no-store",
  });
  if (!response.ok) {
    let code = "error";
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      code = body.code || code;
      message = body.message || message;
    } catch (_) {
      /* not JSON */
    }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

async function api(path, options = {}) {
  try {
    const response = await request(path, options);
    return await response.json();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) logout(`Logged out: ${err.message}`);
    throw err;
  }
}

function qs(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => search.append(k, x));
    else if (v !== null && v !== undefined && v !== "") search.set(k, v);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

const enc = encodeURIComponent;
const codePath = (name) => name.split("/").map(enc).join("/");

// ------------------------------------------------------------------ session

function showLogin(message) {
  stopView();
  $("nav").hidden = true;
  $("who").hidden = true;
  $("main").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("token").focus();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(message);
}

async function login(secret) {
  const response = await request("/v1/project", {}, secret);
  const project = await response.json();
  sessionStorage.setItem(TOKEN_KEY, secret);
  enter(project);
}

function enter(project) {
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("main").hidden = false;
  $("project-name").textContent = project.name;
  $("project-name").title = `project ${project.id}`;
  route();
}

// ------------------------------------------------------------------ views and their lifetimes

let current = null; // {abort: AbortController, timers: []}

function stopView() {
  if (!current) return;
  current.abort.abort();
  current.timers.forEach(clearTimeout);
  current = null;
}

function startView() {
  stopView();
  current = { abort: new AbortController(), timers: [] };
  $("flash").hidden = true;
  const view = $("view");
  view.replaceChildren();
  return current;
}

function flash(err) {
  if (err && err.name === "AbortError") return;
  const box = $("flash");
  box.textContent = err ? err.message || String(err) : "";
  box.hidden = !err;
}

// Run fn now and again every POLL_MS after it settles, while the view lives.
function poll(life, fn, every = POLL_MS) {
  const tick = async () => {
    if (life.abort.signal.aborted) return;
    if (document.hidden) {
      // A background tab spends none of the project's request budget; it catches up when shown.
      life.timers.push(setTimeout(tick, every));
      return;
    }
    try {
      await fn();
      if (current === life) $("flash").hidden = true;
    } catch (err) {
      if (current === life) flash(err);
    }
    if (!life.abort.signal.aborted) life.timers.push(setTimeout(tick, every));
  };
  tick();
}

function route() {
  if (!token()) return showLogin();
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  const view = parts[0] || "tasks";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "tasks" && parts[1]) return taskView(parts[1]);
  if (view === "tasks") return tasksView(params);
  if (view === "codes" && parts[1]) return codeView(parts.slice(1).join("/"));
  if (view === "codes") return codesView();
  if (view === "schedules") return schedulesView();
  if (view === "targets") return targetsView();
  location.hash = "#/tasks";
}

// ------------------------------------------------------------------ tasks

async function tasksView(params) {
  const life = startView();
  const filter = { status: params.get("status") || "", code: params.get("code") || "", target: params.get("target") || "" };
  const limit = Math.min(1000, Math.max(50, parseInt(params.get("limit") || "50", 10) || 50));
  const select = (name, label, options) =>
    el("label", {}, label,
      el("select", { id: `filter-${name}`, name, onchange: (e) => setFilter(name, e.target.value) },
        el("option", { value: "" }, "all"),
        options.map((o) => el("option", { value: o, selected: o === filter[name] }, o))));
  const setFilter = (name, value) => {
    const next = { ...filter, [name]: value };
    location.hash = `#/tasks${qs(next)}`;
  };
  const more = el("button", { type: "button", id: "more", hidden: true }, "Show more");
  more.onclick = () => {
    location.hash = `#/tasks${qs({ ...filter, limit: Math.min(1000, limit * 2) })}`;
  };
  const live = el("span", { class: "live", id: "live" }, "live");
  const head = el("div", { class: "bar" }, el("h1", {}, "Tasks"), el("span", { class: "grow" }), live);
  const filters = el("div", { class: "filters bar", id: "filters" },
    select("status", "Status", STATUSES),
    select("code", "Code", filter.code ? [filter.code] : []),
    select("target", "Target", filter.target ? [filter.target] : []));
  const holder = el("div", { id: "tasks" });
  $("view").append(head, filters, holder, el("div", { class: "actions" }, more));

  // Fill the code and target choices from /v1 (keeping a filter that names one no longer there).
  const fill = async (name, path, key, pick) => {
    const data = await api(path, { signal: life.abort.signal });
    const names = new Set(data[key].map(pick));
    if (filter[name]) names.add(filter[name]);
    const sel = $(`filter-${name}`);
    if (!sel) return;
    sel.replaceChildren(el("option", { value: "" }, "all"),
      ...[...names].sort().map((o) => el("option", { value: o, selected: o === filter[name] }, o)));
  };
  fill("code", "/v1/codes", "codes", (c) => c.name).catch(flash);
  fill("target", "/v1/targets", "targets", (t) => t.name).catch(flash);

  poll(life, async () => {
    const query = { status: filter.status || null, code: filter.code || null, limit };
    const data = filter.target
      ? await api(`/dashboard/api/tasks${qs({ ...query, target: filter.target })}`, { signal: life.abort.signal })
      : await api(`/v1/tasks${qs(query)}`, { signal: life.abort.signal });
    if (life.abort.signal.aborted) return;
    live.textContent = `live · updated ${when(new Date().toISOString()).slice(11)}`;
    const rows = data.tasks.map((t) =>
      el("tr", { "data-task": t.id },
        el("td", {}, el("a", { href: `#/tasks/${enc(t.id)}`, class: "mono" }, t.id)),
        el("td", {}, t.code_name, el("span", { class: "muted" }, ` r${t.code_rev}`)),
        el("td", {}, badge(t.status)),
        el("td", {}, t.target),
        el("td", {}, t.label || ""),
        el("td", { title: when(t.created_at) }, ago(t.created_at)),
        el("td", { class: "num" }, duration(t.duration_ms))));
    holder.replaceChildren(table(["Task", "Code", "Status", "Target", "Label", "Created", "Duration#"], rows,
      "No tasks match."));
    more.hidden = data.tasks.length < limit || limit >= 1000;
  });
}

async function taskView(id) {
  const life = startView();
  const signal = life.abort.signal;
  const title = el("h1", {}, "Task ", el("span", { class: "mono" }, id));
  const status = el("span", { id: "task-status" });
  const cancel = el("button", { type: "button", class: "danger", id: "cancel", hidden: true }, "Cancel");
  const retry = el("button", { type: "button", id: "retry", hidden: true }, "Retry");
  const info = el("div", { id: "task-fields" });
  const result = el("pre", { class: "box", id: "task-result" }, "—");
  const events = el("div", { id: "task-events" });
  const attempts = el("div", { id: "task-attempts" });
  const log = el("pre", { class: "log", id: "log" });
  const logState = el("span", { class: "live", id: "log-state" }, "following");
  $("view").append(
    el("div", { class: "bar" }, el("a", { href: "#/tasks" }, "← Tasks")),
    el("div", { class: "bar" }, title, status, el("span", { class: "grow" }), cancel, retry),
    el("div", { class: "grid" },
      el("div", {}, el("div", { class: "card" }, info), el("h2", {}, "Result"), result),
      el("div", {}, el("div", { class: "bar" }, el("h2", {}, "Log"), el("span", { class: "grow" }), logState), log,
        el("h2", {}, "Attempts"), attempts, el("h2", {}, "Events"), events)));

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api(`/v1/tasks/${enc(id)}/cancel`, { method: "POST" });
    } catch (err) {
      flash(err);
    }
    cancel.disabled = false;
  });
  retry.addEventListener("click", async () => {
    retry.disabled = true;
    try {
      const task = await api(`/v1/tasks/${enc(id)}/retry`, { method: "POST", json: {} });
      location.hash = `#/tasks/${enc(task.id)}`;
    } catch (err) {
      flash(err);
      retry.disabled = false;
    }
  });

  let ended = false;
  const refresh = async () => {
    const [task, ev] = await Promise.all([
      api(`/v1/tasks/${enc(id)}`, { signal }),
      api(`/v1/tasks/${enc(id)}/events`, { signal }),
    ]);
    if (signal.aborted) return;
    status.replaceChildren(badge(task.status));
    const terminal = TERMINAL.has(task.status);
    cancel.hidden = terminal;
    retry.hidden = !terminal || !!task.retried_by;
    info.replaceChildren(fields([
      ["Code", el("a", { href: `#/codes/${codePath(task.code_name)}` }, `${task.code_name} (revision ${task.code_rev})`)],
      ["Status", task.reason ? `${task.status} (${task.reason})` : task.status],
      ["Message", task.msg],
      ["Exit code", task.exit_code === null ? null : String(task.exit_code)],
      ["Target", task.targets && task.targets.length > 1 ? `${task.target} (of ${task.targets.join(", ")})` : task.target],
      ["Attempt", String(task.attempt)],
      ["Cost", `${usd(task.cost || 0)}`],
      ["Priority", String(task.priority)],
      ["Label", task.label],
      ["Created", when(task.created_at)],
      ["Started", when(task.start_time)],
      ["Ended", when(task.end_time)],
      ["Duration", duration(task.duration_ms)],
      ["Timeout", `${task.timeout} s`],
      ["Progress", task.percent === null || task.percent === undefined ? null : `${task.percent}% ${task.progress_msg || ""}`],
      ["Retry of", task.retry_of ? el("a", { href: `#/tasks/${enc(task.retry_of)}`, class: "mono" }, task.retry_of) : null],
      ["Retried by", task.retried_by ? el("a", { href: `#/tasks/${enc(task.retried_by)}`, class: "mono" }, task.retried_by) : null],
      ["Schedule", task.schedule_id],
      ["Payload", el("code", {}, task.payload)],
    ]));
    result.textContent = task.result === null || task.result === undefined ? "—" : JSON.stringify(task.result, null, 2);
    attempts.replaceChildren(table(["Attempt#", "Target", "Provider", "Outcome", "Billed s#", "Cost#"],
      (task.attempts || []).map((a) => el("tr", {},
        el("td", { class: "num" }, String(a.attempt)), el("td", {}, a.target), el("td", {}, a.provider),
        el("td", {}, a.outcome), el("td", { class: "num" }, String(a.billed_seconds)),
        el("td", { class: "num" }, usd(a.cost)))), "No attempt has ended yet."));
    events.replaceChildren(table(["At", "Attempt#", "Event", "Data"],
      ev.events.map((e) => el("tr", {},
        el("td", {}, when(e.at)), el("td", { class: "num" }, String(e.attempt)), el("td", {}, e.kind),
        el("td", { class: "mono" }, JSON.stringify(e.data)))), "No events yet."));
    ended = terminal;
  };

  poll(life, async () => {
    if (!ended) await refresh();
  });
  followLog(id, log, logState, signal).then(() => refresh().catch(flash), () => {});
}

// Stream GET /v1/tasks/{id}/log?follow=true into `pre` until the task ends (or the view goes).
async function followLog(id, pre, state, signal) {
  let response;
  try {
    response = await request(`/v1/tasks/${enc(id)}/log?follow=true`, { signal, headers: { Accept: "text/plain" } });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) logout(`Logged out: ${err.message}`);
    else if (err.name !== "AbortError") {
      state.textContent = `log unavailable: ${err.message}`;
      state.classList.add("paused");
    }
    throw err;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.append(document.createTextNode(decoder.decode(value, { stream: true })));
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    pre.append(document.createTextNode(decoder.decode()));
  } catch (err) {
    if (err.name === "AbortError") throw err;
  }
  if (!pre.textContent) pre.textContent = "(no output)";
  state.textContent = "ended";
  state.classList.add("paused");
}

// ------------------------------------------------------------------ codes

async function codesView() {
  const life = startView();
  const holder = el("div", { id: "codes" });
  $("view").append(el("div", { class: "bar" }, el("h1", {}, "Codes")), holder);
  poll(life, async () => {
    const data = await api("/v1/codes", { signal: life.abort.signal });
    const rows = data.codes.map((c) => {
      const rev = c.latest || {};
      return el("tr", { "data-code": c.name },
        el("td", {}, el("a", { href: `#/codes/${codePath(c.name)}` }, c.name)),
        el("td", { class: "num" }, String(c.rev)),
        el("td", {}, rev.kind === "image" ? "image" : `zip · ${rev.runtime || ""}`),
        el("td", { class: "mono" }, rev.image || ""),
        el("td", {}, c.paused ? badge("paused") : ""),
        el("td", {}, rev.target || ""),
        el("td", { title: when(c.updated_at) }, ago(c.updated_at)));
    });
    holder.replaceChildren(table(["Name", "Revision#", "Kind", "Image", "", "Target", "Updated"], rows,
      "No codes yet: mayfly code push or POST /v1/codes."));
  }, 5000);
}

async function codeView(name) {
  const life = startView();
  const holder = el("div", { id: "revisions" });
  const info = el("div", { id: "code-fields" });
  $("view").append(
    el("div", { class: "bar" }, el("a", { href: "#/codes" }, "← Codes")),
    el("div", { class: "bar" }, el("h1", {}, name), el("span", { class: "grow" }),
      el("a", { href: `#/tasks${qs({ code: name })}` }, "Tasks of this code →")),
    el("div", { class: "card" }, info), el("h2", {}, "Revisions"), holder);
  poll(life, async () => {
    const [code, revs] = await Promise.all([
      api(`/v1/codes/${codePath(name)}`, { signal: life.abort.signal }),
      api(`/v1/codes/${codePath(name)}/revisions`, { signal: life.abort.signal }),
    ]);
    const rev = code.latest || {};
    info.replaceChildren(fields([
      ["Latest revision", String(code.rev)],
      ["Paused", code.paused ? "yes" : "no"],
      ["Command", rev.command ? el("code", {}, rev.command) : null],
      ["Max concurrency", rev.max_concurrency ? String(rev.max_concurrency) : "no limit"],
      ["Retries", `${rev.retries} (delay ${rev.retries_delay} s)`],
      ["Timeout", `${rev.timeout} s`],
      ["Resources", `${rev.cpu} CPU · ${rev.memory_mb} MB`],
      // Values are write-only: the API lists the names that are set, never a value.
      ["Secrets", (rev.secrets || []).length ? rev.secrets.map((n) => `${n} (set)`).join(", ") : "none"],
      ["Created", when(code.created_at)],
    ]));
    const rows = revs.revisions.map((r) => el("tr", { "data-rev": r.rev },
      el("td", { class: "num" }, String(r.rev)),
      el("td", {}, r.kind),
      el("td", { class: "mono" }, r.kind === "image" ? r.image : `${r.runtime || ""} · ${(r.sha256 || "").slice(0, 12)}`),
      el("td", { class: "mono" }, r.command || ""),
      el("td", {}, r.target),
      el("td", { class: "num" }, r.size ? `${(r.size / 1024).toFixed(1)} KB` : ""),
      el("td", {}, when(r.created_at))));
    holder.replaceChildren(table(["Rev#", "Kind", "Image / package", "Command", "Target", "Size#", "Created"], rows,
      "No revisions."));
  }, 5000);
}

// ------------------------------------------------------------------ schedules

function scheduleRule(s) {
  if (s.kind === "cron") return `cron ${s.cron} (${s.tz})`;
  if (s.kind === "every") return `every ${s.run_every} s`;
  return `once at ${when(s.start_at)}`;
}

async function schedulesView() {
  const life = startView();
  const holder = el("div", { id: "schedules" });
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  $("view").append(el("div", { class: "bar" }, el("h1", {}, "Schedules"), el("span", { class: "grow" }),
    el("span", { class: "muted" }, `Times in ${zone}.`)), holder);
  poll(life, async () => {
    const [data, next] = await Promise.all([
      api("/v1/schedules", { signal: life.abort.signal }),
      api("/dashboard/api/schedules/next?count=3", { signal: life.abort.signal }),
    ]);
    const rows = data.schedules.map((s) => {
      const runs = next.next[s.id] || [];
      return el("tr", { "data-schedule": s.id },
        el("td", { class: "mono" }, s.id),
        el("td", {}, el("a", { href: `#/codes/${codePath(s.code_name)}` }, s.code_name)),
        el("td", {}, scheduleRule(s)),
        el("td", {}, badge(s.status, s.status === "complete" ? "-schedule" : "")),
        el("td", { class: "next-runs" }, runs.length
          ? runs.map((r, i) => el("div", { class: i ? "muted" : null }, `${when(r)} `, el("span", { class: "muted" }, `(${ago(r)})`)))
          : "—"),
        el("td", {}, s.last_run_time ? when(s.last_run_time) : "never"),
        el("td", { class: "num" }, s.run_times ? `${s.run_count} / ${s.run_times}` : String(s.run_count)));
    });
    holder.replaceChildren(table(["Schedule", "Code", "Rule", "Status", "Next runs", "Last run", "Runs#"], rows,
      "No schedules: mayfly schedule create or POST /v1/schedules."));
  }, 5000);
}

// ------------------------------------------------------------------ targets

// A target's circuit breaker: "closed", "open until … (capacity)" or "half-open" (docs/placement.md).
function breakerText(b) {
  if (!b || b.state === "closed") return "closed";
  if (b.state === "open") return `open until ${b.open_until} (${b.last_kind || "failures"})`;
  return b.state;
}

async function targetsView() {
  const life = startView();
  const holder = el("div", { id: "targets" });
  $("view").append(el("div", { class: "bar" }, el("h1", {}, "Targets"), el("span", { class: "grow" }),
    el("span", { class: "muted" }, "Counts are over every project of this server.")), holder);
  poll(life, async () => {
    const data = await api("/v1/targets", { signal: life.abort.signal });
    const rows = data.targets.map((t) => {
      const active = (t.running || 0) + (t.preparing || 0);
      const share = t.capacity ? Math.min(1, active / t.capacity) : 0;
      const used = el("span", { class: share >= 1 ? "full" : "used" });
      used.style.width = `${Math.round(share * 100)}%`;
      return el("tr", { "data-target": t.name },
        el("td", {}, el("a", { href: `#/tasks${qs({ target: t.name })}` }, t.name)),
        el("td", {}, t.provider),
        el("td", {}, el("div", { class: "meter" }, el("span", { class: "track" }, used),
          el("span", { class: "running-count" }, `${active} / ${t.capacity} running`))),
        el("td", { class: "num queued-count" }, String(t.queued || 0)),
        el("td", {}, t.embedded_runner ? "embedded" : "external"),
        el("td", { class: `breaker breaker-${(t.breaker && t.breaker.state) || "closed"}` }, breakerText(t.breaker)));
    });
    holder.replaceChildren(
      table(["Target", "Provider", "Running / limit", "Queued#", "Runner", "Breaker"], rows, "No targets."));
  }, 2000);
}

// ------------------------------------------------------------------ start

function start() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const secret = $("token").value.trim();
    $("login-submit").disabled = true;
    try {
      await login(secret);
      $("token").value = "";
    } catch (err) {
      showLogin(err.message || String(err));
    } finally {
      $("login-submit").disabled = false;
    }
  });
  $("logout").addEventListener("click", () => logout());
  window.addEventListener("hashchange", () => token() && route());
  const secret = token();
  if (!secret) return showLogin();
  request("/v1/project", {}, secret)
    .then((r) => r.json())
    .then(enter)
    .catch((err) => logout(err instanceof ApiError && err.status === 401 ? `Logged out: ${err.message}` : err.message));
}

start();
