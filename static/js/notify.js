// Browser notifications while the tab is hidden: a mention of the reader, or a message in a
// private room by someone else. Permission is asked once, on a user gesture, remembered here.
import { on } from "./events.js";
import { mentionsMe } from "./mentions.js";
import { showRoom } from "./navigation.js";
import { $ } from "./socket.js";
import { me, roomState } from "./store.js";

const ASKED_KEY = "roomcast.notifications-asked";
const supported = "Notification" in window;
const button = $("#enable-notifications");

function showButton() {
  button.hidden = !supported || Notification.permission !== "default";
}

async function ask() {
  localStorage.setItem(ASKED_KEY, "1");
  try {
    await Notification.requestPermission();
  } finally {
    showButton();
  }
}

// The first message sent asks, once; the button asks whenever the reader chooses.
export function askPermissionOnce() {
  if (supported && Notification.permission === "default" && !localStorage.getItem(ASKED_KEY)) ask();
}

function worthNotifying(room, message) {
  if (message.author === me || message.deleted) return false;
  return roomState(room).info.private || mentionsMe(message.text);
}

function notify(room, message) {
  const where = roomState(room).info.private ? `🔒 ${room}` : `#${room}`;
  try {
    const notification = new Notification(`${message.author} in ${where}`, {
      body: message.text.slice(0, 200),
      tag: `roomcast-${room}`, // one per room on screen: the newest replaces the last
    });
    notification.addEventListener("click", () => {
      window.focus();
      showRoom(room);
      notification.close();
    });
  } catch {
    // Some browsers allow notifications only from a service worker: the title still counts.
  }
}

// One notification per room and batch (a catch-up brings many): the newest worth it.
on("messages-shown", ({ room, messages, how }) => {
  if (!supported || how === "first" || document.visibilityState !== "hidden") return;
  if (Notification.permission !== "granted") return;
  const newest = messages.findLast((message) => worthNotifying(room, message));
  if (newest) notify(room, newest);
});

button.addEventListener("click", ask);
showButton();
