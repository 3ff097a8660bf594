// burrow dashboard: plain JavaScript over the JSON api (no framework, no build step).
//
// Views (hash routes): #/jobs (upload + live table), #/jobs/{id} (one job, its history and
// actions), #/batches/{id} (one batch: progress, members, callbacks), #/failures (failed and dead jobs grouped by error, the DLQ). The overview on top
// (queue depth, in flight, consumers, throughput chart, flow control) is shared by all views.
//
// Everything polls: the current view every second, the overview every two seconds, paused
// while the tab is hidden. Rows and groups are updated in place (keyed by id), so keyboard
// focus survives the updates; status changes are announced through one polite live region.

const PAGE_SIZE = 25;
const POLL_MS = 1000;
const STATUSES = ["awaiting", "queued", "processing", "retrying", "succeeded", "failed", "dead", "cancelled"];
const RETRYABLE = new Set(["failed", "dead", "cancelled"]);
const CANCELLABLE = new Set(["awaiting", "queued", "retrying", "processing"]);
const HTTP_REASONS = {
  400: "Bad Request",
  404: "Not Found",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

const $ = (selector) => document.querySelector(selector);

/** An element: `h("a", { href, class, text }, ...children)`. Text is always set as text. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  el.append(...children.flat().filter((c) => c != null && c !== false));
  return el;
}

/** An SVG element. */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(el, attrs);
  el.append(...children.flat().filter((c) => c != null && c !== false));
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

/** Replaces `el`'s children, only when `key` changed since the last call. */
function render(el, key, build) {
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  el.replaceChildren(...[build()].flat().filter((c) => c != null));
}

// ---------------------------------------------------------------------------------------------
// The api

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** "415 Unsupported Media Type: the file is not an .xlsx workbook". */
  describe() {
    if (!this.status) return this.message;
    const reason = HTTP_REASONS[this.status] ?? "Error";
    return `${this.status} ${reason}: ${this.message}`;
  }
}

/** Turns a response into its JSON body, or throws an ApiError with the api's own message. */
function parseResponse(status, text) {
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (status >= 200 && status < 300) return body;
  const message = body?.message ?? (text.trim() || "the request failed");
  throw new ApiError(status, body?.error ?? `http_${status}`, message);
}

/**
 * The API key for servers with AUTH_MODE=keys, kept in this browser's localStorage. Asked for
 * once, when the api first answers 401; never sent anywhere but this api.
 */
function apiKey() {
  return localStorage.getItem("burrow.apiKey") || "";
}

function authHeaders(headers) {
  const key = apiKey();
  if (key) headers.authorization = `Bearer ${key}`;
  return headers;
}

/** After a 401: ask for a key once, remember it, and tell the caller to try again. */
function askForKey() {
  const key = window.prompt("This burrow api needs an API key (created with `burrow-api keys create`):");
  if (key && key.trim()) {
    localStorage.setItem("burrow.apiKey", key.trim());
    return true;
  }
  return false;
}

async function api(path, { method = "GET", json, form } = {}, retried = false) {
  const init = { method, headers: authHeaders({ accept: "application/json" }) };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  // multipart/form-data: the browser sets the content type with its boundary.
  if (form !== undefined) init.body = form;
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", `Cannot reach the api (${e.message}).`);
  }
  if (response.status === 401 && !retried && askForKey()) {
    return api(path, { method, json, form }, true);
  }
  return parseResponse(response.status, await response.text());
}

/** Uploads one file as multipart (fields `file`, `profile`, `user_id`), reporting upload
 * progress (0–1). */
function uploadFile(file, { userId, profile }, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    if (userId) form.append("user_id", userId);
    form.append("profile", profile);
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.setRequestHeader("accept", "application/json");
    if (apiKey()) xhr.setRequestHeader("authorization", `Bearer ${apiKey()}`);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      try {
        resolve(parseResponse(xhr.status, xhr.responseText));
      } catch (e) {
        reject(e);
      }
    });
    const failed = () => reject(new ApiError(0, "network", "Cannot reach the api; the upload did not finish."));
    xhr.addEventListener("error", failed);
    xhr.addEventListener("abort", failed);
    xhr.send(form);
  });
}

// ---------------------------------------------------------------------------------------------
// Formatting

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

function ago(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return timeFormat.format(new Date(iso));
  return dateTimeFormat.format(new Date(iso));
}

