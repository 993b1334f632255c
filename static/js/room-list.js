// "My rooms" in the sidebar, with unread counts, kept in place (a focused button stays focused).
import { on } from "./events.js";
import { roomLabel } from "./icons.js";
import { showRoom } from "./navigation.js";
import { $ } from "./socket.js";
import { myRooms, view } from "./store.js";
import { unreadBadge, unreadCount } from "./unread.js";

const list = $("#rooms");
const items = new Map(); // room name -> its list item

function roomItem(name) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.addEventListener("click", () => showRoom(name));
  item.append(button);
  return item;
}

function fillButton(button, state) {
  const unread = unreadCount(state);
  const key = `${state.info.private}|${state.info.name}|${unread}`;
  if (button.dataset.key !== key) {
    button.dataset.key = key;
    button.replaceChildren(roomLabel(state.info));
    if (unread) button.append(...unreadBadge(unread));
  }
  button.setAttribute("aria-current", state.info.name === view.current ? "true" : "false");
}

function render() {
  const mine = myRooms().sort((a, b) => a.info.name.localeCompare(b.info.name));
  const names = mine.map((state) => state.info.name);
  for (const [name, item] of items) {
    if (!names.includes(name)) {
      item.remove();
      items.delete(name);
    }
  }
  for (const state of mine) {
    if (!items.has(state.info.name)) items.set(state.info.name, roomItem(state.info.name));
    fillButton(items.get(state.info.name).firstChild, state);
  }
  // Re-insert only when the order changed: moving a focused button would blur it.
  if ([...list.children].some((item, index) => item !== items.get(names[index])) || list.children.length !== names.length) {
    list.replaceChildren(...names.map((name) => items.get(name)));
  }
}

on("rooms-changed", render);
on("unread-changed", render);
on("room-shown", render);
