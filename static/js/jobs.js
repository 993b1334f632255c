// Roomcast's jobs panel: start exports and demo jobs, follow their progress over Socket.IO /jobs.
import { announce } from "./announcer.js";
import { $, connect, request as ask, root } from "./socket.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const SHOWN = 20; // the newest jobs listed
const DEMO_STEPS_PER_SECOND = 2;

const jobs = new Map(); // id -> job, at the newest version the page has
const socket = connect("/jobs");
const request = (event, payload) => ask(socket, event, payload);

function describe(job) {
  if (job.kind === "export") return `Export of ${job.params.room} (${job.params.format})`;
  if (job.kind === "sleep") return `Demo job: ${job.params.seconds} s in ${job.params.steps} steps`;
  return `${job.kind} job`;
}

// A whole job (from an ack or the HTTP API) is the truth at its version. Acks and events
// cross (a short job's done can beat its start ack), so an older version never wins.
function update(job) {
  const known = jobs.get(job.id);
  if (known && job.version <= known.version) return;
  jobs.set(job.id, job);
  if (known) told(known, job);
  render();
}

// A screen reader hears a job start and end, not every step of its progress bar.
function told(before, after) {
  if (before.status !== after.status && after.status !== "queued") announce(`${describe(after)}: ${after.status}`);
}

// An event is one change: applied only on top of the version just before it. A jump means
// we missed a change: the job is read again, and its ack is the truth.
function applyEvent(event, change) {
  const known = jobs.get(event.job_id);
  if (known && event.version <= known.version) return; // a duplicate, or older than what we have
  if (!known || event.version > known.version + 1) return watch(event.job_id);
  const job = { ...known, ...change(known), version: event.version };
  jobs.set(known.id, job);
  told(known, job);
  render();
}

function watch(id) {
  return request("watch", { job_id: id }).then((ack) => update(ack.job), () => {});
}

function watchUnfinished() {
  for (const job of jobs.values()) if (!FINISHED.has(job.status)) watch(job.id);
}

function jobItem(job) {
  const item = document.createElement("li");
  item.className = "job";
  item.dataset.id = job.id;
  const title = document.createElement("span");
  title.className = "job-title";
  const bar = document.createElement("progress");
  bar.max = 100;
  const status = document.createElement("span");
  status.className = "job-status";
  const actions = document.createElement("span");
  actions.className = "job-links";
  item.append(title, bar, status, actions);
  return item;
}

// Fill a job's item in place: progress moves without rebuilding it (a focused Cancel stays focused).
function fillItem(item, job) {
  item.dataset.status = job.status;
  item.querySelector(".job-title").textContent = describe(job);
  const bar = item.querySelector("progress");
  bar.value = job.progress;
  bar.setAttribute("aria-label", `${describe(job)}: ${job.progress} %`);
  item.querySelector(".job-status").textContent = job.error
    ? `${job.status}: ${job.error}`
    : `${job.status} · ${job.progress} %`;
  const actions = item.querySelector(".job-links");
  const key = `${job.status}|${job.result?.url ?? ""}`;
  if (actions.dataset.key === key) return;
  actions.dataset.key = key;
  actions.replaceChildren();
  if (job.status === "succeeded" && job.result?.url) {
    const link = document.createElement("a");
    link.href = job.result.url;
    link.textContent = `Download (${job.result.rows} messages)`;
    actions.append(link);
  }
  if (!FINISHED.has(job.status)) {
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "link";
    cancel.textContent = "Cancel";
    cancel.setAttribute("aria-label", `Cancel ${describe(job)}`);
    cancel.addEventListener("click", () => request("cancel", { job_id: job.id }).then((ack) => update(ack.job), () => {}));
    actions.append(cancel);
  }
}

const items = new Map(); // job id -> its list item

function render() {
  const newestFirst = [...jobs.values()].sort((a, b) => b.id - a.id).slice(0, SHOWN);
  for (const job of newestFirst) {
    if (!items.has(job.id)) items.set(job.id, jobItem(job));
    fillItem(items.get(job.id), job);
  }
  const list = $("#jobs");
  const wanted = newestFirst.map((job) => items.get(job.id));
  if (wanted.length !== list.children.length || wanted.some((item, index) => list.children[index] !== item)) {
    list.replaceChildren(...wanted);
  }
  for (const id of items.keys()) if (!newestFirst.some((job) => job.id === id)) items.delete(id);
  $("#no-jobs").hidden = jobs.size > 0;
}

async function start(kind, params) {
  const room = root.dataset.room;
  if (!room) return;
  const ack = await request("start", { kind, params: params(room), room }).catch(() => null);
  if (ack) update(ack.job);
}

// On every (re)connect: load my recent jobs and follow the unfinished ones again.
socket.on("connect", async () => {
  const response = await fetch("/api/jobs");
  if (!response.ok) return;
  for (const job of await response.json()) update(job);
  watchUnfinished();
});

// The server may have lost events (its Redis listener or publishes had a gap): read again.
socket.on("resync", watchUnfinished);

// "retrying": the job's worker vanished and it is queued again; any other detail is a running job's.
socket.on("progress", (event) =>
  applyEvent(event, () => ({ status: event.detail === "retrying" ? "queued" : "running", progress: event.progress })),
);

socket.on("done", (event) =>
  applyEvent(event, (job) => ({
    status: event.status,
    result: event.result,
    error: event.error,
    progress: event.status === "succeeded" ? 100 : job.progress,
  })),
);

$("#export-csv").addEventListener("click", () => start("export", (room) => ({ room, format: "csv" })));
$("#export-json").addEventListener("click", () => start("export", (room) => ({ room, format: "json" })));
// The demo job's length is the reader's choice: two steps a second.
$("#demo-job").addEventListener("click", () => {
  const seconds = Number($("#demo-seconds").value) || 10;
  start("sleep", () => ({ seconds, steps: Math.min(1000, Math.max(1, seconds * DEMO_STEPS_PER_SECOND)) }));
});
