// Roomcast's jobs panel: start exports and demo jobs, follow their progress over Socket.IO /jobs.
import { $, connect, request as ask, root } from "./socket.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

const jobs = new Map(); // id -> job, as the server last described it
const socket = connect("/jobs");
const request = (event, payload) => ask(socket, event, payload);

function describe(job) {
  if (job.kind === "export") return `Export of ${job.params.room} (${job.params.format})`;
  if (job.kind === "sleep") return `Demo job: ${job.params.seconds} s in ${job.params.steps} steps`;
  return `${job.kind} job`;
}

function update(job) {
  const known = jobs.get(job.id);
  // Events and acks may cross (a short job's done can beat its start ack): progress
  // never goes back, and an ended job stays ended while the rest of the ack is kept.
  const ended = known && FINISHED.has(known.status) && !FINISHED.has(job.status);
  const merged = ended ? { ...job, ...known } : { ...known, ...job };
  jobs.set(job.id, { ...merged, progress: Math.max(known?.progress ?? 0, job.progress ?? 0) });
  render();
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
  const unfinished = [...jobs.values()].filter((job) => !FINISHED.has(job.status));
  for (const job of unfinished) {
    request("watch", { job_id: job.id }).then((ack) => update(ack.job), () => {});
  }
});

socket.on("progress", ({ job_id, progress }) => {
  const job = jobs.get(job_id);
  if (job) update({ ...job, status: job.status === "queued" ? "running" : job.status, progress });
});

socket.on("done", ({ job_id, status, result, error }) => {
  const job = jobs.get(job_id) ?? { id: job_id, kind: "job", params: {} };
  update({ ...job, status, result, error, progress: status === "succeeded" ? 100 : job.progress });
});

$("#export-csv").addEventListener("click", () => start("export", (room) => ({ room, format: "csv" })));
$("#export-json").addEventListener("click", () => start("export", (room) => ({ room, format: "json" })));
$("#demo-job").addEventListener("click", () => start("sleep", () => ({ seconds: 10, steps: 20 })));
