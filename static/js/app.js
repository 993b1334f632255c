// Roomcast's page: rooms, messages, presence and typing over Socket.IO /chat.
import { $, call, connect, request as ask, root, showError } from "./socket.js";

const me = root.dataset.username;
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

// Everything the page knows, per room name.
const rooms = new Map(); // name -> the state roomState() makes
let current = null;
let pendingSend = null; // {room, text, client_id}: retried with the same client_id, never stored twice
let connections = 0; // counts connects: a retry loop of an earlier connection stops
let link = "connecting"; // connecting, connected or reconnecting
let catchingUp = 0; // joins and hole fills under way

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;
// Worth asking again later; forbidden, not_found and invalid would only fail again.
const RETRYABLE = new Set(["unavailable", "internal", "timeout", "rate_limited"]);
const HISTORY_PAGE = 100;

const chat = connect("/chat");
const request = (event, payload) => ask(chat, event, payload);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const LINK_LABELS = {
  connecting: "connecting…",
  connected: "connected",
  "catching-up": "catching up…", // connected, with a join or a hole fill under way
  reconnecting: "reconnecting…",
};

function setConnection(state) {
  link = state;
  const shown = state === "connected" && catchingUp ? "catching-up" : state;
  $("#connection").textContent = LINK_LABELS[shown];
  $("#connection").dataset.state = shown;
}

// Run a join or a fill with the indicator saying "catching up…" meanwhile.
async function catchUp(work) {
  catchingUp += 1;
  setConnection(link);
  try {
    return await work();
  } finally {
    catchingUp -= 1;
    setConnection(link);
  }
}

function roomState(name) {
  if (!rooms.has(name)) {
    rooms.set(name, {
      info: { name },
      messages: new Map(), // seq -> message, as shown
      lastSeq: null, // the highest seq shown, every one before it shown too (from the first join on); null before
      knownSeq: 0, // the room's newest seq as the server last told (acks' last_seq)
      early: new Map(), // seq -> message that came after a hole: shown once the hole is filled
      filling: false,
      unread: 0,
      online: new Set(),
      typing: new Map(),
    });
  }
  return rooms.get(name);
}

// The gap rule: messages (live, or from any ack) are shown in seq order, each once, never after a hole.
function receive(name, messages) {
  const state = roomState(name);
  for (const message of messages) {
    if (state.lastSeq === null || message.seq > state.lastSeq) state.early.set(message.seq, message);
  }
  if (state.lastSeq === null) return; // not joined yet: the join's ack tells where the room starts
  const shown = [];
  for (let next; (next = state.early.get(state.lastSeq + 1)); ) {
    state.messages.set(next.seq, next);
    state.lastSeq = next.seq;
    shown.push(next);
  }
  for (const seq of state.early.keys()) if (seq <= state.lastSeq) state.early.delete(seq);
  if (shown.length && name === current) renderMessages(shown);
  else if (shown.length) {
    state.unread += shown.length; // only what is shown counts, never a duplicate or a held-back message
    renderRooms();
  }
  if (state.early.size) fill(name);
}

// Whether the room misses messages the server has: a hole before held-back ones, or a capped catch-up.
const behind = (state) => state.lastSeq !== null && (state.early.size > 0 || state.lastSeq < state.knownSeq);

// Fetch what follows lastSeq until nothing is missing; one fill per room at a time, retried while connected.
async function fill(name) {
  const state = roomState(name);
  if (state.filling) return; // the running fill loops on until the room is no longer behind
  state.filling = true;
  try {
    await catchUp(async () => {
      let delay = RETRY_FIRST_MS;
      while (chat.connected && behind(state)) {
        let ack;
        try {
          ack = await call(chat, "history", { room: name, since_seq: state.lastSeq, limit: HISTORY_PAGE });
        } catch (error) {
          if (!RETRYABLE.has(error.code)) return showError(error.message);
          await sleep(delay);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
          continue;
        }
        delay = RETRY_FIRST_MS;
        state.knownSeq = Math.max(state.knownSeq, ack.last_seq ?? 0);
        receive(name, ack.messages);
        if (!ack.messages.length) return; // the server has nothing after lastSeq: nothing to wait for
      }
    });
  } finally {
    state.filling = false;
  }
}

