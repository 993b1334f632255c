// Unread counts from the server's read marker, kept up live, and the tab title that adds them up;
// the read marker moves on when the reader has seen a room's newest message.
import { askQuietly, chat } from "./chat-socket.js";
import { emit, on } from "./events.js";
import { me, myRooms, roomState } from "./store.js";

const TITLE = document.title;
const READ_EVERY_MS = 1000; // at most one `read` a second per room: the event budget is for sending

// Messages after the read marker by someone else, not deleted.
export function unreadCount(state) {
  if (!state.member || state.lastSeq === null) return state.member ? state.serverUnread : 0;
  const countAfter = (seq) => {
    let count = 0;
    for (let next = seq + 1; next <= state.lastSeq; next++) {
      const message = state.messages.get(next);
      if (message && message.author !== me && !message.deleted) count++;
    }
    return count;
  };
  // Loaded from the marker on: counted here; else the server's count up to what it had, plus what came since.
  if (state.floor !== null && state.readSeq >= state.floor - 1) return countAfter(state.readSeq);
  return state.serverUnread + countAfter(Math.max(state.serverLastSeq, state.readSeq, (state.floor ?? 1) - 1));
}

export const totalUnread = () => myRooms().reduce((total, state) => total + unreadCount(state), 0);

// A count as a badge, read out as "N unread": nodes to append after a label.
export function unreadBadge(count) {
  const badge = document.createElement("span");
  badge.className = "unread";
  badge.textContent = count;
  const words = document.createElement("span");
  words.className = "visually-hidden";
  words.textContent = " unread";
  return [" ", badge, words];
}

function changed() {
  const total = totalUnread();
  document.title = total ? `(${total}) ${TITLE}` : TITLE;
  emit("unread-changed");
}

// The reader has seen the room's newest message: move the marker there and tell the server.
function seenLatest(name) {
  const state = roomState(name);
  if (document.visibilityState !== "visible" || state.lastSeq === null || state.lastSeq <= state.readSeq) return;
  state.readSeq = state.lastSeq;
  changed();
  scheduleRead(name, state);
}

function scheduleRead(name, state) {
  if (state.readTimer) return; // the pending send takes the newest marker
  const wait = Math.max(0, (state.readSentAt ?? 0) + READ_EVERY_MS - Date.now());
  state.readTimer = setTimeout(() => sendRead(name, state), wait);
}

async function sendRead(name, state) {
  state.readTimer = null;
  state.readSentAt = Date.now();
  if (!chat.connected) return; // the join after the reconnect tells the marker again, and the next read sends it
  try {
    const ack = await askQuietly("read", { room: name, seq: state.readSeq });
    state.readSeq = Math.max(state.readSeq, ack.read_seq ?? 0);
  } catch {
    // A marker that did not reach the server only costs an unread count after a reload.
  }
}

on("seen-latest", ({ room }) => seenLatest(room));
on("messages-shown", changed);
on("message-changed", changed); // a deletion is no longer unread
on("rooms-changed", changed);

// Another tab of the reader read on: the count goes down here too.
chat.on("read", ({ room, read_seq: readSeq }) => {
  const state = roomState(room);
  if (readSeq > state.readSeq) {
    state.readSeq = readSeq;
    changed();
  }
});
