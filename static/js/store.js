// What the page knows about each room, who is reading, and which room is shown.
import { root } from "./socket.js";

export const me = root.dataset.username;
export const GENERAL = "general"; // always joined, never parted
export const rooms = new Map(); // name -> the state roomState() makes
export const view = { current: null }; // the room shown in the message list

export function roomState(name) {
  if (!rooms.has(name)) {
    rooms.set(name, {
      info: { name, private: false, members: [] },
      member: false, // one of "my rooms": joined by choice, invited to, or general
      messages: new Map(), // seq -> message, loaded (seqs floor..lastSeq with no hole)
      floor: null, // the lowest seq loaded
      lastSeq: null, // the highest seq shown, every one before it shown too (from the first join on); null before
      knownSeq: 0, // the room's newest seq as the server last told (acks' last_seq)
      early: new Map(), // seq -> message that came after a hole: shown once the hole is filled
      filling: false,
      lastEditSeq: null, // the room's edits and deletions applied with no hole (from the first join on)
      knownEditSeq: 0, // the room's newest edit_seq as the server last told
      fillingEdits: false,
      joining: false,
      heldEdits: [], // edited events that came while a join was under way: applied after its ack
      readSeq: 0, // the reader's read marker: the newest seq read, in any tab
      serverUnread: 0, // GET /api/rooms' unread, counted up to serverLastSeq
      serverLastSeq: 0,
      newLineSeq: null, // the "new messages" line goes above this seq
      online: new Set(),
      typing: new Map(), // username -> the timer that forgets a typist gone quiet
    });
  }
  return rooms.get(name);
}

// Forget what was loaded of a room the reader left: joining it again starts afresh.
export function forgetMessages(state) {
  Object.assign(state, {
    messages: new Map(),
    floor: null,
    lastSeq: null,
    early: new Map(),
    lastEditSeq: null,
    knownEditSeq: 0,
    heldEdits: [],
    newLineSeq: null,
    online: new Set(),
  });
}

export const myRooms = () => [...rooms.values()].filter((state) => state.member);
