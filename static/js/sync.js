// Keeps each joined room's messages complete: the gap rule (seq order, each message once, holes
// filled with history since_seq), joins with their catch-up and retries, and the edit gap rule.
import { askQuietly as call, chat, connectionNumber } from "./chat-socket.js";
import { catchUp } from "./connection.js";
import { emit } from "./events.js";
import { showError } from "./socket.js";
import { roomState, rooms } from "./store.js";

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;
// Worth asking again later; forbidden, not_found and invalid would only fail again.
const RETRYABLE = new Set(["unavailable", "internal", "timeout", "rate_limited"]);
const HISTORY_PAGE = 100;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const editSeq = (message) => message.edit_seq ?? 0;

// Ask until answered: retry what may pass later with a backoff while `going()`; null when refused.
async function persist(going, ask) {
  let delay = RETRY_FIRST_MS;
  while (going()) {
    try {
      return await ask();
    } catch (error) {
      if (!RETRYABLE.has(error.code)) {
        showError(error.message);
        return null;
      }
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }
  return null;
}

// The gap rule: messages (live, or from any ack) are shown in seq order, each once, never after a hole.
// how: "live" (a message event), "catch-up" (a join with a cursor, a fill) or "first" (a first join).
export function receive(name, messages, how = "catch-up") {
  const state = roomState(name);
  for (const message of messages) {
    if (state.lastSeq === null || message.seq > state.lastSeq) {
      const held = state.early.get(message.seq);
      if (!held || editSeq(message) > editSeq(held)) state.early.set(message.seq, message);
    } else update(state, message); // a copy of one shown: only a newer state of it matters
  }
  if (state.lastSeq === null) return; // not joined yet: the join's ack tells where the room starts
  const shown = [];
  for (let next; (next = state.early.get(state.lastSeq + 1)); ) {
    state.messages.set(next.seq, next);
    state.floor ??= next.seq;
    state.lastSeq = next.seq;
    shown.push(next);
  }
  for (const seq of state.early.keys()) if (seq <= state.lastSeq) state.early.delete(seq);
  if (shown.length) emit("messages-shown", { room: name, messages: shown, how });
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
      while (chat.connected && behind(state)) {
        const payload = { room: name, since_seq: state.lastSeq, limit: HISTORY_PAGE };
        const ack = await persist(() => chat.connected, () => call("history", payload));
        if (!ack) return;
        state.knownSeq = Math.max(state.knownSeq, ack.last_seq ?? 0);
        receive(name, ack.messages);
        noteEditSeq(name, ack.last_edit_seq);
        if (!ack.messages.length) return; // the server has nothing after lastSeq: nothing to wait for
      }
    });
  } finally {
    state.filling = false;
  }
}

// Put a newer state of a loaded message (edited, deleted) in place of the shown one.
function update(state, message) {
  for (const loaded of [state.messages, state.early]) {
    const known = loaded.get(message.seq);
    if (known && known.id === message.id && editSeq(message) > editSeq(known)) {
      loaded.set(message.seq, message);
      if (loaded === state.messages) emit("message-changed", { room: message.room, message });
    }
  }
}

// A message's new state from an edit or delete ack: shown, without moving the edit cursor.
export function applyChange(message) {
  update(roomState(message.room), message);
}

// The edit gap rule: an edited event is applied when newer than the shown copy; one past
// lastEditSeq + 1 means changes were missed, fetched with history edits_since.
export function edited(message) {
  const state = rooms.get(message.room);
  if (!state || !state.member) return;
  if (state.joining) {
    state.heldEdits.push(message); // the join's ack says where the room's edits stand
    return;
  }
  if (state.lastEditSeq === null) return; // never joined: its first join brings messages as they are
  applyEdits(message.room, [message]);
}

function applyEdits(name, messages) {
  const state = roomState(name);
  for (const message of messages) {
    update(state, message);
    state.knownEditSeq = Math.max(state.knownEditSeq, editSeq(message));
    if (editSeq(message) === state.lastEditSeq + 1) state.lastEditSeq += 1;
  }
  if (state.knownEditSeq > state.lastEditSeq) fillEdits(name);
}

// An ack's last_edit_seq beyond ours means an edited event was lost (or is on its way): fetch.
function noteEditSeq(name, lastEditSeq) {
  const state = roomState(name);
  if (lastEditSeq === undefined || state.lastEditSeq === null) return;
  state.knownEditSeq = Math.max(state.knownEditSeq, lastEditSeq);
  if (state.knownEditSeq > state.lastEditSeq) fillEdits(name);
}

