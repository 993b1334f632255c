// What a screen reader hears: one polite live region that reads single live messages of the
// shown room, and sums a catch-up up as "N new messages in #room" instead of reading each.
import { on } from "./events.js";
import { $ } from "./socket.js";
import { me, view } from "./store.js";

const SUMMARY_AFTER_MS = 1000; // a catch-up comes in pages: wait for it to settle, then sum it up

const region = $("#announcer");
const pending = new Map(); // room -> messages caught up, not yet announced
let summaryTimer = null;

export function announce(text) {
  // A new text node each time, so the same words twice are read twice.
  region.replaceChildren(document.createTextNode(text));
}

function summarize() {
  summaryTimer = null;
  const parts = [...pending].map(([room, count]) => `${count} new message${count === 1 ? "" : "s"} in #${room}`);
  pending.clear();
  if (parts.length) announce(parts.join(", "));
}

on("messages-shown", ({ room, messages, how }) => {
  if (how === "first" || room !== view.current) return; // a room's first page is not news
  const others = messages.filter((message) => message.author !== me && !message.deleted);
  if (!others.length) return;
  if (how === "live" && others.length === 1 && !pending.size) {
    const [message] = others;
    return announce(`${message.author}: ${message.text}`);
  }
  pending.set(room, (pending.get(room) ?? 0) + others.length);
  clearTimeout(summaryTimer);
  summaryTimer = setTimeout(summarize, SUMMARY_AFTER_MS);
});
