// The load generator: the official Socket.IO client (socket.io-client), WebSocket transport,
// connections spread over several 127.0.0.x source addresses. One scenario per run:
//
//   node loadgen.mjs <capacity|fanout|ack|jobs> --url http://127.0.0.1:8000 [options]
//
// It writes JSON lines on stdout: {"event": "step" | "window" | "ready" | "result", ...}.
// After a capacity "step" or a fanout "ready" line it waits for a line on stdin ("go", or
// "stop" to end a ramp early) while the orchestrator samples the server or runs the emitter. Every result carries the generator's own
// CPU use, so a saturated generator is reported, never mistaken for a slow server.
import readline from "node:readline";

import { io } from "socket.io-client";

const [scenario, ...rest] = process.argv.slice(2);
const options = {};
for (let i = 0; i < rest.length; i += 2) options[rest[i].replace(/^--/, "")] = rest[i + 1];
const url = options.url;
const token = options.token || null;
const sources = Array.from({ length: Number(options.sources || 8) }, (_, i) => `127.0.0.${i + 2}`);
const numbers = (text) => text.split(",").map(Number);

const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-millisecond
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
lines.on("line", (line) => waiting.shift()?.(line.trim()));
const goAhead = () => new Promise((resolve) => waiting.push(resolve));

function percentile(values, p) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(values) {
  return { count: values.length, p50: percentile(values, 50), p99: percentile(values, 99) };
}

// CPU seconds this process used since `since` (a process.cpuUsage() reading), per wall second.
function cpuSince(since, startedAt) {
  const used = process.cpuUsage(since);
  const seconds = (used.user + used.system) / 1e6;
  const wall = (now() - startedAt) / 1000;
  return { cpu_seconds: seconds, cpu_share: wall > 0 ? seconds / wall : 0 };
}

const clients = [];

// Open one connection; resolve with the socket and how long it took, or with an error.
function connectOne(namespace) {
  return new Promise((resolve) => {
    const started = now();
    const socket = io(url + namespace, {
      transports: ["websocket"],
      forceNew: true, // one Engine.IO connection per client, as separate browsers have
      reconnection: false,
      timeout: 10000, // a full server leaves connections hanging: count them failed soon
      auth: token ? { token } : undefined,
      localAddress: sources[clients.length % sources.length],
    });
    socket.index = clients.length; // its place in the order of connects, whatever order they finish in
    clients.push(socket);
    socket.once("connect", () => resolve({ socket, ms: now() - started }));
    socket.once("connect_error", (error) => resolve({ socket: null, error: error.message }));
  });
}