function duration(ms) {
  if (ms == null || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** How long the latest attempt ran (or has been running). */
function runTime(job, now = Date.now()) {
  if (!job.started_at) return null;
  const end = job.completed_at ? Date.parse(job.completed_at) : job.status === "processing" ? now : null;
  return end == null ? null : end - Date.parse(job.started_at);
}

function timeEl(iso, text) {
  if (!iso) return h("span", { class: "dash", text: "—" });
  return h("time", { datetime: iso, title: dateTimeFormat.format(new Date(iso)), text: text ?? ago(iso) });
}

function preciseTime(iso) {
  const d = new Date(iso);
  return `${timeFormat.format(d)}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

const number = new Intl.NumberFormat();
const fmt = (n) => (n == null ? "—" : number.format(n));
const shortId = (id) => id.slice(-8);
const jobName = (job) => job.file_name || job.kind;

function pill(status) {
  return h("span", { class: `pill pill-${status}`, text: status });
}

/** A progress bar with a percentage (and `done/total`), or a dash when there is none. */
function progressEl(job, label) {
  const { progress_total: total, progress_done: done, status } = job;
  const cls = status === "succeeded" ? "done" : status === "failed" || status === "dead" ? "bad" : null;
  if (total > 0) {
    const pct = Math.min(100, Math.floor(((done ?? 0) * 100) / total));
    return h(
      "div",
      { class: "progress" },
      h("progress", { max: total, value: done ?? 0, class: cls, "aria-label": label, title: `${fmt(done)} of ${fmt(total)}` }),
      h("span", { class: "progress-text", text: `${pct} %` }),
    );
  }
  if (status === "succeeded") {
    return h(
      "div",
      { class: "progress" },
      h("progress", { max: 1, value: 1, class: "done", "aria-label": label }),
      h("span", { class: "progress-text", text: "100 %" }),
    );
  }
  if (status === "processing") {
    return h("div", { class: "progress" }, h("progress", { "aria-label": label }), h("span", { class: "progress-text", text: "…" }));
  }
  return h("span", { class: "dash", text: "—" });
}

// ---------------------------------------------------------------------------------------------
// Announcements and connection state

const announcer = $("#announcer");
let announceTimer = null;
const pendingAnnouncements = [];

/** Says `text` through the polite live region (batched, so a burst reads as one sentence). */
function announce(text) {
  pendingAnnouncements.push(text);
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    const items = pendingAnnouncements.splice(0);
    announcer.textContent = items.length > 4 ? `${items.length} jobs changed status.` : items.join(" ");
  }, 300);
}

let online = null;
function setConnection(ok) {
  const live = $("#live");
  live.dataset.state = ok ? "live" : "offline";
  $("#live-text").textContent = ok ? `Live · ${timeFormat.format(new Date())}` : "Api unreachable, retrying…";
  if (online !== null && online !== ok) announce(ok ? "Connection to the api restored." : "Lost connection to the api.");
  online = ok;
}

// ---------------------------------------------------------------------------------------------
// Router

const state = {
  view: "jobs",
  jobId: null,
  batchId: null,
  batchStatus: "", // the member list's status filter on a batch's page
  filter: { status: "", user: "" },
  cursors: [null], // cursor of each page visited; the last is the current page
  nextCursor: null,
  lastStats: null,
};

function route(initial = false) {
  const hash = location.hash || "#/jobs";
  const match = hash.match(/^#\/(jobs|batches)\/([0-9a-fA-F-]{36})$/);
  const view = match ? (match[1] === "jobs" ? "job" : "batch") : hash === "#/failures" ? "failures" : "jobs";
  const id = match ? match[2].toLowerCase() : null;
  const changed = view !== state.view || (view === "job" && id !== state.jobId) || (view === "batch" && id !== state.batchId);
  state.view = view;
  state.jobId = view === "job" ? id : null;
  state.batchId = view === "batch" ? id : null;
  for (const el of document.querySelectorAll(".view")) el.hidden = el.dataset.view !== view;
  for (const link of document.querySelectorAll(".views a")) {
    const current = link.dataset.view === (view === "job" || view === "batch" ? "jobs" : view);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "job" && changed) resetJobView();
  if (view === "batch" && changed) resetBatchView();
  document.title = { failures: "Failures", job: "Job", batch: "Batch", jobs: "Jobs" }[view] + " · burrow";
  refreshView().catch(() => {});
  if (!initial && changed) {
    const heading = { jobs: "#upload-title", job: "#job-title", batch: "#batch-title", failures: "#failures-title" }[view];
    $(heading)?.focus();
  }
}

function refreshView() {
  if (state.view === "jobs") return loadJobs();
  if (state.view === "job") return loadJob();
  if (state.view === "batch") return loadBatch();
  return loadFailures();
}

// ---------------------------------------------------------------------------------------------
// Overview: stats cards, status chips, throughput chart

let statsSeq = 0;
async function loadStats() {
  const seq = ++statsSeq;
  const stats = await api("/api/stats");
  if (seq !== statsSeq) return;
  state.lastStats = stats;
  const work = stats.work_queue;
  const dead = stats.dead_letter_queue;
  // Jobs wait in two queues, normal and high priority; the card counts both.
  setStat("#stat-queue", work == null ? null : work.messages + (stats.high_queue?.messages ?? 0));
  setStat("#stat-consumers", work?.consumers);
  setStat("#stat-dlq", dead?.messages);
  setStat("#stat-inflight", stats.in_flight);
  $("#stat-queue-note").textContent =
    stats.rabbitmq === "up"
      ? stats.outbox_pending > 0
        ? `ready · ${fmt(stats.outbox_pending)} in outbox`
        : "messages ready"
      : "RabbitMQ unreachable";
  $("#dlq-size").textContent = dead ? `${fmt(dead.messages)} message${dead.messages === 1 ? "" : "s"}` : "unknown (RabbitMQ unreachable)";
  const failures = (stats.jobs_by_status.failed ?? 0) + (stats.jobs_by_status.dead ?? 0);
  const badge = $("#nav-failures");
  badge.hidden = failures === 0;
  badge.textContent = fmt(failures);
  badge.setAttribute("aria-label", `${failures} failed or dead`);
  renderChips(stats.jobs_by_status);
  renderChart(stats.throughput.per_minute);
  renderFlow(stats);
}

// ---------------------------------------------------------------------------------------------
// Flow control: caps per kind, rate limits per kind, backlog per tenant (all from /api/stats)

/** The three flow-control tables; each is rebuilt only when its figures change. */
function renderFlow(stats) {
  flowTable("caps", stats.kind_caps ?? [], (c) =>
    h(
      "tr",
      {},
      h("td", { text: c.kind }),
      h(
        "td",
        {},
        h("progress", {
          max: c.cap,
          value: Math.min(c.running, c.cap),
          class: c.running >= c.cap ? "full" : null,
          "aria-label": `${c.kind}: ${c.running} of ${c.cap} slots in use`,
        }),
        h("span", { class: "cap-text", text: `${fmt(c.running)} / ${fmt(c.cap)}` }),
      ),
      h("td", { class: "num", text: fmt(c.waiting) }),
    ),
  );
  flowTable("rates", stats.rate_limits ?? [], (r) =>
    h(
      "tr",
      {},
      h("td", { text: r.kind }),
      h("td", { text: `${fmt(r.rate)} per ${period(r.period_ms)}, burst ${fmt(r.burst)}` }),
      h("td", { class: "num", text: fmt(r.waiting) }),
      h("td", { class: "num", text: fmt(r.keys_throttled) }),
    ),
  );
  const tenants = stats.tenants ?? { top: [], others: { tenants: 0, backlog: 0, running: 0 } };
  flowTable("tenants", tenants.top, (t) =>
    h(
      "tr",
      {},
      t.user_id == null ? h("td", { class: "no-owner", text: "(no owner)" }) : h("td", { text: t.user_id }),
      h("td", { class: "num", text: fmt(t.backlog) }),
      h("td", { class: "num", text: fmt(t.running) }),
    ),
  );
  const others = tenants.others;
  const note = $("#flow-tenants-others");
  note.hidden = others.tenants === 0;
  note.textContent = `and ${fmt(others.tenants)} more tenant${others.tenants === 1 ? "" : "s"}: ${fmt(others.backlog)} backlog, ${fmt(others.running)} running`;
}

/** Fills table #flow-`name` with a row per item (or shows its empty state). */
function flowTable(name, items, row) {
  const table = $(`#flow-${name}`);
  table.closest(".table-wrap").hidden = items.length === 0;
  $(`#flow-${name}-empty`).hidden = items.length > 0;
  render(table.tBodies[0], JSON.stringify(items), () => items.map(row));
}

/** A rate limit's period in words: "1 s", "1 min", "250 ms". */
function period(ms) {
  if (ms % 3_600_000 === 0) return ms === 3_600_000 ? "hour" : `${fmt(ms / 3_600_000)} h`;
  if (ms % 60_000 === 0) return ms === 60_000 ? "minute" : `${fmt(ms / 60_000)} min`;
  if (ms % 1000 === 0) return ms === 1000 ? "second" : `${fmt(ms / 1000)} s`;
  return `${fmt(ms)} ms`;
}

function setStat(selector, value) {
  const el = $(selector);
  el.textContent = value == null ? "–" : fmt(value);
  el.closest(".stat-card").classList.toggle("down", value == null);
}

function renderChips(byStatus) {
  const box = $("#status-chips");
  if (!box.children.length) {
    for (const status of STATUSES) {
      box.append(
        h(
          "button",
          {
            type: "button",
            class: "chip",
            "data-status": status,
            "aria-pressed": "false",
            onclick: () => {
              const same = state.filter.status === status;
              setFilter({ status: same ? "" : status, user: state.filter.user });
              if (state.view !== "jobs") location.hash = "#/jobs";
            },
          },
          pill(status),
          h("span", { class: "chip-count", text: "0" }),
        ),
      );
    }
  }
  for (const chip of box.children) {
    const status = chip.dataset.status;
    chip.querySelector(".chip-count").textContent = fmt(byStatus[status] ?? 0);
    chip.setAttribute("aria-pressed", String(state.filter.status === status));
    chip.setAttribute("aria-label", `${status}: ${byStatus[status] ?? 0} jobs. Show only ${status} jobs`);
  }
}

/** A stacked bar per minute (succeeded, failed or dead, cancelled), drawn at the SVG's size. */
function renderChart(perMinute) {
  const chart = $("#throughput-chart");
  const width = Math.max(240, Math.round(chart.getBoundingClientRect().width) || 600);
  const height = Math.max(80, Math.round(chart.getBoundingClientRect().height) || 150);
  const pad = { left: 30, right: 6, top: 8, bottom: 20 };
  const peak = Math.max(0, ...perMinute.map((m) => m.completed));
  const top = niceCeiling(Math.max(peak, 4));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const slot = plotW / perMinute.length;
  const barW = Math.max(3, slot * 0.68);
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const total = perMinute.reduce((sum, m) => sum + m.completed, 0);
  const last = perMinute.at(-1);
  const summary =
    `${fmt(total)} job${total === 1 ? "" : "s"} completed in the last ${perMinute.length} minutes` +
    (peak ? `, at most ${fmt(peak)} in a minute` : "") +
    `; ${fmt(last?.completed ?? 0)} so far this minute.`;
  $("#chart-summary").textContent = `${fmt(total)} in ${perMinute.length} min · ${fmt(last?.completed ?? 0)} this minute`;

  const parts = [svg("title", { id: "chart-desc", text: `Throughput: ${summary}` })];
  for (const tick of [0, top / 2, top]) {
    parts.push(svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }));
    parts.push(svg("text", { class: "axis-label", x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end", text: fmt(tick) }));
  }
  perMinute.forEach((m, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const other = Math.max(0, m.completed - m.succeeded - m.failed);
    const label = `${timeFormat.format(new Date(m.minute)).slice(0, 5)}: ${m.completed} completed (${m.succeeded} succeeded, ${m.failed} failed or dead${other ? `, ${other} cancelled` : ""})`;
    const group = svg("g", {}, svg("title", { text: label }));
    if (m.completed === 0) {
      group.append(svg("rect", { class: "bar-empty", x, y: y(0) - 2, width: barW, height: 2, rx: 1 }));
    }
    let base = 0;
    for (const [value, cls] of [[m.succeeded, "bar-succeeded"], [m.failed, "bar-failed"], [other, "bar-other"]]) {
      if (!value) continue;
      group.append(svg("rect", { class: cls, x, y: y(base + value), width: barW, height: Math.max(1, y(base) - y(base + value)), rx: 2 }));
      base += value;
    }
    parts.push(group);
  });
  const labelY = height - 5;
  parts.push(svg("text", { class: "axis-label", x: pad.left, y: labelY, text: `−${perMinute.length - 1} min` }));
  parts.push(svg("text", { class: "axis-label", x: width - pad.right, y: labelY, "text-anchor": "end", text: "now" }));
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  chart.replaceChildren(...parts);
}

function niceCeiling(v) {
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= v) return step * magnitude;
  return 10 * magnitude;
}

// ---------------------------------------------------------------------------------------------
// Upload

const uploadResults = $("#upload-results");
const MAX_UPLOAD_RESULTS = 20;

async function uploadAll(files) {
  const options = { userId: $("#upload-user").value.trim(), profile: $("#upload-profile").value };
  const previewFirst = $("#upload-preview").checked;
  const items = [...files].map((file) => {
    const name = h("span", { class: "name", text: file.name });
    const outcome = h("span", { class: "outcome", text: "waiting…" });
    const li = h("li", { class: "upload-result" }, name, outcome);
    uploadResults.prepend(li);
    return { file, li, outcome };
  });
  while (uploadResults.children.length > MAX_UPLOAD_RESULTS) uploadResults.lastElementChild.remove();
  // One at a time: the results read in order, a big batch does not flood the api, and each
  // preview waits for its decision before the next file is read.
  for (const item of items) {
    if (previewFirst && !(await previewAndDecide(item, options))) continue;
    await upload(item, options);
  }
  loadJobs().catch(() => {});
}

/** Uploads one file as a job and reports the outcome on its line. */
async function upload({ file, li, outcome }, options) {
  outcome.textContent = "uploading…";
  try {
    const job = await uploadFile(file, options, (fraction) => {
      outcome.textContent = `uploading ${Math.round(fraction * 100)} %`;
    });
    li.classList.add("ok");
    outcome.replaceChildren(
      "accepted: ",
      h("a", { href: `#/jobs/${job.id}`, text: `job …${shortId(job.id)}` }),
      ` (${job.status})`,
    );
    announce(`${file.name} accepted as job …${shortId(job.id)}.`);
  } catch (e) {
    refused(li, outcome, file, e);
  }
}

function refused(li, outcome, file, e) {
  li.classList.add("error");
  outcome.textContent = e instanceof ApiError ? e.describe() : String(e);
  announce(`${file.name} refused: ${outcome.textContent}`);
}

/**
 * Dry-runs the import (`POST /api/imports/preview`) and shows, on the file's line, which header
 * feeds which column and the first rows as they would be written; resolves true when the user
 * chooses Import, false on Discard or when the preview refuses the file (the import would too).
 */
async function previewAndDecide({ file, li, outcome }, { profile }) {
  outcome.textContent = "reading…";
  const form = new FormData();
  form.append("profile", profile);
  form.append("file", file, file.name);
  let preview;
  try {
    preview = await api("/api/imports/preview", { method: "POST", form });
  } catch (e) {
    refused(li, outcome, file, e);
    return false;
  }
  const card = previewCard(preview);
  li.classList.add("previewed");
  outcome.textContent = previewSummary(preview);
  li.append(card);
  announce(`${file.name}: ${outcome.textContent}. Import or discard?`);
  const decision = await new Promise((resolve) => {
    card.querySelector(".preview-import").addEventListener("click", () => resolve(true), { once: true });
    card.querySelector(".preview-discard").addEventListener("click", () => resolve(false), { once: true });
  });
  card.remove();
  li.classList.remove("previewed");
  if (!decision) {
    outcome.textContent = "discarded: nothing was imported";
    announce(`${file.name} discarded.`);
  }
  return decision;
}

/** "sheet "data", header in row 1; 200 rows read, 2 invalid". */
function previewSummary(p) {
  const invalid = p.errors_total ? `, ${p.errors_total} invalid` : ", all valid";
  return `sheet “${p.sheet}”, header in row ${p.header_row}; ${p.rows_scanned} rows read${invalid}`;
}

/** The mapping, the sample rows, the first errors and the two buttons. */
function previewCard(p) {
  const mapping = h(
    "table",
    { class: "preview-mapping" },
    h("caption", { text: `Columns of profile ${p.profile}` }),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Column" }), h("th", { scope: "col", text: "From header" }), h("th", { scope: "col", text: "Cell" }))),
    h(
      "tbody",
      {},
      ...p.columns.map((c) =>
        h(
          "tr",
          { class: c.header ? "mapped" : "unmapped" },
          h("th", { scope: "row", text: c.required ? `${c.column} *` : c.column }),
          h("td", { text: c.header ?? "— (missing: default or empty)" }),
          h("td", { text: c.cell ?? "" }),
        ),
      ),
    ),
  );
  const notes = h("p", { class: "preview-notes" });
  if (p.ignored.length) notes.append(`Ignored headers: ${p.ignored.join(", ")}. `);
  if (p.missing.length) notes.append(`Missing optional columns: ${p.missing.join(", ")}.`);
  const sample = h(
    "table",
    { class: "preview-sample" },
    h("caption", { text: `First ${p.rows.length} rows as they would be written` }),
    h("thead", {}, h("tr", {}, ...p.columns.map((c) => h("th", { scope: "col", text: c.column })))),
    h("tbody", {}, ...p.rows.map((row) => h("tr", {}, ...row.map((v) => h("td", { text: v ?? "" }))))),
  );
  const errors = p.errors.length
    ? h("ul", { class: "preview-errors", "aria-label": "Invalid rows" }, ...p.errors.map((e) => h("li", { text: e })))
    : "";
  const actions = h(
    "div",
    { class: "preview-actions" },
    h("button", { type: "button", class: "button primary preview-import", text: "Import" }),
    h("button", { type: "button", class: "button preview-discard", text: "Discard" }),
  );
  return h(
    "div",
    { class: "preview" },
    h("div", { class: "table-wrap" }, mapping),
    notes,
    h("div", { class: "table-wrap" }, sample),
    errors,
    actions,
  );
}

/** Fills the profile picker from `GET /api/import-profiles` (people is there from the start). */
async function loadProfiles() {
  const select = $("#upload-profile");
  const profiles = await api("/api/import-profiles");
  select.replaceChildren(
    ...profiles.map((p) => h("option", { value: p.name, text: p.description ? `${p.name} — ${p.description}` : p.name })),
  );
  select.value = "people";
}

function setUpUpload() {
  const input = $("#file-input");
  const zone = $("#dropzone");
  $("#pick-files").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files.length) uploadAll(input.files);
    input.value = "";
  });
  const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes("Files");
  let depth = 0;
  zone.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    if (e.dataTransfer.files.length) uploadAll(e.dataTransfer.files);
  });
  // A file dropped next to the zone must not make the browser navigate away to it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (e) => {
      if (hasFiles(e) && !zone.contains(e.target)) e.preventDefault();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs table

