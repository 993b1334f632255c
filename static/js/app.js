// Roomcast's page: rooms, messages, presence and typing over Socket.IO /chat.
import { $, connect, request as ask, root, showError } from "./socket.js";

const me = root.dataset.username;
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

// Everything the page knows, per room name.
const rooms = new Map(); // name -> {info, messages: Map(id -> message), lastId, unread, online: Set, typing: Map}
let current = null;
let pendingSend = null; // {room, text, client_id}: retried with the same client_id, never stored twice

const chat = connect("/chat");
const request = (event, payload) => ask(chat, event, payload);

function setConnection(state) {
  const label = { connected: "connected", reconnecting: "reconnecting…", connecting: "connecting…" }[state];
  $("#connection").textContent = label;
  $("#connection").dataset.state = state;
}

function roomState(name) {
  if (!rooms.has(name)) {
    rooms.set(name, { info: { name }, messages: new Map(), lastId: null, unread: 0, online: new Set(), typing: new Map() });
  }
  return rooms.get(name);
}

function addMessages(name, messages) {
  const state = roomState(name);
  const fresh = messages.filter((message) => !state.messages.has(message.id));
  for (const message of fresh) {
    state.messages.set(message.id, message);
    state.lastId = Math.max(state.lastId ?? 0, message.id);
  }
  if (name === current) renderMessages(fresh);
  else if (fresh.length) {
    state.unread += fresh.length;
    renderRooms();
  }
}

function messageItem(message) {
  const item = document.createElement("li");
  item.dataset.id = message.id;
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
  const ordered = [...roomState(current).messages.values()].sort((a, b) => a.id - b.id);
  if (fresh === undefined || fresh.some((message) => message.id < (Number(list.lastElementChild?.dataset.id) || 0))) {
    list.replaceChildren(...ordered.map(messageItem)); // a full redraw keeps id order
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

async function join(name) {
  const state = roomState(name);
  const since = state.lastId;
  const payload = since === null ? { room: name } : { room: name, since };
  const ack = await request("join", payload);
  state.online = new Set(ack.online);
  addMessages(name, ack.messages);
  // A server with JOIN_CATCHUP_LIMIT caps a join's catch-up; page on through the HTTP API
  // from our own cursor (live messages arriving meanwhile move state.lastId past the gap).
  let cursor = ack.messages.length ? ack.messages[ack.messages.length - 1].id : since;
  let more = ack.more;
  while (more) {
    const response = await fetch(`/api/rooms/${encodeURIComponent(name)}/messages?since=${cursor}&limit=1000`);
    const page = await response.json();
    if (!response.ok || !page.length) break;
    addMessages(name, page);
    cursor = page[page.length - 1].id;
    more = page.length === 1000;
  }
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
  setConnection("connected");
  showError("");
  joinAll(); // on every (re)connect: join again with since = the last id seen
});
chat.on("disconnect", () => setConnection("reconnecting"));
chat.io.on("reconnect_attempt", () => setConnection("reconnecting"));
chat.on("connect_error", (error) => {
  setConnection("reconnecting");
  if (error.message === "unauthorized") window.location.assign("/login");
});

chat.on("message", (message) => addMessages(message.room, [message]));

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
  addMessages(ack.message.room, [ack.message]);
});

$("#older").addEventListener("click", async () => {
  const state = roomState(current);
  const oldest = Math.min(...state.messages.keys());
  const ack = await request("history", Number.isFinite(oldest) ? { room: current, before: oldest } : { room: current });
  addMessages(current, ack.messages);
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
