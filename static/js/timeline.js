// The message list of the shown room: a bounded window of at most MAX_RENDERED items over the
// loaded messages, appended to as messages come, paged older (memory, then history before) and
// newer on scroll, trimmed at the other end; the "new messages" line and "jump to latest".
import { deleteMessage } from "./editing.js";
import { emit, on } from "./events.js";
import { messageItem } from "./message-item.js";
import { $ } from "./socket.js";
import { me, roomState } from "./store.js";
import { loadOlder } from "./sync.js";

const MAX_RENDERED = 300; // list items in the DOM at most, however long the room
const PAGE = 100; // messages added at a time when scrolling, and shown when a room opens
const NEAR_PX = 80;
const LOAD_AT_PX = 200; // this close to the top, older messages are loaded

const list = $("#messages");
const items = new Map(); // seq -> the list item rendered for it
let shown = null; // the room whose messages are rendered
let lo = null; // the lowest and highest seqs rendered (null: nothing rendered)
let hi = null;
let loadingOlder = false;

const state = () => roomState(shown);
const nearBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_PX;
const scrollToBottom = () => (list.scrollTop = list.scrollHeight);
const atLatest = () => shown !== null && hi === state().lastSeq && nearBottom();

function build(seq) {
  const { messages, newLineSeq } = state();
  const previous = lo !== null && seq - 1 >= lo ? messages.get(seq - 1) : undefined;
  const item = messageItem(messages.get(seq), previous, newLineSeq);
  items.set(seq, item);
  return item;
}

// Build a rendered item again (its text changed, or what is above it did), keeping focus in it.
function redecorate(seq) {
  const old = items.get(seq);
  if (!old || !state().messages.has(seq)) return;
  const focused = old.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const item = build(seq);
  old.replaceWith(item);
  if (focused) (item.querySelector(`[data-action="${focused}"]`) ?? list).focus();
}

function renderRange(from, to) {
  items.clear();
  lo = from;
  hi = to;
  const fresh = [];
  for (let seq = from; seq <= to; seq++) fresh.push(build(seq));
  list.replaceChildren(...fresh);
}

function clear() {
  items.clear();
  lo = hi = null;
  list.replaceChildren();
}

function removeItem(seq) {
  items.get(seq)?.remove();
  items.delete(seq);
}

// Drop items from the top down to the bound; the reader's view stays where it was.
function trimTop() {
  if (items.size <= MAX_RENDERED) return;
  const before = list.scrollHeight;
  while (items.size > MAX_RENDERED) removeItem(lo++);
  redecorate(lo); // the first item shows its day and author again
  list.scrollTop -= before - list.scrollHeight;
}

function trimBottom() {
  while (items.size > MAX_RENDERED) removeItem(hi--);
}

// Show the room's newest messages at the bottom (a room opened, "jump to latest", one's own message).
export function showLatest() {
  if (shown === null) return;
  const { floor, lastSeq } = state();
  if (floor === null) clear();
  else if (hi !== lastSeq || lastSeq - lo >= MAX_RENDERED) renderRange(Math.max(floor, lastSeq - PAGE + 1), lastSeq);
  scrollToBottom();
  settle();
}

// Where the "new messages" line goes when a room opens: after the read marker, if someone wrote since.
function lineAfterReadMarker(room) {
  const { readSeq, lastSeq, floor, messages } = room;
  if (floor === null || readSeq >= lastSeq) return null;
  for (let seq = Math.max(readSeq + 1, floor); seq <= lastSeq; seq++) {
    const message = messages.get(seq);
    if (message.author !== me && !message.deleted) return Math.max(readSeq + 1, floor);
  }
  return null;
}

function render(name) {
  shown = name;
  list.setAttribute("aria-label", `Messages in #${name}`);
  const room = state();
  room.newLineSeq = lineAfterReadMarker(room);
  const line = room.newLineSeq;
  if (room.floor === null) clear();
  else if (line !== null && line <= room.lastSeq - PAGE + 10) {
    // Many unread: open at the line, a little above it, rather than at the bottom.
    const from = Math.max(room.floor, line - 10);
    renderRange(from, Math.min(room.lastSeq, from + PAGE - 1));
    list.scrollTop = items.get(line).offsetTop; // the list is the items' offset parent
  } else {
    renderRange(Math.max(room.floor, room.lastSeq - PAGE + 1), room.lastSeq);
    const lineItem = items.get(line);
    scrollToBottom();
    if (lineItem && lineItem.offsetTop < list.scrollTop) list.scrollTop = lineItem.offsetTop;
  }
  settle();
}