function messageItem(message) {
  const item = document.createElement("li");
  item.dataset.id = message.id;
  item.dataset.seq = message.seq;
  const time = document.createElement("time");
  time.dateTime = message.created_at;
  time.textContent = new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  time.title = new Date(message.created_at).toLocaleString();
  const author = document.createElement("b");
  author.textContent = message.author;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text; // text, never HTML
  item.append(time, " ", author, " ", text);
  return item;
}

function renderMessages(fresh) {
  const list = $("#messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const ordered = [...roomState(current).messages.values()].sort((a, b) => a.seq - b.seq);
  if (fresh === undefined || fresh.some((message) => message.seq < (Number(list.lastElementChild?.dataset.seq) || 0))) {
    list.replaceChildren(...ordered.map(messageItem)); // a full redraw keeps seq order
  } else {
    list.append(...fresh.map(messageItem));
  }
  // Follow new messages only when the reader is already at the bottom.
  if (fresh === undefined || nearBottom) list.scrollTop = list.scrollHeight;
}

function renderRooms() {
  $("#rooms").replaceChildren(
    ...[...rooms.values()]
      .sort((a, b) => a.info.name.localeCompare(b.info.name))
      .map((state) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = (state.info.private ? "🔒 " : "# ") + state.info.name;
        if (state.unread) {
          const badge = document.createElement("span");
          badge.className = "unread";
          badge.textContent = state.unread;
          button.append(" ", badge);
        }
        button.setAttribute("aria-current", state.info.name === current ? "true" : "false");
        button.addEventListener("click", () => showRoom(state.info.name));
        item.append(button);
        return item;
      }),
  );
}

function renderPeople() {
  const state = roomState(current);
  $("#online").replaceChildren(
    ...[...state.online].sort().map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    }),
  );
  const typing = [...state.typing.keys()].filter((name) => name !== me);
  $("#typing").textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
}

function showRoom(name) {
  current = name;
  root.dataset.room = name; // jobs.js starts exports of this room
  roomState(name).unread = 0;
  $("#room-title").textContent = name;
  document.body.classList.remove("show-rooms");
  renderRooms();
  renderMessages();
  renderPeople();
  showError("");
  $("#text").focus();
}