const jobsBody = $("#jobs-body");
const rows = new Map(); // job id → <tr>
let knownStatus = new Map(); // job id → status at the last update (this page only), to announce changes
let jobsSeq = 0;

async function loadJobs() {
  const seq = ++jobsSeq;
  const params = new URLSearchParams({ limit: PAGE_SIZE });
  if (state.filter.status) params.set("status", state.filter.status);
  if (state.filter.user) params.set("user_id", state.filter.user);
  const cursor = state.cursors.at(-1);
  if (cursor) params.set("cursor", cursor);
  const page = await api(`/api/jobs?${params}`);
  if (seq !== jobsSeq) return;
  state.nextCursor = page.next_cursor ?? null;
  renderJobs(page.jobs);
}

function renderJobs(jobs) {
  const now = Date.now();
  const seen = new Set();
  const statuses = new Map();
  jobs.forEach((job, index) => {
    seen.add(job.id);
    let row = rows.get(job.id);
    if (!row) {
      row = newJobRow(job);
      rows.set(job.id, row);
    }
    updateJobRow(row, job, now);
    if (jobsBody.children[index] !== row) jobsBody.insertBefore(row, jobsBody.children[index] ?? null);
    const before = knownStatus.get(job.id);
    if (before && before !== job.status) announce(`${jobName(job)} (job …${shortId(job.id)}) is now ${job.status}.`);
    statuses.set(job.id, job.status);
  });
  knownStatus = statuses;
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
  $("#jobs-empty").hidden = jobs.length > 0;
  $("#page-newer").disabled = state.cursors.length === 1;
  $("#page-older").disabled = !state.nextCursor;
  const label = `Page ${state.cursors.length}`;
  // A live region: write only when it changes, so it is announced once.
  if ($("#page-label").textContent !== label) $("#page-label").textContent = label;
}

