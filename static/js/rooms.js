// Which rooms the reader is in: GET /api/rooms at every connect, joining by choice, parting, and
// rooms created or parted elsewhere, live. The page joins its rooms only (and general, always).
import { ask, askQuietly, chat } from "./chat-socket.js";
import { emit } from "./events.js";
import { showRoom } from "./navigation.js";
import { GENERAL, forgetMessages, me, myRooms, roomState, view } from "./store.js";
import { join } from "./sync.js";

const isMember = (info) => info.name === GENERAL || (info.member ?? (info.members ?? []).includes(me));

function keep(info) {
  const state = roomState(info.name);
  state.info = { ...state.info, ...info };
  return state;
}

// Read the rooms the reader may see, with their unread counts from the server's read marker.
async function loadRooms() {
  const response = await fetch("/api/rooms");
  if (!response.ok) return;
  for (const info of await response.json()) {
    const state = keep(info);
    const member = isMember(info);
    if (state.member && !member) forget(info.name); // parted in another tab while this one was away
    state.member = member;
    state.readSeq = Math.max(state.readSeq, info.read_seq ?? 0);
    state.serverUnread = info.unread ?? 0;
    state.serverLastSeq = info.last_seq ?? 0;
  }
  emit("rooms-changed");
}

// On every (re)connect: join my rooms again, each with since_seq = the last seq shown.
export async function joinMyRooms() {
  await loadRooms();
  await Promise.allSettled(myRooms().map((state) => join(state.info.name)));
  if (view.current === null || !roomState(view.current).member) showRoom(GENERAL);
}

// Join a public room by choice (the server makes the reader a member), then show it.
export async function joinRoom(name) {
  const state = roomState(name);
  state.member = true;
  emit("rooms-changed");
  await join(name);
  if (state.lastSeq === null) {
    state.member = false; // refused: the error is shown
    emit("rooms-changed");
    return;
  }
  showRoom(name);
}

// Stop being a member of a public room: the server answers forbidden for general and private rooms.
export async function partRoom(name) {
  await ask("part", { room: name });
  forget(name);
}

function forget(name) {
  const state = roomState(name);
  state.member = false;
  forgetMessages(state);
  emit("room-forgotten", { room: name });
  emit("rooms-changed");
  if (view.current === name) showRoom(GENERAL);
}

// Show a room created here: join it first.
export async function created(info) {
  const state = keep(info);
  state.member = true;
  await join(info.name);
  emit("rooms-changed");
  showRoom(info.name);
}

// A room was created (public: for everyone; private: for its members).
chat.on("room", (info) => {
  const state = keep(info);
  if (isMember(info) && !state.member) {
    state.member = true;
    join(info.name);
  }
  emit("rooms-changed");
});

// The reader parted a room in another tab: this connection stops following it too.
chat.on("parted", ({ room }) => {
  if (!roomState(room).member) return;
  askQuietly("leave", { room }).catch(() => {});
  forget(room);
});

// The reader joined a public room in another tab: this one lists it and joins it too.
chat.on("member", ({ room }) => {
  const state = roomState(room);
  if (state.member) return;
  state.member = true;
  join(room);
  emit("rooms-changed");
});