// Join a room, catching up after lastSeq. A failed join leaves us out of the room: try again,
// 0.5 s doubling to 5 s, while this connection lasts (the next connect joins anew).
async function join(name) {
  const connection = connections;
  await catchUp(async () => {
    let delay = RETRY_FIRST_MS;
    while (chat.connected && connection === connections) {
      const { lastSeq } = roomState(name);
      const payload = lastSeq === null ? { room: name } : { room: name, since_seq: lastSeq };
      try {
        return joined(name, await call(chat, "join", payload));
      } catch (error) {
        if (!RETRYABLE.has(error.code)) return showError(error.message);
        await sleep(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  });
}

function joined(name, ack) {
  const state = roomState(name);
  state.online = new Set(ack.online);
  state.knownSeq = Math.max(state.knownSeq, ack.last_seq ?? 0);
  // A first join shows the room from its latest messages on (its newest seq when it is empty).
  if (state.lastSeq === null) state.lastSeq = ack.messages.length ? ack.messages[0].seq - 1 : state.knownSeq;
  receive(name, ack.messages);
  // A server with JOIN_CATCHUP_LIMIT caps the catch-up (`more`, and last_seq beyond what came): page on.
  if (behind(state)) fill(name);
  if (name === current) renderPeople();
}

async function loadRooms() {
  const response = await fetch("/api/rooms");
  for (const info of await response.json()) roomState(info.name).info = info;
  renderRooms();
}

async function joinAll() {
  await loadRooms();
  await Promise.allSettled([...rooms.keys()].map(join));
  if (current === null) showRoom(rooms.has("general") ? "general" : [...rooms.keys()][0]);
}

chat.on("connect", () => {
  connections += 1;
  setConnection("connected");
  showError("");
  joinAll(); // on every (re)connect: join again with since_seq = the last seq shown
});

// The server may have lost live events (its Redis listener or publishes had a gap): catch up.
chat.on("resync", () => {
  for (const [name, state] of rooms) if (state.lastSeq !== null) join(name);
});
chat.on("disconnect", (reason) => {
  setConnection("reconnecting");
  // The client does not reconnect by itself after the server's own disconnect (a
  // login that ended, elsewhere): connect again, and be sent to /login if refused.
  if (reason === "io server disconnect") setTimeout(() => chat.connect(), 500);
});
chat.io.on("reconnect_attempt", () => setConnection("reconnecting"));
chat.on("connect_error", (error) => {
  setConnection("reconnecting");
  if (error.message === "unauthorized") window.location.assign("/login");
});

chat.on("message", (message) => receive(message.room, [message]));

chat.on("presence", ({ room, user, status }) => {
  const state = roomState(room);
  if (status === "joined" || status === "online") state.online.add(user);
  else state.online.delete(user);
  if (room === current) renderPeople();
});

chat.on("typing", ({ room, user, typing }) => {
  const state = roomState(room);
  clearTimeout(state.typing.get(user));
  if (typing) {
    // Forget a typist who went quiet without saying so.
    state.typing.set(user, setTimeout(() => { state.typing.delete(user); if (room === current) renderPeople(); }, 6000));
  } else state.typing.delete(user);
  if (room === current) renderPeople();
});

// Typing: say so at most every 2 s while keys are pressed, and stop after 3 s of quiet.
let typingSince = 0;
let typingTimer = null;
$("#text").addEventListener("input", () => {
  if (!current || !chat.connected) return;
  const now = Date.now();
  if (now - typingSince > 2000) {
    typingSince = now;
    chat.emit("typing", { room: current, typing: true }, () => {});
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 3000);
});

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSince && current && chat.connected) chat.emit("typing", { room: current, typing: false }, () => {});
  typingSince = 0;
}

$("#text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("#composer").requestSubmit();
  }
});

$("#composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#text");
  const text = input.value.trim();
  if (!text || !current) return;
  // A retry of the same text keeps its client_id, so the server stores it once.
  if (!pendingSend || pendingSend.text !== text || pendingSend.room !== current) {
    pendingSend = { room: current, text, client_id: crypto.randomUUID() };
  }
  const sending = pendingSend;
  stopTyping();
  input.value = ""; // the next message can be typed while this one is on its way
  const ack = await request("send", sending).catch(() => null);
  if (!ack) {
    if (!input.value) input.value = sending.text; // give it back, to retry
    return;
  }
  if (pendingSend === sending) pendingSend = null;
  showError("");
  receive(ack.message.room, [ack.message]);
});

$("#older").addEventListener("click", async () => {
  const name = current;
  const state = roomState(name);
  const oldest = Math.min(...[...state.messages.values()].map((message) => message.id));
  const ack = await request("history", Number.isFinite(oldest) ? { room: name, before: oldest } : { room: name });
  // Older messages go before what is shown, outside the gap rule; later ones are the rule's.
  for (const message of ack.messages) {
    if (message.seq <= state.lastSeq) state.messages.set(message.seq, message);
  }
  if (name === current) renderMessages();
});

$("#new-room").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const members = form.members.value.split(",").map((name) => name.trim()).filter(Boolean);
  const response = await fetch("/api/rooms", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
    body: JSON.stringify({ name: form.name.value.trim(), private: form.private.checked, members }),
  });
  const body = await response.json();
  if (!response.ok) return showError(body.error.message);
  form.reset();
  roomState(body.name).info = body;
  await join(body.name);
  showRoom(body.name);
});

$("#toggle-rooms").addEventListener("click", () => document.body.classList.toggle("show-rooms"));
setConnection("connecting");