function newJobRow(job) {
  const cell = (label, cls) => h("td", { "data-label": label, class: cls });
  const row = h(
    "tr",
    { "data-id": job.id },
    h(
      "td",
      { "data-label": "Job" },
      h("a", { class: "job-link", href: `#/jobs/${job.id}`, text: jobName(job) }),
      h("span", { class: "job-meta" }),
    ),
    cell("Status", "cell-status"),
    cell("Progress", "cell-progress"),
    cell("Attempts", "num cell-attempts"),
    cell("Rows", "num cell-rows"),
    cell("Created", "cell-created"),
    cell("Run time", "cell-run"),
  );
  return row;
}

function updateJobRow(row, job, now) {
  const [name, status, progress, attempts, rowsCell, created, run] = row.children;
  const meta = [job.file_name ? job.kind : null, `…${shortId(job.id)}`, job.user_id].filter(Boolean).join(" · ");
  name.querySelector(".job-meta").textContent = meta;
  render(status, job.status + job.cancel_requested, () =>
    job.cancel_requested && job.status === "processing" ? [pill(job.status), " ", h("span", { class: "job-meta", text: "cancelling…" })] : pill(job.status),
  );
  render(progress, `${job.status}|${job.progress_done}|${job.progress_total}`, () => progressEl(job, `Progress of ${jobName(job)}`));
  attempts.textContent = fmt(job.attempts);
  rowsCell.textContent = fmt(job.rows_imported);
  render(created, ago(job.created_at, now), () => timeEl(job.created_at));
  const ran = runTime(job, now);
  render(run, String(ran), () => h("span", { class: ran == null ? "dash" : null, text: duration(ran) }));
}