// Messages newly shown in the shown room: appended when the window reaches the newest.
function appendShown(messages) {
  const room = state();
  // What comes while the tab is hidden is unread: the line goes above the first of it.
  const firstFromOthers = messages.find((message) => message.author !== me);
  if (document.visibilityState === "hidden" && firstFromOthers && !(room.newLineSeq > room.readSeq)) {
    const old = room.newLineSeq;
    room.newLineSeq = firstFromOthers.seq;
    if (old !== null) redecorate(old);
  }
  const follow = nearBottom();
  if (hi === null || (follow && messages.length >= MAX_RENDERED)) {
    if (follow || hi === null) renderRange(Math.max(room.floor, room.lastSeq - MAX_RENDERED + 1), room.lastSeq);
    if (follow) scrollToBottom();
    return settle();
  }
  if (hi !== messages[0].seq - 1 || (!follow && items.size + messages.length > MAX_RENDERED)) return settle();
  list.append(...messages.map((message) => build(message.seq)));
  hi = messages.at(-1).seq;
  if (follow) {
    trimTop();
    scrollToBottom();
  }
  settle();
}

// Older messages above the window: from memory, else a page of history before the oldest loaded.
async function showOlder() {
  if (loadingOlder || shown === null || lo === null) return;
  const name = shown;
  loadingOlder = true;
  try {
    if (lo <= state().floor && !(await loadOlder(name).catch(() => [])).length) return;
    if (name !== shown || lo <= state().floor) return;
    const to = lo - 1;
    const from = Math.max(state().floor, lo - PAGE);
    const before = list.scrollHeight;
    lo = from;
    const fresh = [];
    for (let seq = from; seq <= to; seq++) fresh.push(build(seq));
    list.prepend(...fresh);
    redecorate(to + 1); // it is no longer the first: it may join the group above
    list.scrollTop += list.scrollHeight - before; // the reader keeps looking at the same messages
    trimBottom();
  } finally {
    loadingOlder = false;
    settle();
  }
}

// Newer loaded messages below a window that no longer reaches the newest, as the reader scrolls down.
function showNewer() {
  const { lastSeq } = state();
  const to = Math.min(lastSeq, hi + PAGE);
  const fresh = [];
  for (let seq = hi + 1; seq <= to; seq++) fresh.push(build(seq));
  list.append(...fresh);
  hi = to;
  trimTop();
}

// After any change: the buttons that depend on where the reader is, and the read marker.
function settle() {
  const room = shown === null ? null : state();
  $("#older").hidden = !room || lo === null || lo <= 1;
  $("#jump-latest").hidden = !room || atLatest() || hi === null;
  if (room && atLatest()) emit("seen-latest", { room: shown });
}

let scrollQueued = false;
list.addEventListener("scroll", () => {
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    if (shown === null || lo === null) return;
    if (list.scrollTop < LOAD_AT_PX && lo > 1) showOlder();
    else if (nearBottom() && hi < state().lastSeq) showNewer();
    settle();
  });
});

$("#older").addEventListener("click", showOlder);
$("#jump-latest").addEventListener("click", () => {
  showLatest();
  $("#text").focus();
});

// Edit and Delete on one's own messages; Delete asks once more, in place.
list.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  const item = button?.closest("li.message");
  if (!item) return;
  const seq = Number(item.dataset.seq);
  const message = state().messages.get(seq);
  const action = button.dataset.action;
  if (action === "edit") emit("edit-requested", { message });
  else if (action === "delete") confirmDelete(item);
  else if (action === "keep") keep(seq);
  else if (action === "confirm-delete") deleteMessage(message).catch(() => keep(seq));
});

function confirmDelete(item) {
  const bar = item.querySelector(".message-actions");
  const question = document.createElement("span");
  question.textContent = "Delete this message?";
  const yes = document.createElement("button");
  yes.type = "button";
  yes.className = "link danger";
  yes.dataset.action = "confirm-delete";
  yes.textContent = "Delete";
  const no = document.createElement("button");
  no.type = "button";
  no.className = "link";
  no.dataset.action = "keep";
  no.textContent = "Keep";
  bar.replaceChildren(question, " ", yes, " ", no);
  yes.focus();
}

function keep(seq) {
  redecorate(seq);
  items.get(seq)?.querySelector('[data-action="delete"]')?.focus();
}

list.addEventListener("keydown", (event) => {
  const item = event.target.closest?.("li.message");
  if (event.key === "Escape" && item?.querySelector('[data-action="keep"]')) keep(Number(item.dataset.seq));
});

on("room-shown", ({ room }) => render(room));
on("messages-shown", ({ room, messages }) => room === shown && appendShown(messages));
on("message-changed", ({ room, message }) => room === shown && redecorate(message.seq));

// A reconnect's catch-up in the shown room: the "new messages" line goes where it caught up.
on("room-joined", ({ room, first, caughtUpAfter, messages }) => {
  if (first || room !== shown) return;
  if (!messages.some((message) => message.seq > caughtUpAfter && message.author !== me)) return;
  const old = state().newLineSeq;
  state().newLineSeq = caughtUpAfter + 1;
  if (old !== null) redecorate(old);
});

// Back in the tab, at the bottom: what is shown has been read.
document.addEventListener("visibilitychange", settle);

// The shown room was left (parted): nothing of it stays on screen.
on("room-forgotten", ({ room }) => room === shown && clear());
