// The phone layout's tab bar (≤700px): Rooms, Chat, and People & jobs, one tap apart; Rooms
// counts what is unread, since the room list is out of sight.
import { on } from "./events.js";
import { $ } from "./socket.js";
import { totalUnread, unreadBadge } from "./unread.js";

const tabs = [...document.querySelectorAll(".tabbar button[data-view]")];

function showView(name) {
  document.body.dataset.view = name;
  for (const tab of tabs) tab.setAttribute("aria-current", tab.dataset.view === name ? "page" : "false");
}

function countUnread() {
  const total = totalUnread();
  const tab = $("#toggle-rooms");
  tab.replaceChildren("Rooms");
  if (total) tab.append(...unreadBadge(total));
}

for (const tab of tabs) tab.addEventListener("click", () => showView(tab.dataset.view));
on("room-shown", () => showView("chat")); // choosing a room goes to its messages
on("unread-changed", countUnread);
showView("chat");