function setFilter(filter) {
  state.filter = filter;
  state.cursors = [null];
  $("#filter-status").value = filter.status;
  $("#filter-user").value = filter.user;
  if (state.lastStats) renderChips(state.lastStats.jobs_by_status);
  loadJobs().catch(() => {});
}

function setUpJobs() {
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    setFilter({ status: $("#filter-status").value, user: $("#filter-user").value.trim() });
  });
  $("#filter-status").addEventListener("change", () =>
    setFilter({ status: $("#filter-status").value, user: $("#filter-user").value.trim() }),
  );
  $("#filter-clear").addEventListener("click", () => setFilter({ status: "", user: "" }));
  $("#page-older").addEventListener("click", () => {
    if (!state.nextCursor) return;
    state.cursors.push(state.nextCursor);
    loadJobs().catch(() => {});
  });
  $("#page-newer").addEventListener("click", () => {
    if (state.cursors.length > 1) state.cursors.pop();
    loadJobs().catch(() => {});
  });
}

// ---------------------------------------------------------------------------------------------
// One job

let jobSeq = 0;
let currentJob = null;

function resetJobView() {
  currentJob = null;
  $("#job-title").textContent = "Loading…";
  for (const id of ["#job-sub", "#job-facts", "#job-events", "#job-progress"]) {
    $(id).replaceChildren();
    delete $(id).dataset.key;
  }
  $("#job-action-status").textContent = "";
  $("#job-alert").hidden = true;
  for (const id of ["#job-retry", "#job-cancel", "#job-download"]) $(id).hidden = true;
}

