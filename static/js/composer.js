// The message box: Enter sends (retried sends keep their client_id), typing is announced, and it
// edits one's own message: from its Edit button, or ArrowUp in an empty box; Escape cancels.
import { ask, chat } from "./chat-socket.js";
import { canChange, saveEdit } from "./editing.js";
import { on } from "./events.js";
import { askPermissionOnce } from "./notify.js";
import { $, showError } from "./socket.js";
import { me, roomState, view } from "./store.js";
import { receive } from "./sync.js";
import { showLatest } from "./timeline.js";

const input = $("#text");
const form = $("#composer");
const TYPING_EVERY_MS = 2000;
const TYPING_QUIET_MS = 3000;
const LOOK_BACK = 200; // ArrowUp finds one's last message among this many

let pendingSend = null; // {room, text, client_id}: retried with the same client_id, never stored twice
let sendWhenShown = false; // Enter pressed before any room was shown
let editing = null; // the message being edited
let draft = ""; // what was typed before an edit began: given back after it
let typingSince = 0;
let typingTimer = null;

// Typing: say so at most every 2 s while keys are pressed, and stop after 3 s of quiet.
input.addEventListener("input", () => {
  if (editing || !view.current || !chat.connected) return;
  const now = Date.now();
  if (now - typingSince > TYPING_EVERY_MS) {
    typingSince = now;
    chat.emit("typing", { room: view.current, typing: true }, () => {});
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, TYPING_QUIET_MS);
});

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSince && view.current && chat.connected) chat.emit("typing", { room: view.current, typing: false }, () => {});
  typingSince = 0;
}

function startEdit(message) {
  if (!canChange(message)) return showError("This message can no longer be changed.");
  stopTyping();
  if (!editing) draft = input.value;
  editing = message;
  input.value = message.text;
  $("#editing").hidden = false;
  form.classList.add("editing");
  $("#send").textContent = "Save";
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

function stopEdit() {
  if (!editing) return;
  editing = null;
  input.value = draft;
  draft = "";
  $("#editing").hidden = true;
  form.classList.remove("editing");
  $("#send").textContent = "Send";
}

// One's newest message in the shown room that may still be edited.
function lastOwnMessage() {
  const state = roomState(view.current);
  for (let seq = state.lastSeq; seq !== null && seq >= Math.max(state.floor ?? 1, state.lastSeq - LOOK_BACK); seq--) {
    const message = state.messages.get(seq);
    if (message?.author === me && !message.deleted) return canChange(message) ? message : null;
  }
  return null;
}

input.addEventListener("keydown", (event) => {
  if (event.isComposing) return;
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  } else if (event.key === "Escape" && editing) {
    event.preventDefault();
    stopEdit();
  } else if (event.key === "ArrowUp" && !input.value && !editing && !event.shiftKey && !event.altKey) {
    const message = view.current && lastOwnMessage();
    if (message) {
      event.preventDefault();
      startEdit(message);
    }
  }
});

async function submitEdit() {
  const message = editing;
  const text = input.value.trim();
  if (!text || text === message.text) return stopEdit();
  try {
    await saveEdit(message, text);
  } catch {
    return; // the error is shown; the text stays, to try again or cancel
  }
  stopEdit();
  showError("");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  askPermissionOnce(); // a user gesture: the one moment a browser lets a page ask
  if (editing) return submitEdit();
  const text = input.value.trim();
  if (!text) return;
  if (!view.current) {
    sendWhenShown = true; // typed before the first room is on screen: sent as soon as it is
    return;
  }
  // A retry of the same text keeps its client_id, so the server stores it once.
  if (!pendingSend || pendingSend.text !== text || pendingSend.room !== view.current) {
    pendingSend = { room: view.current, text, client_id: crypto.randomUUID() };
  }
  const sending = pendingSend;
  stopTyping();
  input.value = ""; // the next message can be typed while this one is on its way
  const ack = await ask("send", sending).catch(() => null);
  if (!ack) {
    if (!input.value) input.value = sending.text; // give it back, to retry
    return;
  }
  if (pendingSend === sending) pendingSend = null;
  showError("");
  receive(ack.message.room, [ack.message], "live");
  if (ack.message.room === view.current) showLatest(); // one's own message is always in view
});

$("#cancel-edit").addEventListener("click", () => {
  stopEdit();
  input.focus();
});

on("edit-requested", ({ message }) => startEdit(message));
on("room-shown", () => {
  stopEdit();
  if (sendWhenShown) {
    sendWhenShown = false;
    form.requestSubmit();
  }
});
// The message being edited was deleted (here or elsewhere): nothing is left to edit.
on("message-changed", ({ message }) => {
  if (editing?.id === message.id && message.deleted) stopEdit();
  else if (editing?.id === message.id) editing = message;
});
