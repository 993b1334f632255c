// Editing and deleting one's own messages, within the server's edit window (data-edit-window, seconds; 0: no limit).
import { ask } from "./chat-socket.js";
import { root } from "./socket.js";
import { me } from "./store.js";
import { applyChange } from "./sync.js";

const EDIT_WINDOW_MS = (Number(root.dataset.editWindow) || 0) * 1000;

// Whether the reader may still edit or delete the message (the server decides; this hides what it would refuse).
export function canChange(message) {
  if (message.author !== me || message.deleted) return false;
  return !EDIT_WINDOW_MS || Date.now() - Date.parse(message.created_at) < EDIT_WINDOW_MS;
}

export async function saveEdit(message, text) {
  const ack = await ask("edit", { room: message.room, id: message.id, text });
  applyChange(ack.message);
  return ack.message;
}

export async function deleteMessage(message) {
  const ack = await ask("delete", { room: message.room, id: message.id });
  applyChange(ack.message);
  return ack.message;
}