async function loadJob() {
  const id = state.jobId;
  const seq = ++jobSeq;
  let job;
  try {
    job = await api(`/api/jobs/${id}`);
  } catch (e) {
    if (seq === jobSeq && e.status === 404) {
      $("#job-title").textContent = "No such job";
      $("#job-sub").textContent = `There is no job ${id}.`;
      return;
    }
    throw e;
  }
  if (seq !== jobSeq || id !== state.jobId) return;
  if (currentJob && currentJob.status !== job.status) announce(`${jobName(job)} is now ${job.status}.`);
  currentJob = job;
  renderJob(job);
}

function renderJob(job) {
  document.title = `${jobName(job)} · burrow`;
  $("#job-title").textContent = jobName(job);
  render($("#job-sub"), `${job.status}|${job.cancel_requested}`, () => [
    pill(job.status),
    h("span", { class: "mono", text: job.id }),
    job.cancel_requested && job.status === "processing" ? h("span", { text: "cancel requested" }) : null,
  ]);

  const retry = $("#job-retry");
  retry.hidden = !RETRYABLE.has(job.status);
  const cancel = $("#job-cancel");
  cancel.hidden = !CANCELLABLE.has(job.status);
  cancel.disabled = job.cancel_requested;
  cancel.textContent = job.cancel_requested ? "Cancelling…" : "Cancel job";
  const download = $("#job-download");
  download.hidden = !job.result_file_name;
  if (job.result_file_name) {
    download.href = `/api/jobs/${job.id}/result`;
    download.textContent = `Download ${job.result_file_name}`;
  }

  const alert = $("#job-alert");
  const failedText = job.status === "failed" || job.status === "dead" ? job.message || job.last_error : null;
  const retryingText = job.status === "retrying" ? job.last_error : null;
  alert.hidden = !(failedText || retryingText);
  alert.classList.toggle("warn", Boolean(retryingText));
  $("#job-alert-title").textContent = failedText
    ? job.status === "dead"
      ? "Dead: retries exhausted"
      : "Failed"
    : `Retrying${job.next_attempt_at ? ` at ${timeFormat.format(new Date(job.next_attempt_at))}` : ""} after`;
  $("#job-alert-text").textContent = failedText || retryingText || "";

  render($("#job-progress"), `${job.status}|${job.progress_done}|${job.progress_total}`, () =>
    job.progress_total > 0 || job.status === "processing" ? progressEl(job, `Progress of ${jobName(job)}`) : null,
  );

  const waited = job.started_at ? Date.parse(job.started_at) - Date.parse(job.created_at) : null;
  const facts = [
    ["Status", pill(job.status)],
    ["Message", failedText ? null : job.message],
    ["Kind", job.kind],
    ["Owner tag", job.user_id],
    ["File", job.file_name],
    ["Attempts", fmt(job.attempts)],
    ["Rows imported", job.rows_imported == null ? null : fmt(job.rows_imported)],
    ["Progress", job.progress_total > 0 ? `${fmt(job.progress_done)} of ${fmt(job.progress_total)}` : null],
    ["Worker", job.worker],
    ["Created", timeEl(job.created_at, dateTimeFormat.format(new Date(job.created_at)))],
    ["Started", job.started_at ? timeEl(job.started_at, dateTimeFormat.format(new Date(job.started_at))) : null],
    ["Completed", job.completed_at ? timeEl(job.completed_at, dateTimeFormat.format(new Date(job.completed_at))) : null],
    ["Waited", waited == null ? null : duration(waited)],
    ["Run time", runTime(job) == null ? null : duration(runTime(job))],
    ["Run at", job.run_at ? timeEl(job.run_at, dateTimeFormat.format(new Date(job.run_at))) : null],
    ["Next attempt", job.next_attempt_at ? timeEl(job.next_attempt_at, dateTimeFormat.format(new Date(job.next_attempt_at))) : null],
    ["Last error", job.last_error && job.last_error !== failedText ? job.last_error : null],
    ["Priority", job.priority ? String(job.priority) : null],
    ["Result", job.result_file_name],
    ["Trace id", job.trace_id],
    ["Batch", job.batch_id ? h("a", { class: "mono", href: `#/batches/${job.batch_id}`, text: job.batch_id }) : null],
    ["Waits for", relatives(job.parents)],
    ["Waited on by", relatives(job.children)],
    ["Output", job.output == null ? null : h("code", { class: "mono", text: JSON.stringify(job.output) })],
  ].filter(([, value]) => value != null && value !== "");
  const { events, ...jobOnly } = job;
  render($("#job-facts"), JSON.stringify(jobOnly) + (job.status === "processing" ? Date.now() : ""), () =>
    facts.map(([term, value]) => h("div", {}, h("dt", { text: term }), h("dd", {}, value))),
  );
  render($("#job-events"), JSON.stringify(events), () =>
    events.map((event) =>
      h(
        "tr",
        {},
        h("td", { "data-label": "Time" }, h("time", { datetime: event.at, title: dateTimeFormat.format(new Date(event.at)), text: preciseTime(event.at) })),
        h("td", { "data-label": "Event" }, STATUSES.includes(event.event) ? pill(event.event) : h("strong", { text: event.event.replaceAll("_", " ") })),
        h("td", { "data-label": "Attempt", class: "num", text: event.attempt ?? "—" }),
        h("td", { "data-label": "Worker", class: "mono", text: event.worker ?? "—" }),
        h("td", { "data-label": "Detail", class: "cell-detail event-detail", text: event.detail ?? "" }),
      ),
    ),
  );
}