// Open `count` more connections, at most `parallel` at a time; return timings and failures.
async function connectMany(count, namespace, parallel = 200, onEach = null) {
  const timings = [];
  const errors = {};
  let next = 0;
  const started = now();
  async function lane() {
    while (next < count) {
      next++;
      const outcome = await connectOne(namespace);
      if (outcome.socket) {
        timings.push(outcome.ms);
        if (onEach) await onEach(outcome.socket);
      } else errors[outcome.error] = (errors[outcome.error] || 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
  const seconds = (now() - started) / 1000;
  const failed = Object.values(errors).reduce((a, b) => a + b, 0);
  return { timings, failed, errors, seconds };
}

const joinRoom = (room) => (socket) =>
  socket.timeout(30000).emitWithAck("join", { room }).then((ack) => {
    if (!ack.ok) throw new Error(`join refused: ${JSON.stringify(ack)}`);
  });

// capacity: ramp idle connections through --steps; after each step, report and wait.
async function capacity() {
  const cpu = process.cpuUsage();
  const startedAt = now();
  let open = 0;
  for (const target of numbers(options.steps)) {
    const batch = await connectMany(target - open, "/bench");
    open += batch.timings.length;
    say({
      event: "step",
      target,
      connected: open,
      failed: batch.failed,
      errors: batch.errors,
      connect_rate: batch.timings.length / batch.seconds,
      connect_ms: summary(batch.timings),
      timings: batch.timings.map((ms) => Math.round(ms * 10) / 10), // to merge several generators' figures
    });
    if ((await goAhead()) === "stop") break; // the server is full: larger steps mean nothing more
  }
  say({ event: "result", connected: open, generator: cpuSince(cpu, startedAt) });
}

// fanout: connect the largest of --sizes; client i joins room "<prefix>fan<size>" of every size > i
// (--prefix, none by default: bench/ceiling.py gives each server a room of its own).
// Then, size by size, on each go-ahead the orchestrator has --count ticks emitted to that
// room through Redis; measure when each tick reached its last member.
async function fanout() {
  const sizes = numbers(options.sizes);
  const count = Number(options.count);
  let current = null; // what the room being measured has received so far
  const joinedRooms = Object.fromEntries(sizes.map((size) => [size, 0]));
  const listen = async (socket) => {
    socket.on("tick", ({ seq, sent }) => {
      const at = now();
      const state = current;
      if (!state) return;
      state.lastArrival[seq] = Math.max(state.lastArrival[seq], at);
      state.sentAt[seq] = sent;
      state.arrivals[seq]++;
      if (state.delivered % 10 === 0) state.deliveryMs.push(at - sent); // a 10 % sample keeps memory flat
      if (++state.delivered === state.expected) state.finish();
    });
    for (const size of sizes.filter((size) => socket.index < size)) {
      await joinRoom(`${options.prefix || ""}fan${size}`)(socket);
      joinedRooms[size]++;
    }
  };
  const joined = await connectMany(Math.max(...sizes), "/bench", 200, listen);
  say({ event: "ready", members: joined.timings.length, failed: joined.failed });
  for (const size of sizes) {
    const members = joinedRooms[size];
    let finish;
    const done = new Promise((resolve) => (finish = resolve));
    const state = {
      expected: members * count,
      delivered: 0,
      lastArrival: new Float64Array(count),
      sentAt: new Float64Array(count),
      arrivals: new Uint32Array(count),
      deliveryMs: [],
      finish,
    };
    await goAhead();
    const cpu = process.cpuUsage();
    const startedAt = now();
    current = state;
    say({ event: "armed", size }); // the orchestrator starts the emitter only now
    await Promise.race([done, sleep(Number(options.timeout || 60) * 1000)]);
    current = null;
    const seen = [...state.sentAt.keys()].filter((seq) => state.arrivals[seq] > 0);
    const firstSent = Math.min(...seen.map((seq) => state.sentAt[seq]));
    const lastSeen = Math.max(...seen.map((seq) => state.lastArrival[seq]));
    say({
      event: "result",
      size,
      members,
      expected: state.expected,
      delivered: state.delivered,
      deliveries_per_second: state.delivered / ((lastSeen - firstSent) / 1000),
      to_last_member_ms: summary(seen.map((seq) => state.lastArrival[seq] - state.sentAt[seq])),
      delivery_ms: summary(state.deliveryMs),
      generator: cpuSince(cpu, startedAt),
    });
  }
}

// ack: K clients each emit `echo` with an ack once a second, K raised through --steps
// until p99 passes --limit ms; each step lasts --seconds.
async function ack() {
  const limit = Number(options.limit || 50);
  const seconds = Number(options.seconds || 10);
  const steps = [];
  const cpu = process.cpuUsage();
  const startedAt = now();
  for (const target of numbers(options.steps)) {
    const grown = await connectMany(target - clients.length, "/bench");
    if (grown.failed) {
      steps.push({ clients: clients.length, failed: grown.failed, errors: grown.errors });
      break;
    }
    say({ event: "window", clients: clients.length }); // the orchestrator reads the server's CPU now
    const stepCpu = process.cpuUsage();
    const stepStartedAt = now();
    const rtts = [];
    let failures = 0;
    const until = now() + seconds * 1000;
    const loops = clients.map(async (socket) => {
      await sleep(Math.random() * 1000); // spread the clients over the second
      while (now() < until) {
        const sent = now();
        try {
          const answer = await socket.timeout(5000).emitWithAck("echo", { sent });
          if (answer.ok) rtts.push(now() - sent);
          else failures++;
        } catch {
          failures++;
        }
        await sleep(Math.max(0, 1000 - (now() - sent)));
      }
    });
    await Promise.all(loops);
    const step = {
      clients: clients.length,
      acks_per_second: rtts.length / seconds,
      failures,
      rtt_ms: summary(rtts),
      generator: cpuSince(stepCpu, stepStartedAt), // near 1.0: the generator, not the server, set the limit
    };
    steps.push(step);
    say({ event: "step", ...step });
    if (step.rtt_ms.p99 === null || step.rtt_ms.p99 > limit || failures) break;
  }
  const within = steps.filter((step) => step.rtt_ms && step.rtt_ms.p99 !== null && step.rtt_ms.p99 <= limit && !step.failures);
  say({ event: "result", limit_ms: limit, steps, sustained: within.at(-1) ?? null, generator: cpuSince(cpu, startedAt) });
}

// Parse the `at` of a progress event: ISO 8601 UTC with microseconds.
function parseAt(at) {
  return Date.parse(at.slice(0, 19) + "Z") + Number("0" + at.slice(19, -1)) * 1000;
}

// jobs: (1) --latency-jobs sleep jobs one after another, each with many steps, on an idle
// system: the delay from a worker's emit to this client; (2) --burst short jobs started
// at once over several connections: jobs per second until the last is done.
async function jobs() {
  const cpu = process.cpuUsage();
  const startedAt = now();
  const { socket: watcher } = await connectOne("/jobs");
  const delays = [];
  for (let n = 0; n < Number(options["latency-jobs"] || 3); n++) {
    const finished = new Promise((resolve) => {
      const onProgress = (event) => {
        if (event.detail !== "running") delays.push(now() - parseAt(event.at));
      };
      watcher.on("progress", onProgress);
      watcher.once("done", () => {
        watcher.off("progress", onProgress);
        resolve();
      });
    });
    const answer = await watcher.timeout(10000).emitWithAck("start", { kind: "sleep", params: { seconds: 1, steps: 50 } });
    if (!answer.ok) throw new Error(`start refused: ${JSON.stringify(answer)}`);
    await finished;
  }
  // Short jobs, started over enough connections to stay within the per-connection rate limit.
  const burst = Number(options.burst || 100);
  const starters = await connectMany(Math.ceil(burst / 10), "/jobs");
  const sockets = clients.filter((socket) => socket.connected && socket !== watcher);
  const begun = now();
  let doneCount = 0;
  const allDone = new Promise((resolve) => {
    for (const socket of sockets) socket.on("done", () => ++doneCount === burst && resolve());
  });
  await Promise.all(
    Array.from({ length: burst }, (_, n) =>
      sockets[n % sockets.length].timeout(30000).emitWithAck("start", { kind: "sleep", params: { seconds: 0, steps: 1 } }),
    ),
  );
  await Promise.race([allDone, sleep(120000)]);
  say({
    event: "result",
    emit_to_client_ms: summary(delays),
    burst: { jobs: burst, done: doneCount, failed_connections: starters.failed, jobs_per_second: doneCount / ((now() - begun) / 1000) },
    generator: cpuSince(cpu, startedAt),
  });
}

try {
  await { capacity, fanout, ack, jobs }[scenario]();
} catch (error) {
  say({ event: "error", message: String(error?.stack || error) });
  process.exitCode = 1;
} finally {
  for (const socket of clients) socket.disconnect();
  lines.close();
  setTimeout(() => process.exit(), 2000).unref();
}
