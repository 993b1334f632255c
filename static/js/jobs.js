// Roomcast's jobs panel: start exports and demo jobs, follow their progress over Socket.IO /jobs.
import { $, connect, request as ask, root } from "./socket.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

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
  render();
}

// An event is one change: applied only on top of the version just before it. A jump means
// we missed a change: the job is read again, and its ack is the truth.
function applyEvent(event, change) {
  const known = jobs.get(event.job_id);
  if (known && event.version <= known.version) return; // a duplicate, or older than what we have
  if (!known || event.version > known.version + 1) return watch(event.job_id);
  jobs.set(known.id, { ...known, ...change(known), version: event.version });
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
  item.dataset.status = job.status;
  const title = document.createElement("span");
  title.textContent = describe(job);
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = job.progress;
  bar.setAttribute("aria-label", `${describe(job)}: ${job.progress} %`);
  const status = document.createElement("span");
  status.className = "job-status";
  status.textContent = job.error ? `${job.status}: ${job.error}` : `${job.status} · ${job.progress} %`;
  item.append(title, bar, status);
  if (job.status === "succeeded" && job.result?.url) {
    const link = document.createElement("a");
    link.href = job.result.url;
    link.textContent = `Download (${job.result.rows} messages)`;
    item.append(link);
  }
  if (!FINISHED.has(job.status)) {
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "link";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", () => request("cancel", { job_id: job.id }).then((ack) => update(ack.job), () => {}));
    item.append(cancel);
  }
  return item;
}

function render() {
  const newestFirst = [...jobs.values()].sort((a, b) => b.id - a.id).slice(0, 10);
  $("#jobs").replaceChildren(...newestFirst.map(jobItem));
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
$("#demo-job").addEventListener("click", () => start("sleep", () => ({ seconds: 10, steps: 20 })));