/** Parents or children of a job as links with their status; null when there are none. */
function relatives(jobs) {
  if (!jobs || jobs.length === 0) return null;
  return h(
    "ul",
    { class: "relatives" },
    ...jobs.map((other) =>
      h("li", {}, pill(other.status), " ", h("a", { href: `#/jobs/${other.id}`, text: `${other.kind} …${shortId(other.id)}` })),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// One batch: progress, members per status (which filter the member list), callbacks

const TERMINAL = new Set(["succeeded", "failed", "dead", "cancelled"]);
let batchSeq = 0;
let currentBatch = null;

function resetBatchView() {
  currentBatch = null;
  state.batchStatus = "";
  $("#batch-title").textContent = "Loading…";
  for (const id of ["#batch-sub", "#batch-progress", "#batch-chips", "#batch-facts", "#batch-members"]) {
    $(id).replaceChildren();
    delete $(id).dataset.key;
  }
}

async function loadBatch() {
  const id = state.batchId;
  const seq = ++batchSeq;
  let batch;
  try {
    batch = await api(`/api/batches/${id}`);
  } catch (e) {
    if (seq === batchSeq && e.status === 404) {
      $("#batch-title").textContent = "No such batch";
      $("#batch-sub").textContent = `There is no batch ${id}.`;
      return;
    }
    throw e;
  }
  const params = new URLSearchParams({ batch_id: id, limit: PAGE_SIZE });
  if (state.batchStatus) params.set("status", state.batchStatus);
  const page = await api(`/api/jobs?${params}`);
  if (seq !== batchSeq || id !== state.batchId) return;
  if (currentBatch && currentBatch.status !== batch.status) announce(`${batchName(batch)} is now ${batch.status}.`);
  currentBatch = batch;
  renderBatch(batch, page.jobs);
}

const batchName = (batch) => batch.description || `Batch …${shortId(batch.id)}`;

function renderBatch(batch, members) {
  document.title = `${batchName(batch)} · burrow`;
  $("#batch-title").textContent = batchName(batch);
  render($("#batch-sub"), batch.status, () => [pill(batch.status), h("span", { class: "mono", text: batch.id })]);
  const ended = Object.entries(batch.counts)
    .filter(([status]) => TERMINAL.has(status))
    .reduce((sum, [, n]) => sum + n, 0);
  const status = batch.status === "running" ? "processing" : batch.status;
  render($("#batch-progress"), `${status}|${ended}|${batch.members}`, () => [
    progressEl({ status, progress_done: ended, progress_total: batch.members }, `Members of ${batchName(batch)} that ended`),
    h("span", { class: "job-meta", text: `${fmt(ended)} of ${fmt(batch.members)} members ended` }),
  ]);
  render($("#batch-chips"), JSON.stringify(batch.counts) + state.batchStatus, () =>
    STATUSES.filter((s) => batch.counts[s]).map((s) =>
      h(
        "button",
        {
          type: "button",
          class: "chip",
          "data-status": s,
          "aria-pressed": String(state.batchStatus === s),
          "aria-label": `${s}: ${batch.counts[s]} members. Show only ${s} members`,
          onclick: () => {
            state.batchStatus = state.batchStatus === s ? "" : s;
            loadBatch().catch(() => {});
          },
        },
        pill(s),
        h("span", { class: "chip-count", text: fmt(batch.counts[s]) }),
      ),
    ),
  );
  const facts = [
    ["Status", pill(batch.status)],
    ["Members", fmt(batch.members)],
    ["Owner tag", batch.user_id],
    ["Created", timeEl(batch.created_at, dateTimeFormat.format(new Date(batch.created_at)))],
    ["Completed", batch.completed_at ? timeEl(batch.completed_at, dateTimeFormat.format(new Date(batch.completed_at))) : null],
    ["On success", callback(batch.on_success, batch.on_success_status)],
    ["On complete", callback(batch.on_complete, batch.on_complete_status)],
  ].filter(([, value]) => value != null && value !== "");
  render($("#batch-facts"), JSON.stringify(batch), () =>
    facts.map(([term, value]) => h("div", {}, h("dt", { text: term }), h("dd", {}, value))),
  );
  $("#batch-members-title").textContent = state.batchStatus ? `Members: ${state.batchStatus}` : "Members";
  render($("#batch-members"), JSON.stringify(members), () =>
    members.map((job) =>
      h(
        "tr",
        { "data-id": job.id },
        h("td", { "data-label": "Job" }, h("a", { href: `#/jobs/${job.id}`, text: `${jobName(job)} …${shortId(job.id)}` })),
        h("td", { "data-label": "Status" }, pill(job.status)),
        h("td", { "data-label": "Attempts", class: "num", text: fmt(job.attempts) }),
        h("td", { "data-label": "Message", class: "cell-detail", text: job.message ?? job.last_error ?? "" }),
      ),
    ),
  );
}

/** A batch's callback job as its status and a link; null when the batch has none. */
function callback(id, status) {
  if (!id) return null;
  return h("span", {}, pill(status ?? "awaiting"), " ", h("a", { href: `#/jobs/${id}`, text: `Job …${shortId(id)}` }));
}

async function jobAction(kind) {
  const job = currentJob;
  if (!job) return;
  const status = $("#job-action-status");
  const button = kind === "retry" ? $("#job-retry") : $("#job-cancel");
  button.disabled = true;
  status.classList.remove("error");
  status.textContent = kind === "retry" ? "Retrying…" : "Cancelling…";
  try {
    const after = await api(`/api/jobs/${job.id}/${kind}`, { method: "POST" });
    status.textContent =
      kind === "retry"
        ? `Retried: the job is ${after.status} again.`
        : after.status === "cancelled"
          ? "Cancelled."
          : "Cancel requested: the worker stops the job at its next step.";
  } catch (e) {
    status.classList.add("error");
    status.textContent = e instanceof ApiError ? e.describe() : String(e);
  } finally {
    button.disabled = false;
  }
  loadJob().catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Failures

const groupEls = new Map(); // "status|error" → <article>
let failuresSeq = 0;

async function loadFailures() {
  const seq = ++failuresSeq;
  const data = await api("/api/failures");
  if (seq !== failuresSeq) return;
  const box = $("#failure-groups");
  const seen = new Set();
  data.groups.forEach((group, index) => {
    const key = `${group.status}|${group.error}`;
    seen.add(key);
    let el = groupEls.get(key);
    if (!el) {
      el = newGroup(group);
      groupEls.set(key, el);
    }
    updateGroup(el, group);
    if (box.children[index] !== el) box.insertBefore(el, box.children[index] ?? null);
  });
  for (const [key, el] of groupEls) {
    if (!seen.has(key)) {
      el.remove();
      groupEls.delete(key);
    }
  }
  $("#failures-empty").hidden = data.groups.length > 0;
  $("#failures-summary").textContent = data.total
    ? `${fmt(data.total)} failed or dead job${data.total === 1 ? "" : "s"} in ${data.groups.length} group${data.groups.length === 1 ? "" : "s"}, by error (numbers shown as #, quoted values as "…").`
    : "Failed and dead jobs, grouped by error.";
}

function newGroup(group) {
  const el = h(
    "article",
    { class: `group ${group.status}` },
    h("div", { class: "group-head" }, pill(group.status), h("h3", { class: "group-error", text: group.error }), h("span", { class: "group-count" })),
    h("p", { class: "group-example" }),
    h(
      "div",
      { class: "group-actions" },
      h("button", { type: "button", class: "button primary small group-retry", onclick: () => retryMany(el._ids, group.error) }),
      h("details", {}, h("summary", { text: "Jobs" }), h("ul", { class: "group-jobs" })),
    ),
  );
  return el;
}

function updateGroup(el, group) {
  el._ids = group.job_ids;
  el.querySelector(".group-count").textContent = `${fmt(group.count)} job${group.count === 1 ? "" : "s"}`;
  el.querySelector(".group-example").textContent = `Latest: ${group.example}`;
  const button = el.querySelector(".group-retry");
  button.textContent = group.count > group.job_ids.length ? `Retry newest ${group.job_ids.length}` : group.count === 1 ? "Retry" : `Retry all ${group.count}`;
  button.setAttribute("aria-label", `${button.textContent}: ${group.error}`);
  el.querySelector("summary").textContent = `Show ${group.job_ids.length === group.count ? "" : `newest ${group.job_ids.length} of `}jobs`;
  render(el.querySelector(".group-jobs"), group.job_ids.join(","), () =>
    group.job_ids.map((id) =>
      h(
        "li",
        {},
        h("a", { href: `#/jobs/${id}`, class: "mono", text: id }),
        h("button", { type: "button", class: "button small", "aria-label": `Retry job ${id}`, onclick: () => retryMany([id], `job …${shortId(id)}`), text: "Retry" }),
      ),
    ),
  );
}

async function retryMany(ids, what) {
  const status = $("#failures-status");
  status.classList.remove("error");
  status.textContent = `Retrying ${ids.length} job${ids.length === 1 ? "" : "s"}…`;
  try {
    const result = await api("/api/jobs/retry", { method: "POST", json: { ids } });
    const refused = result.results.filter((r) => !r.retried);
    status.textContent =
      `Retried ${result.retried} of ${ids.length} (${what}).` +
      (refused.length ? ` Not retried: ${refused.map((r) => `…${shortId(r.id)} (${r.message})`).join("; ")}` : "");
  } catch (e) {
    status.classList.add("error");
    status.textContent = e instanceof ApiError ? e.describe() : String(e);
  }
  loadFailures().catch(() => {});
}

async function redrive() {
  const status = $("#failures-status");
  const button = $("#redrive");
  button.disabled = true;
  status.classList.remove("error");
  status.textContent = "Re-driving the dead-letter queue…";
  try {
    const result = await api("/api/dead-letters/redrive", { method: "POST" });
    status.textContent = `Moved ${result.moved} message${result.moved === 1 ? "" : "s"} back to the work queue${result.left ? `; ${result.left} left (not job messages)` : ""}.`;
  } catch (e) {
    status.classList.add("error");
    status.textContent = e instanceof ApiError ? e.describe() : String(e);
  } finally {
    button.disabled = false;
  }
  loadFailures().catch(() => {});
  loadStats().catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Polling and start-up

let ticks = 0;
async function tick() {
  if (!document.hidden) {
    const tasks = [refreshView()];
    if (ticks % 2 === 0) tasks.push(loadStats());
    ticks += 1;
    const results = await Promise.allSettled(tasks);
    const failed = results.find((r) => r.status === "rejected");
    setConnection(!failed);
    if (failed && !(failed.reason instanceof ApiError)) console.error(failed.reason);
  }
  setTimeout(tick, POLL_MS);
}

function start() {
  setUpUpload();
  loadProfiles().catch(() => {}); // the picker keeps `people`, the default the api applies too
  setUpJobs();
  $("#job-retry").addEventListener("click", () => jobAction("retry"));
  $("#job-cancel").addEventListener("click", () => jobAction("cancel"));
  $("#redrive").addEventListener("click", redrive);
  window.addEventListener("hashchange", () => route(false));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshView()?.catch(() => {});
  });
  let resizeTimer;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => state.lastStats && renderChart(state.lastStats.throughput.per_minute), 150);
  });
  route(true);
  tick();
}

start();