// Fetch the changes after lastEditSeq, page by page, until none is missing; one fill per room at a time.
async function fillEdits(name) {
  const state = roomState(name);
  if (state.fillingEdits) return;
  state.fillingEdits = true;
  try {
    while (chat.connected && state.lastEditSeq !== null && state.knownEditSeq > state.lastEditSeq) {
      const payload = { room: name, edits_since: state.lastEditSeq, limit: HISTORY_PAGE };
      const ack = await persist(() => chat.connected, () => call("history", payload));
      if (!ack || state.lastEditSeq === null) return;
      const edits = ack.edits ?? [];
      settleEdits(state, edits, ack.last_edit_seq, edits.length >= HISTORY_PAGE);
      if (!edits.length) return; // the server has nothing after lastEditSeq
    }
  } finally {
    state.fillingEdits = false;
  }
}

// Apply a page of changes in edit_seq order; lastEditSeq moves to the page's end, or to the
// room's newest when the page was the last one.
function settleEdits(state, edits, lastEditSeq, more) {
  for (const message of edits) update(state, message);
  const newest = Math.max(state.lastEditSeq ?? 0, ...edits.map(editSeq));
  state.lastEditSeq = more ? newest : Math.max(newest, lastEditSeq ?? 0);
  state.knownEditSeq = Math.max(state.knownEditSeq, lastEditSeq ?? 0, state.lastEditSeq);
}

// Join a room, catching up after lastSeq and lastEditSeq. A failed join leaves us out of the
// room: try again, 0.5 s doubling to 5 s, while this connection lasts (the next connect joins anew).
export async function join(name) {
  const connection = connectionNumber();
  const state = roomState(name);
  state.joining = true;
  try {
    await catchUp(async () => {
      const going = () => chat.connected && connection === connectionNumber() && state.member;
      const ack = await persist(going, () => call("join", joinPayload(state, name)));
      if (ack) joined(name, ack);
    });
  } finally {
    state.joining = false;
  }
  const held = state.heldEdits.splice(0);
  if (held.length && state.lastEditSeq !== null) applyEdits(name, held);
}

function joinPayload(state, name) {
  const payload = { room: name };
  if (state.lastSeq !== null) payload.since_seq = state.lastSeq;
  if (state.lastEditSeq !== null) payload.edits_since = state.lastEditSeq;
  return payload;
}

function joined(name, ack) {
  const state = roomState(name);
  const first = state.lastSeq === null;
  state.online = new Set(ack.online);
  state.info = { ...state.info, members: ack.members ?? state.info.members };
  state.readSeq = Math.max(state.readSeq, ack.read_seq ?? 0);
  state.knownSeq = Math.max(state.knownSeq, ack.last_seq ?? 0);
  // A first join shows the room from its latest messages on (its newest seq when it is empty).
  if (first) state.lastSeq = ack.messages.length ? ack.messages[0].seq - 1 : state.knownSeq;
  emit("room-joined", { room: name, first, caughtUpAfter: state.lastSeq, messages: ack.messages });
  receive(name, ack.messages, first ? "first" : "catch-up");
  // A first join's messages come as they are now; a later one's changes come in `edits`.
  if (first) settleEdits(state, [], ack.last_edit_seq, false);
  else settleEdits(state, ack.edits ?? [], ack.last_edit_seq, Boolean(ack.more_edits));
  if (state.knownEditSeq > state.lastEditSeq) fillEdits(name);
  // A server with JOIN_CATCHUP_LIMIT caps the catch-up (`more`, and last_seq beyond what came): page on.
  if (behind(state)) fill(name);
  emit("people-changed", { room: name });
}

// Join every room again after a resync: the server may have lost live events.
export function joinAgain() {
  for (const [name, state] of rooms) if (state.member && state.lastSeq !== null) join(name);
}

// Older messages, before what is loaded: they go below floor, outside the gap rule.
export async function loadOlder(name) {
  const state = roomState(name);
  if (state.floor === null || state.floor <= 1) return [];
  const oldest = state.messages.get(state.floor);
  const ack = await call("history", { room: name, before: oldest.id, limit: HISTORY_PAGE });
  const older = ack.messages.filter((message) => message.seq < state.floor).sort((a, b) => a.seq - b.seq);
  // Only a page that ends right below floor keeps the loaded seqs without a hole.
  if (!older.length || older.at(-1).seq !== state.floor - 1) return [];
  for (const message of older) state.messages.set(message.seq, message);
  state.floor = older[0].seq;
  noteEditSeq(name, ack.last_edit_seq);
  return older;
}
